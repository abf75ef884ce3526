"""`table`: rebuild an experiment's paper-layout table (md, csv, tex; cells.png, the sweep plot) from its
run records; `--median` prints medians, `--power` the paired seeds each column needs."""

from bertbench.errors import unknown_name
from bertbench.experiments.schema import load_experiment, load_scales
from bertbench.files import check_writable_dir
from bertbench.results.formats import RENDERERS
from bertbench.results.power import power_lines
from bertbench.results.records import check_records, records_dir
from bertbench.results.tables import table_records, write_tables


def add_arguments(parser):
    parser.add_argument("experiment", help="experiment name (see `bertbench list`)")
    parser.add_argument("--scale", default="ci", help="ci (default), small or base")
    parser.add_argument("--format", default="md", choices=tuple(RENDERERS), help="what to print (all are written)")
    parser.add_argument("--median", action="store_true",
                        help="print medians with their 95%% intervals (the files keep the means)")
    parser.add_argument("--power", action="store_true",
                        help="also print, per column, the paired seeds that resolve a 1- and a 2-point difference")
    parser.add_argument("--results", default="results", help="results folder (default: results/)")
    parser.add_argument("--experiments", default=None, help="folder of experiment TOML files")


def main(args):
    experiment = load_experiment(args.experiment, args.experiments)
    scales = load_scales(experiment.path.parent)
    if args.scale not in scales:
        raise unknown_name("scale", args.scale, scales)
    check_records(args.results, experiment.name, args.scale)  # none, or a damaged one: say so, write nothing
    tables = records_dir(args.results, experiment.name, args.scale).parent  # the tables go beside records/
    check_writable_dir(tables, "--results")
    print(write_tables(experiment, args.scale, args.results, args.format, median=args.median))
    if args.power:
        print("\n".join(power_lines(table_records(experiment, args.scale, args.results), experiment)))
    return 0
