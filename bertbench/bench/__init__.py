"""bertbench.bench.pretrain."""
