"""The executor of an experiment's runs: the runner (bertbench.results.runner) plans, caches and
records; a Backend does the model work (`pretrain`, `random_init`, `reference`, `finetune`).

Tests and other executors replace it with `--backend module:Name` or `path/to/file.py:Name`
(`load_backend`). Importing this module loads no TensorFlow (the loops import it when they run), so
planning, dry runs and tests stay light.
"""

import importlib
import importlib.util
from pathlib import Path

from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.finetuning.init import random_encoder
from bertbench.finetuning.loop import finetune
from bertbench.model.checkpoint import load_encoder, save_encoder
from bertbench.pretraining.loop import pretrain, resolve_model_config


class Backend:
    """The real work: bertbench's pretraining and fine-tuning loops."""

    def pretrain(self, model_cfg, pretrain_cfg, out_dir, strategy="default", export_at=()):
        return pretrain(model_cfg, pretrain_cfg, out_dir, strategy=strategy, export_at=export_at)

    def pretrain_until(self, model_cfg, pretrain_cfg, out_dir, strategy, export_at, step):
        """Pretrain only up to `step` now (checkpointed there; results/stages.py runs the rest later)."""
        return pretrain(model_cfg, pretrain_cfg, out_dir, strategy=strategy, export_at=export_at, stop_at=step)

    def random_init(self, model_cfg, pretrain_cfg, out_dir):
        """The no-pretraining baseline: a seeded random encoder saved like a pretrained one."""
        model_cfg = resolve_model_config(model_cfg, pretrain_cfg, model_cfg.vocabulary_size)  # attention
        encoder, model_cfg, tokenizer = random_encoder(model_cfg, pretrain_cfg.vocab, pretrain_cfg.lowercase,
                                                       pretrain_cfg.seed)
        save_encoder(encoder, model_cfg, Path(out_dir) / "encoder", tokenizer.vocab_path, pretrain_cfg.lowercase,
                     extra={"objective": "none (random init)", "steps": 0})
        return {"status": "ok", "steps": 0, "model": to_dict(model_cfg)}

    def reference(self, reference, out_dir):
        """A reference row's "pretraining": the external checkpoint (experiments/reference.py) converted
        into a bertbench encoder folder, so its fine-tuning runs start like every other row's."""
        loaded = load_encoder(reference.path)
        save_encoder(loaded.encoder, loaded.model_cfg, Path(out_dir) / "encoder", loaded.vocab_path, loaded.lowercase,
                     extra={"objective": "none (external checkpoint)", "reference": reference.record()})
        return {"status": "ok", "steps": 0, "model": to_dict(loaded.model_cfg), "source": loaded.source}

    def finetune(self, finetune_cfg, init, out_dir, data_dir, strategy="default"):
        return finetune(finetune_cfg, init, out_dir, data_dir, strategy=strategy)

    def log_hparams(self, logdir, hparams, metrics):
        """One run for TensorBoard's HParams dashboard (what varied -> what it scored)."""
        from bertbench.finetuning.logs import write_hparams

        write_hparams(logdir, hparams, metrics)


def load_backend(spec=None):
    """Backend() or the object named by 'module:attr' / 'file.py:attr' (a class is instantiated)."""
    if not spec:
        return Backend()
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise BertbenchError(f"--backend '{spec}' must look like module:Name or path/to/file.py:Name")
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise BertbenchError(f"--backend file not found: {target}")
        mod_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as err:
            raise BertbenchError(f"--backend '{spec}': no module named '{err.name}'; give an importable "
                                 f"module:Name or path/to/file.py:Name") from None
    if not hasattr(module, attr):
        raise BertbenchError(f"--backend: {target} has no attribute '{attr}'")
    obj = getattr(module, attr)
    return obj() if isinstance(obj, type) else obj
