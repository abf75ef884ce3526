"""bertbench.finetuning."""
