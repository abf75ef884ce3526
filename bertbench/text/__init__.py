"""bertbench.text."""
