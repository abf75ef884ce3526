"""`check`: run a scale's regression suite and compare it with the calibrated baseline, or calibrate it
(by running the suite, or from an experiment's records).

Exit status: 0 passed (or calibrated), 1 a metric regressed beyond its tolerance, 2 the baseline file is
missing or malformed, or a record does not match the suite (nothing is run). The suites and the tolerance
formula: bertbench/results/check.py; calibration from records: bertbench/results/check_records.py.
"""

from bertbench.backend import load_backend
from bertbench.errors import ConfigError
from bertbench.files import check_writable_file
from bertbench.results.check import SUITES, baseline_path, calibrate, run_check, suite_of
from bertbench.results.check_records import calibrate_from_records


def add_arguments(parser):
    parser.add_argument("--scale", default="ci",
                        help=f"which suite: {' or '.join(SUITES)} (ci: CI's, minutes; small: ~45 min on 2 cores, "
                             f"needs --data-dir; see results/check.py)")
    parser.add_argument("--baseline", default=None,
                        help="baseline file (default: results/baselines/<scale>.json)")
    parser.add_argument("--calibrate", type=int, default=None, metavar="K",
                        help="run the suite with fine-tuning seeds 0..K-1 and write the baseline (mean, SD, "
                             "tolerance per metric) instead of checking; ci, K=3: 2 pretrainings + 12 "
                             "fine-tunings, ~8 CPU-minutes")
    parser.add_argument("--calibrate-from-records", default=None, metavar="RESULTS",
                        help="write the baseline from the records of `bertbench run <suite's experiment> "
                             "--scale <scale> --results RESULTS` (every seed they hold) instead of running")
    parser.add_argument("--runs", default=None, metavar="DIR",
                        help="runs folder of the suite, kept: a rerun resumes an interrupted check (its "
                             "finished runs are reused, not re-measured); default: a temporary folder")
    parser.add_argument("--data-dir", default=None,
                        help="task data and corpus root (small; default $BERTBENCH_DATA; ci: the bundled sample)")
    parser.add_argument("--backend", default=None, metavar="MODULE:NAME", help="executor (tests)")


def main(args):
    suite = suite_of(args.scale)
    baseline = args.baseline or str(baseline_path(args.scale))
    if args.calibrate is not None and args.calibrate_from_records is not None:
        raise ConfigError("--calibrate K runs the suite, --calibrate-from-records reads records: pass one of them")
    if args.calibrate_from_records is not None:
        check_writable_file(baseline, "--baseline")
        return calibrate_from_records(args.calibrate_from_records, baseline, suite)
    if args.calibrate is not None:
        check_writable_file(baseline, "--baseline")  # written after the whole suite: checked first
        return calibrate(args.calibrate, baseline, suite, backend=load_backend(args.backend), runs=args.runs,
                         data_dir=args.data_dir)
    return run_check(baseline, backend=load_backend(args.backend), scale=args.scale, runs=args.runs,
                     data_dir=args.data_dir)
