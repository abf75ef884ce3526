"""Evaluation: official metrics and their direction (metrics.py), scoring prediction files (score.py),
the grid-point rule (selection.py), per-example rows and statistics (per_example.py, stats.py)."""
