"""bertbench.experiments.plan."""
