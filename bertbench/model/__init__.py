"""bertbench.model."""
