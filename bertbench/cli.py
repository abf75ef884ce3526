"""`bertbench` / `python -m bertbench`: one subcommand per step of the data flow.

Each command lives in the module named in COMMANDS, which exposes `add_arguments(parser)` and
`main(args) -> int`. Only the chosen command's module is imported, so `--help` and light commands
stay fast; those modules import TensorFlow inside functions, never at import time of the CLI.
"""

import argparse
import importlib
import sys

from bertbench import __version__
from bertbench.config import from_dict, load_toml, merge_into, model_preset, parse_override, to_dict
from bertbench.errors import BertbenchError, ConfigError, did_you_mean

# name -> (module, one-line help). A plain dict: no registration by import side effect.
COMMANDS = {
    "run": ("bertbench.commands.run", "run an experiment: pretrain its variants, fine-tune, write records and tables"),
    "list": ("bertbench.commands.list", "list the experiments with their variants, tasks and plan sizes"),
    "table": ("bertbench.commands.table", "rebuild an experiment's paper-layout table from its run records"),
    "check": ("bertbench.commands.check", "run the ci-scale regression suite and compare with the committed baseline"),
    "pretrain": ("bertbench.commands.pretrain", "pretrain an encoder (MLM+NSP, MLM, or LTR) on a corpus"),
    "pretrain-data": ("bertbench.commands.pretrain_data", "write pretraining instances as TFRecord shards"),
    "finetune": ("bertbench.commands.finetune", "fine-tune an encoder on a downstream task and score it on dev"),
    "score": ("bertbench.commands.score", "score prediction files with the official task metrics"),
    "vocab": ("bertbench.commands.vocab", "learn a WordPiece vocabulary from a corpus"),
    "models": ("bertbench.commands.models", "list the model presets with L/H/A and parameter counts"),
    "features": ("bertbench.commands.features", "extract per-token hidden states of chosen layers as JSON lines"),
    "bench": ("bertbench.commands.bench", "benchmarks: speed and memory, measured side by side"),
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


def configs_from_args(args, bases, flags=None):
    """The one args -> configs adapter of every command that takes settings.

    bases: {section: config} (e.g. {"model": model_preset("tiny"), "pretrain": PretrainConfig()});
    applied in order, later wins: the bases, `--config FILE` (the experiments' TOML dialect: one table
    per section, `[model] preset = "mini"` allowed), `flags` ({section.field: value}, None = not
    given), then `--set section.field=value`. Every key is checked against the section's fields and
    types and reported with its section (`pretrain.learning_rate`). Returns {section: config}.
    """
    data = {name: to_dict(base) for name, base in bases.items()}
    table = load_toml(args.config) if getattr(args, "config", None) else {}
    for name in table:
        if name not in bases:
            raise ConfigError(f"{args.config}: unknown table [{name}]{did_you_mean(name, bases)}; "
                              f"this command reads {', '.join(f'[{b}]' for b in bases)}")
    sections = {name: dict(value) if isinstance(value, dict) else value for name, value in table.items()}
    if isinstance(sections.get("model"), dict) and "preset" in sections["model"]:
        data["model"] = to_dict(model_preset(sections["model"].pop("preset")))
    for name, value in sections.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{args.config}: [{name}] must be a table of settings, got {value!r}")
        merge_into(data[name], value)
    updates = [(key, value) for key, value in (flags or {}).items() if value is not None]
    updates += [(".".join(path), value) for path, value in map(parse_override, getattr(args, "overrides", []))]
    for key, value in updates:
        name, _, field = key.partition(".")
        if name not in bases or not field:
            raise ConfigError(f"setting '{key}' must start with one of: "
                              f"{', '.join(f'{b}.' for b in bases)} (e.g. {next(iter(bases))}.<field>)")
        if key == "model.preset":
            data["model"] = to_dict(model_preset(value))
        else:
            merge_into(data[name], {field: value})
    return {name: from_dict(type(base), data[name], prefix=f"{name}.") for name, base in bases.items()}
