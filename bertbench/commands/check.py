"""`check`: run the ci-scale regression suite and compare it with the committed baseline."""

from bertbench.backend import load_backend
from bertbench.results.check import BASELINE, run_check


def add_arguments(parser):
    parser.add_argument("--baseline", default=str(BASELINE), help="baseline file (default: results/baselines/ci.json)")
    parser.add_argument("--update-baseline", action="store_true", help="rewrite the baseline from a fresh run")
    parser.add_argument("--backend", default=None, metavar="MODULE:NAME", help="executor (tests)")


def main(args):
    return run_check(args.baseline, args.update_baseline, backend=load_backend(args.backend))
