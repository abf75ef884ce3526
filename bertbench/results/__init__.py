"""Results: runs -> records -> tables, plots and the regression check.

    runner.py       runs a plan: caching (one planner for run and --dry-run), locks, resume, records
    records.py      one JSON record per finished run, read back; locks.py: per-run lock files
    provenance.py   git commit, package versions, hardware of a record
    cells.py        a table cell's runs: grid point chosen, units (pretrain_seed, seed)
    intervals.py    a cell's 95% interval: bootstrap over seeds, or over dev examples for n < 3
    comparisons.py  paired differences to the reference row: sign-flip test / example bootstrap
    footnotes.py    what the table's numbers mean, Holm over the table's comparisons
    power.py        seeds needed to resolve 1- and 2-point differences
    tables.py       records -> the paper's layout (pure); formats.py: md / csv / latex
    plots.py        cells.png (intervals per row) and the steps sweep with bands
    check.py        the ci-scale regression check against a calibrated baseline
"""
