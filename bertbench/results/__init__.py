"""Results: the runner, run records (locks, provenance), table cells, tables, plots and the regression check."""
