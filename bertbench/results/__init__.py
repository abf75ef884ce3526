"""bertbench.results."""
