"""Run ids: a short content hash of what a run depends on, so equal configs are one run.

A pretraining shared by variants or experiments gets one id and runs once; any resolved change
(a setting, the seed, which data a fine-tuning reads) gives a new id. The committed records carry
these ids: a change here (or in what configs mean) must bump HASH_VERSION.
"""

import hashlib
import json

from bertbench.config import default_input_format, to_dict

HASH_VERSION = 1  # bump to invalidate every cached run after a change in what configs mean
# Fields added to a config after HASH_VERSION 1, with the default that reproduces the runs from before
# them: at that default they stay out of the payload, so the committed runs keep their ids.
LATER_FIELDS = {"finetune": {"padding": "full", "precision": "float32"}, "pretrain": {"input_format": "auto"}}


def without_later_defaults(section, data):
    """A config dict of `section` without its LATER_FIELDS that hold their default (a record written
    before such a field and one written after it at its default describe the same run)."""
    later = LATER_FIELDS.get(section, {})
    if section == "pretrain" and data.get("input_format") == default_input_format(data.get("objective")):
        data = {**data, "input_format": "auto"}  # set explicitly to what "auto" picks: the same run, the same id
    return {k: v for k, v in data.items() if k not in later or v != later[k]}


def _payload_dict(section, config):
    return without_later_defaults(section, to_dict(config))


def content_id(payload):
    """First 12 hex digits of sha256 of the canonical JSON of `payload` (sorted keys, no spaces)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def pretrain_payload(kind, model, pretrain, export_at=()):
    """What a pretraining run (kind "pretrain") or a random init (kind "random_init") depends on."""
    if kind == "random_init":  # only what the initialisation depends on
        return {"hash_version": HASH_VERSION, "kind": kind, "model": to_dict(model), "vocab": pretrain.vocab,
                "lowercase": pretrain.lowercase, "seed": pretrain.seed}
    # export_at is not part of the run: exports are extra outputs of the same training, so a sweep's run
    # (ablation_steps) and a plain run of the same config (ablation_nsp) are one run. The runner and the
    # loop refuse a run that lacks an export a plan needs (pretraining.loop.missing_exports).
    del export_at
    return {"hash_version": HASH_VERSION, "kind": kind, "model": to_dict(model),
            "pretrain": _payload_dict("pretrain", pretrain)}


def finetune_payload(pretrain_id, init, finetune, data):
    """What a fine-tuning run depends on: its pretraining, the encoder it starts from, its config, and
    which data it reads ("sample" or "external"; not the path)."""
    return {"hash_version": HASH_VERSION, "kind": "finetune", "pretrain_id": pretrain_id, "init": init,
            "finetune": _payload_dict("finetune", finetune), "data": data}
