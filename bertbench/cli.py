"""`bertbench` / `python -m bertbench`: one subcommand per step of the data flow.

Each command lives in the module named in COMMANDS, which exposes `add_arguments(parser)` and
`main(args) -> int`. Only the chosen command's module is imported, so `--help` and light commands
stay fast; those modules import TensorFlow inside functions, never at import time of the CLI.
"""

import argparse
import importlib
import sys

from bertbench import __version__
from bertbench.errors import BertbenchError, unknown_name

# name -> (module, one-line help). A plain dict: no registration by import side effect.
COMMANDS = {
    "run": ("bertbench.results.runner", "run an experiment: pretrain its variants, fine-tune, write records and tables"),
    "list": ("bertbench.experiments.plan", "list the experiments with their variants, tasks and plan sizes"),
    "table": ("bertbench.results.tables", "rebuild an experiment's paper-layout table from its run records"),
    "check": ("bertbench.results.check", "run the ci-scale regression suite and compare with the committed baseline"),
    "pretrain": ("bertbench.pretraining.loop", "pretrain an encoder (MLM+NSP, MLM, or LTR) on a corpus"),
    "pretrain-data": ("bertbench.pretraining.tfrecords", "write pretraining instances as TFRecord shards"),
    "finetune": ("bertbench.finetuning.loop", "fine-tune an encoder on a downstream task and score it on dev"),
    "score": ("bertbench.evaluation.score", "score prediction files with the official task metrics"),
    "vocab": ("bertbench.text.vocab", "learn a WordPiece vocabulary from a corpus"),
    "models": ("bertbench.model.presets", "list the model presets with L/H/A and parameter counts"),
    "features": ("bertbench.model.extract_features", "extract per-token hidden states of chosen layers as JSON lines"),
    "bench": ("bertbench.bench.pretrain", "benchmarks: speed and memory, measured side by side"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(command=None):
    parser = _Parser(prog="bertbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"bertbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:  # only the chosen command's module is imported
            importlib.import_module(module).add_arguments(cmd_parser)
    return parser


def _chosen_command(argv):
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _chosen_command(argv)
    try:
        args = build_parser(command).parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return 2
        return importlib.import_module(COMMANDS[args.command][0]).main(args) or 0
    except BertbenchError as err:
        message = str(err).replace("\n", " ")
        print(f"bertbench: error: {message}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("bertbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def get_module(name):
    """The module behind command `name` (for tests and for commands that call each other)."""
    if name not in COMMANDS:
        raise unknown_name("command", name, COMMANDS)
    return importlib.import_module(COMMANDS[name][0])
