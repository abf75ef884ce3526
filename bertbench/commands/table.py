"""`table`: rebuild an experiment's paper-layout table (md, csv, tex; the sweep plot) from its run records."""

from bertbench.errors import unknown_name
from bertbench.experiments.schema import load_experiment, load_scales
from bertbench.results.tables import RENDERERS, write_tables


def add_arguments(parser):
    parser.add_argument("experiment", help="experiment name (see `bertbench list`)")
    parser.add_argument("--scale", default="ci", help="ci (default), small or base")
    parser.add_argument("--format", default="md", choices=tuple(RENDERERS), help="what to print (all are written)")
    parser.add_argument("--results", default="results", help="results folder (default: results/)")
    parser.add_argument("--experiments", default=None, help="folder of experiment TOML files")


def main(args):
    experiment = load_experiment(args.experiment, args.experiments)
    scales = load_scales(experiment.path.parent)
    if args.scale not in scales:
        raise unknown_name("scale", args.scale, scales)
    print(write_tables(experiment, args.scale, args.results, args.format))
    return 0
