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
