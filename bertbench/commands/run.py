"""`run`: execute an experiment's plan (pretrain its variants, fine-tune, write records and tables), or
print it with --dry-run."""

import argparse
from pathlib import Path

from bertbench.backend import load_backend
from bertbench.errors import BertbenchError
from bertbench.experiments.reference import inspect_reference
from bertbench.files import check_writable_dir
from bertbench.model.strategy import STRATEGIES
from bertbench.results.jobs import run_children
from bertbench.results.power import power_lines
from bertbench.results.runner import describe, make_plan, recorded_runs, run_experiment
from bertbench.results.tables import table_records


def add_arguments(parser):
    parser.add_argument("experiment", help="experiment name (see `bertbench list`)")
    parser.add_argument("--scale", default="ci", help="ci (default), small or base (experiments/_scales.toml)")
    parser.add_argument("--seeds", type=int, default=None, help="fine-tuning seeds 0..N-1 (default: the scale's)")
    parser.add_argument("--pretrain-seeds", type=int, default=1, metavar="M",
                        help="pretrain each variant M times (seeds +0..M-1, MultiBERTs-style; default 1)")
    parser.add_argument("--data-dir", default=None, help="task data and corpus root (small/base; default ci: sample)")
    parser.add_argument("--only", action="append", default=[], metavar="VARIANT",
                        help="run only these variants (repeat, or comma-separate)")
    parser.add_argument("--column", action="append", default=[], metavar="COLUMN",
                        help="run only these table columns, e.g. --column MRPC (repeat, or comma-separate)")
    parser.add_argument("--baseline", action="store_true", help="add the no-pretraining (random init) row")
    parser.add_argument("--reference-checkpoint", default=None, metavar="DIR",
                        help="add a row: this BERT checkpoint folder (Hugging Face, google-research/bert, keras-hub "
                             "preset or bertbench) fine-tuned with the same protocol; `--only reference` runs it alone")
    parser.add_argument("--reference-name", default=None, metavar="LABEL",
                        help="the reference row's label: 'Reference: LABEL (external checkpoint)' "
                             "(default: the folder's name)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (ids, cached or not, cost); run nothing")
    parser.add_argument("--shard", default=None, metavar="I/N", help="run shard I of N (0-based), for clusters")
    parser.add_argument("--results", default="results",
                        help="results folder: records and tables (default: results/, the committed ones)")
    parser.add_argument("--runs", default=None,
                        help="checkpoints and run folders (default: runs/ for the default --results, else "
                             "<results>/runs, so a new --results folder re-measures everything)")
    parser.add_argument("--strategy", default="default", choices=[s for s in STRATEGIES if s != "multiworker"],
                        help="tf.distribute strategy of every run (multiworker is for `pretrain`: a plan's locks "
                             "and records are per process; spread a plan over machines with --shard)")
    parser.add_argument("--experiments", default=None, help="folder of experiment TOML files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (it is drawn on a terminal only)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="N runner processes on this machine share the plan through the run locks, each "
                             "with cores/N TensorFlow threads (same records as one; 2 on a 2-core CPU at ci)")
    parser.add_argument("--backend", default=None, metavar="MODULE:NAME",
                        help=argparse.SUPPRESS)  # a test hook (executor replacing real runs): hidden
    parser.add_argument("--runner-only", action="store_true",
                        help=argparse.SUPPRESS)  # a `--jobs` child: runs only, no tables (its parent writes them)


def _split(values):
    """['a,b', 'c'] -> ['a', 'b', 'c']; None when nothing was given."""
    return [x.strip() for v in values for x in v.split(",") if x.strip()] or None


def child_argv(args):
    """The command line of a `--jobs` child: this `run` without --jobs, quiet (N bars would mix) and
    runner-only (the tables are written once, by the command that started it)."""
    argv = ["run", args.experiment, "--scale", args.scale, "--pretrain-seeds", str(args.pretrain_seeds),
            "--results", str(args.results), "--runs", str(args.runs), "--strategy", args.strategy, "--quiet",
            "--runner-only"]
    options = {"--seeds": args.seeds, "--data-dir": args.data_dir, "--shard": args.shard,
               "--experiments": args.experiments, "--reference-checkpoint": args.reference_checkpoint,
               "--reference-name": args.reference_name, "--backend": args.backend,
               "--only": ",".join(_split(args.only) or []) or None,
               "--column": ",".join(_split(args.column) or []) or None}
    argv += [x for flag, value in options.items() if value is not None for x in (flag, str(value))]
    return argv + (["--baseline"] if args.baseline else [])


def runs_folder(results, runs=None):
    """The runs folder of a results folder: given, or runs/ beside the default results/, or
    <results>/runs (a fresh results folder then never reuses another folder's finished runs)."""
    if runs:
        return runs
    return "runs" if Path(results) == Path("results") else str(Path(results) / "runs")


def main(args):
    only, columns = _split(args.only), _split(args.column)
    args.runs = runs_folder(args.results, args.runs)
    if args.jobs < 1:
        raise BertbenchError(f"--jobs must be a positive number of runner processes (1: this one alone), got {args.jobs}")
    if args.reference_name is not None and not args.reference_checkpoint:
        raise BertbenchError("--reference-name labels a --reference-checkpoint row; "
                             "pass --reference-checkpoint DIR too")
    reference = (inspect_reference(args.reference_checkpoint, args.reference_name)  # checked before anything runs
                 if args.reference_checkpoint else None)
    selection = dict(seeds=args.seeds, only=only, columns=columns, baseline=args.baseline, data_dir=args.data_dir,
                     shard=args.shard, experiments=args.experiments, pretrain_seeds=args.pretrain_seeds,
                     reference=reference)
    if args.dry_run:
        plan = make_plan(args.experiment, args.scale, **selection)
        print("\n".join(describe(plan, args.results, args.runs)))
        existing = table_records(plan.experiment, plan.scale.name, args.results)
        if existing:  # what the records measured so far say about the seeds this plan needs
            print("\n".join(power_lines(existing, plan.experiment)))
        return 0
    check_writable_dir(args.results, "--results")  # a dry run writes nothing: only a run needs them
    check_writable_dir(args.runs, "--runs")
    before = None
    if args.jobs > 1:
        plan = make_plan(args.experiment, args.scale, **selection)  # a bad plan fails here, once, not in each child
        before = recorded_runs(plan, args.results)
        run_children(child_argv(args), args.jobs)
    counts = run_experiment(args.experiment, args.scale, results=args.results, runs=args.runs,
                            strategy=args.strategy, backend=load_backend(args.backend),
                            progress=False if args.quiet else None, before=before,
                            tables=not args.runner_only, **selection)
    return 1 if counts["failed"] or counts["skipped"] else 0
