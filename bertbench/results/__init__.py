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
    plots.py        cells.png (intervals per row) and the steps sweep with bands and held-out curve
    check.py        the regression check of a scale (ci in CI, small for users) against a calibrated baseline
    check_records.py  a baseline calibrated from committed records (`check --calibrate-from-records`)
"""
