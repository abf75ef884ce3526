"""`bertbench` / `python -m bertbench`: one subcommand per step of the data flow.

Each command lives in the module named in COMMANDS, which exposes `add_arguments(parser)` and
`main(args) -> int`. Only the chosen command's module is imported, so `--help` and light commands
stay fast; those modules import TensorFlow inside functions, never at import time of the CLI.
"""

import argparse
import contextlib
import importlib
import logging
import os
import re
import sys
import threading

from bertbench import __version__
from bertbench.config import from_dict, load_toml, merge_into, model_preset, parse_override, to_dict
from bertbench.errors import BertbenchError, ConfigError, did_you_mean

EXAMPLES = """\
examples:
  bertbench list                                   the experiments, their variants and plan sizes
  bertbench run ablation_nsp                       the main job at ci scale (minutes on 2 CPU cores)
  bertbench run ablation_nsp --dry-run             the plan: what would run, what is already done
  bertbench tasks                                  the tasks, their metrics, where their data comes from
  bertbench pretrain --scale ci --out runs/tiny    pretrain a tiny encoder on the bundled sample
  bertbench finetune --task mrpc --init runs/tiny/encoder
  bertbench COMMAND --help                         a command's options, each with its default

exit status: 0 success; 1 `check` found a regression; 2 a usage or input error (one line on stderr).
TensorFlow's C++ log lines are hidden unless --verbose is given.
"""
# name -> (module, one-line help). A plain dict: no registration by import side effect.
COMMANDS = {
    "run": ("bertbench.commands.run", "run an experiment: pretrain its variants, fine-tune, write records and tables"),
    "list": ("bertbench.commands.list", "list the experiments with their variants, tasks and plan sizes"),
    "table": ("bertbench.commands.table", "rebuild an experiment's paper-layout table from its run records"),
    "check": ("bertbench.commands.check", "run a scale's regression suite (ci by default) and compare with the committed baseline"),
    "pretrain": ("bertbench.commands.pretrain", "pretrain an encoder (MLM+NSP, MLM, or LTR) on a corpus"),
    "pretrain-data": ("bertbench.commands.pretrain_data", "write pretraining instances as TFRecord shards"),
    "finetune": ("bertbench.commands.finetune", "fine-tune an encoder on a downstream task and score it on dev"),
    "score": ("bertbench.commands.score", "score prediction files with the official task metrics"),
    "submission": ("bertbench.commands.submission", "check a folder of GLUE test predictions and zip it for the server"),
    "export": ("bertbench.commands.export", "write an encoder as a keras-hub preset or a Hugging Face folder"),
    "vocab": ("bertbench.commands.vocab", "learn a WordPiece vocabulary from a corpus"),
    "models": ("bertbench.commands.models", "list the model presets with L/H/A and parameter counts"),
    "features": ("bertbench.commands.features", "extract per-token hidden states of chosen layers as JSON lines"),
    "bench": ("bertbench.commands.bench", "benchmarks: speed and memory, measured side by side"),
    "tasks": ("bertbench.commands.tasks", "list the downstream tasks: kind, metrics, where their data comes from"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line and exits 2."""

    command = None  # the chosen subcommand, on the top-level parser: its unknown options are that command's

    def error(self, message):
        prog = f"{self.prog} {self.command}" if self.command else self.prog
        self.exit(2, f"{prog}: error: {message} (see --help)\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, "(default: X)", unless it already names one; options
    that default to None/False/[] (not given = off, or decided elsewhere) say so in their own words."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.required
                or action.default in (None, False, [], argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


_VERBOSE_HELP = "show TensorFlow's C++ log lines (hidden by default)"


def build_parser(command=None):
    parser = _Parser(prog="bertbench", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                     formatter_class=_HelpFormatter)
    parser.command = command
    parser.add_argument("--version", action="version", version=f"bertbench {__version__}")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter)
        if name == command:  # only the chosen command's module is imported
            importlib.import_module(module).add_arguments(cmd_parser)
            if "--verbose" not in cmd_parser._option_string_actions:
                cmd_parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                                        help=_VERBOSE_HELP)
    return parser


def _chosen_command(argv):
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _expected_tf_warnings(record):
    """False for TensorFlow's Python warnings that bertbench expects: a `run` fine-tunes many models
    in one process, and each new model traces its own predict function ("triggered tf.function
    retracing"), which is the cost of fresh models, not a bug to fix."""
    return "triggered tf.function retracing" not in record.getMessage()


def main(argv=None):
    entry_point = argv is None  # the real command line: its stderr may be filtered
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _chosen_command(argv)
    quiet = None
    try:
        args = build_parser(command).parse_args(argv)
        if args.command is None:
            build_parser().print_help()
            return _report(None, "a COMMAND is required (see --help)", 2)
        if not getattr(args, "verbose", False):
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO and WARNING lines
            quiet = _QuietTensorFlow.start() if entry_point else None
            logging.getLogger("tensorflow").addFilter(_expected_tf_warnings)
        return importlib.import_module(COMMANDS[args.command][0]).main(args) or 0
    except BertbenchError as err:
        return _report(command, str(err), err.exit_code)
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except OSError as err:  # a location the checks before the work could not foresee (a full disk, ...)
        if not (err.filename or err.strerror):
            raise
        where = f"{err.filename}: " if err.filename else ""
        return _report(command, f"{where}{err.strerror or err}; check the location, its permissions and free space", 2)
    except KeyboardInterrupt:
        print("bertbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        if quiet is not None:
            quiet.close()


def _report(command, message, exit_code):
    """The one error line: `bertbench <command>: error: <what>; <fix>`."""
    prog = f"bertbench {command}" if command else "bertbench"
    print(f"{prog}: error: {message.replace(chr(10), ' ')}", file=sys.stderr)
    return exit_code


# Lines TensorFlow's C++ runtime prints on every CPU-only run, most of them before its log level can
# apply (absl logs to stderr until it is initialised): harmless, and they bury a command's output.
_TF_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
    r"|[IWE]\d{4} [\d:.]+ +\d+ (port\.cc:\d+\] oneDNN custom operations are on"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|util\.cc:\d+\] oneDNN supports DT_INT64 only on platforms with AVX-512)")


class _QuietTensorFlow:
    """Drops the `_TF_NOISE` lines from file descriptor 2, where C++ code writes, beyond Python's reach.

    fd 2 becomes a pipe read by a thread that passes every other line on; Python's `sys.stderr` keeps
    writing to the real stderr directly (progress bars stay live and still see a terminal).
    """

    @classmethod
    def start(cls):
        """The filter, or None where stderr is not a plain file descriptor (then nothing is filtered)."""
        try:
            sys.stderr.fileno()
            return cls()
        except (AttributeError, OSError, ValueError):
            return None

    def __init__(self):
        self.real = os.dup(2)
        self.python_stderr = sys.stderr
        sys.stderr.flush()
        sys.stderr = open(os.dup(self.real), "w", encoding=sys.stderr.encoding,  # noqa: SIM115
                          errors=sys.stderr.errors, buffering=1)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.thread = threading.Thread(target=self._pump, args=(read,), daemon=True)
        self.thread.start()

    def _pump(self, read):
        with os.fdopen(read, "rb") as pipe, os.fdopen(os.dup(self.real), "wb", buffering=0) as out:
            for line in pipe:
                if not _TF_NOISE.match(line.decode("utf-8", "replace")):
                    out.write(line)

    def close(self):
        with contextlib.suppress(OSError, ValueError):  # already closed after a broken pipe
            sys.stderr.flush()
            sys.stderr.close()
        sys.stderr = self.python_stderr
        os.dup2(self.real, 2)  # closes the pipe's last write end: the thread sees EOF
        self.thread.join(timeout=5)
        os.close(self.real)


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
