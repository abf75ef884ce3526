import os
import subprocess
import sys

import pytest

from bertbench.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "bertbench", "frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'frobnicate'" in proc.stderr


def test_configs_from_args_layers_bases_file_flags_and_overrides(tmp_path):
    import argparse

    from bertbench.cli import configs_from_args
    from bertbench.config import ModelConfig, PretrainConfig, model_preset
    from bertbench.errors import ConfigError

    toml = tmp_path / "c.toml"
    toml.write_text('[model]\npreset = "mini"\ndropout = 0.0\n[pretrain]\nbatch_size = 8\nnum_steps = 50000\n')
    args = argparse.Namespace(config=str(toml), overrides=["pretrain.num_steps=70000", "model.num_layers=3"])
    bases = {"model": model_preset("tiny"), "pretrain": PretrainConfig()}
    out = configs_from_args(args, bases, {"pretrain.learning_rate": 1e-3, "pretrain.seed": None})
    assert isinstance(out["model"], ModelConfig)
    assert (out["model"].hidden_dim, out["model"].num_layers, out["model"].dropout) == (256, 3, 0.0)
    assert (out["pretrain"].batch_size, out["pretrain"].num_steps) == (8, 70000)  # --set wins over the file
    assert out["pretrain"].learning_rate == 1e-3 and out["pretrain"].seed == PretrainConfig().seed
    bad = argparse.Namespace(config=None, overrides=["pretrain.learning_rat=1"])
    with pytest.raises(ConfigError, match=r"'pretrain\.learning_rat'.*learning_rate"):
        configs_from_args(bad, bases)
    with pytest.raises(ConfigError, match=r"pretrain\.batch_size must be int"):
        configs_from_args(argparse.Namespace(config=None, overrides=["pretrain.batch_size=1.5"]), bases)
    with pytest.raises(ConfigError, match=r"must start with one of: model\., pretrain\."):
        configs_from_args(argparse.Namespace(config=None, overrides=["finetune.seed=1"]), bases)


def test_experiment_commands_live_in_commands_and_libraries_know_no_argparse():
    import importlib

    for name in ("run", "list", "table", "check"):
        module = importlib.import_module(COMMANDS[name][0])
        assert module.__name__ == f"bertbench.commands.{name}"
        assert callable(module.add_arguments) and callable(module.main)
    for library in ("bertbench.results.runner", "bertbench.results.tables", "bertbench.results.check",
                    "bertbench.experiments.plan", "bertbench.experiments.schema"):
        module = importlib.import_module(library)
        assert not hasattr(module, "add_arguments") and not hasattr(module, "main"), library


def _command_parsers():
    """{name: the argparse parser of `bertbench name`, with its module's options}."""
    import argparse

    from bertbench.cli import build_parser

    out = {}
    for name in COMMANDS:
        parser = build_parser(name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        out[name] = sub.choices[name]
    return out


def test_top_level_help_shows_examples_and_exit_status(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "bertbench run ablation_nsp --dry-run" in out and "bertbench tasks" in out
    assert "exit status: 0 success; 1 `check` found a regression; 2 a usage or input error" in out


# Options of commands whose files other owners edit, still without help text: each owner deletes
# their entries when the help is written (an entry that has help fails this test: keep it current).
PENDING_HELP = set()
PENDING_HIDDEN_BACKEND = {"check"}


def test_every_option_of_every_command_has_help_with_its_default():
    """`bertbench CMD --help` explains every option and shows its default ("(default: X)", added by
    the CLI's formatter unless the help names it); the test-only --backend is hidden."""
    import argparse

    missing, undocumented, backend = set(), [], set()
    for name, parser in _command_parsers().items():
        if "--backend" in parser.format_help():
            backend.add(name)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            option = action.option_strings[0] if action.option_strings else action.dest
            if not action.help:
                missing.add(f"{name} {option}")
            elif action.option_strings and action.default not in (None, False, []) and not action.required:
                if "default" not in parser._get_formatter()._expand_help(action):
                    undocumented.append(f"{name} {option}")
    assert missing == PENDING_HELP, f"options without help: {sorted(missing - PENDING_HELP)}; " \
                                    f"written since: {sorted(PENDING_HELP - missing)}"
    assert not undocumented, f"options whose help hides the default: {undocumented}"
    assert backend == PENDING_HIDDEN_BACKEND, f"--backend shows in --help of {sorted(backend)}"
    assert "run" not in backend


def test_formatter_appends_the_default_once():
    parser = _command_parsers()["vocab"]
    text = " ".join(parser.format_help().split())
    assert "maximum vocabulary size (default: 8192)" in text
    features = " ".join(_command_parsers()["features"].format_help().split())
    assert features.count("(default: 8)") == 1  # an explicit "(default: ...)" is not repeated


def test_tensorflow_start_up_noise_is_filtered_from_stderr_unless_verbose(tmp_path):
    """fd 2 keeps every line but TensorFlow's known start-up lines; Python's stderr bypasses the
    filter (progress bars stay live); --verbose shows everything."""
    noise = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
             "I0000 00:00:1796026352.414148    4245 port.cc:153] oneDNN custom operations are on. You may see\\n"
             "I0000 00:00:1796026352.414543    4245 cudart_stub.cc:31] Could not find cuda drivers on your "
             "machine, GPU will not be used.\\n"
             "E0000 00:00:1796026383.880598    4245 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
             "error: Failed call to cuInit: UNKNOWN ERROR (303)\\n"
             "E0000 00:00:1796026394.154866    4245 util.cc:131] oneDNN supports DT_INT64 only on platforms "
             "with AVX-512. Falling back\\n")
    module = tmp_path / "noisy.py"
    module.write_text(
        "import os, sys\n"
        "def add_arguments(parser):\n    pass\n"
        "def main(args):\n"
        f"    os.write(2, b'{noise}E0000 00:00:1.5 7 other.cc:1] a real C++ error\\n')\n"
        "    print('python line', file=sys.stderr)\n"
        "    print('out')\n"
        "    return 0\n")
    code = ("import sys; from bertbench import cli; "
            "cli.COMMANDS['noisy'] = ('noisy', 'test'); sys.argv = ['bertbench', 'noisy'] + sys.argv[1:]; "
            "sys.exit(cli.main())")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and quiet.stdout == "out\n"
    assert sorted(quiet.stderr.splitlines()) == ["E0000 00:00:1.5 7 other.cc:1] a real C++ error", "python line"]
    loud = subprocess.run([sys.executable, "-c", code, "--verbose"], capture_output=True, text=True, env=env)
    assert loud.returncode == 0 and "failed call to cuInit" in loud.stderr and "oneDNN" in loud.stderr


def test_expected_tensorflow_retracing_warnings_are_filtered_without_verbose():
    import logging

    from bertbench.cli import _expected_tf_warnings

    retrace = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, "5 out of the last 15 calls to <f> "
                                "triggered tf.function retracing. Tracing is expensive", None, None)
    other = logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, "something else", None, None)
    assert not _expected_tf_warnings(retrace) and _expected_tf_warnings(other)
    assert main(["models"]) == 0
    assert _expected_tf_warnings in logging.getLogger("tensorflow").filters
