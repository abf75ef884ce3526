"""bertbench.pretraining."""
