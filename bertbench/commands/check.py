"""`check`: run the ci-scale regression suite and compare it with the calibrated baseline, or calibrate it.

Exit status: 0 passed (or calibrated), 1 a metric regressed beyond its tolerance, 2 the baseline file is
missing or malformed (nothing is run). The tolerance formula: bertbench/results/check.py.
"""

from bertbench.backend import load_backend
from bertbench.files import check_writable_file
from bertbench.results.check import BASELINE, calibrate, run_check


def add_arguments(parser):
    parser.add_argument("--baseline", default=str(BASELINE), help="baseline file (default: results/baselines/ci.json)")
    parser.add_argument("--calibrate", type=int, default=None, metavar="K",
                        help="run the suite with fine-tuning seeds 0..K-1 and write the baseline (mean, SD, "
                             "tolerance per metric) instead of checking; K=3: 2 pretrainings + 12 "
                             "fine-tunings, ~8 CPU-minutes")
    parser.add_argument("--backend", default=None, metavar="MODULE:NAME", help="executor (tests)")


def main(args):
    if args.calibrate is not None:
        check_writable_file(args.baseline, "--baseline")  # written after the whole suite: checked first
        return calibrate(args.calibrate, args.baseline, backend=load_backend(args.backend))
    return run_check(args.baseline, backend=load_backend(args.backend))
