"""bertbench.evaluation."""
