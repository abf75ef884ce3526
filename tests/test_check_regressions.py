"""`check` catches real regressions: a baseline calibrated from the unchanged code, then the same suite with
the code broken in the process that runs it (the real pretraining and fine-tuning loops, no fake metric).

The suite is reduced to stay within CI time (the module: 153 CPU-s, 4 min wall on 2 shared cores): ablation_nsp's
`bert` at ci scale pretrained PRETRAIN_STEPS steps at seq 32 (one phase), fine-tuned on SST-2 (256
examples, 1 epoch, 200 dev examples), plus the held-out MLM perplexity, whose band is its 2% floor.
Measured: unchanged 1118.5 (rerun: identical); learning rate x100 1201.6 (+7.4%; SST-2 47.0 against
53.0); 80/10/10 masking swapped to 0/0/100 1186.7 (+6.1%: without the 10% kept tokens the model cannot
learn to copy them). At 100 steps (seq 64) the swap moved it by only 1.8%, under the floor.
"""

import dataclasses
import shutil

import pytest

from bertbench.experiments.schema import EXPERIMENTS_DIR, SCALES_FILE
from bertbench.results.check import calibrate, run_check

pytestmark = pytest.mark.slow

PRETRAIN_STEPS = 200
SUITE = {"experiment": "check_suite", "scale": "ci", "only": ["bert"], "columns": ["SST-2"]}
EXPERIMENT = f"""
title = "check's regression test suite (tests/test_check_regressions.py)"
reference = "bert"

[[columns]]
name = "SST-2"
task = "sst2"
metric = "accuracy"

[[variants]]
name = "bert"
row = "BERT"
set = {{ pretrain.objective = "mlm+nsp" }}

[scales.ci]
set = {{ pretrain.num_steps = {PRETRAIN_STEPS}, pretrain.warmup_steps = {PRETRAIN_STEPS // 10}, \
pretrain.checkpoint_every = {PRETRAIN_STEPS}, pretrain.max_seq_length = 32, pretrain.phase2_fraction = 0.0, \
finetune.max_train_examples = 256, finetune.epochs = 1.0, finetune.max_eval_examples = 200 }}
"""
PERPLEXITY = "bert/pretrain/heldout.lm_perplexity"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A baseline calibrated from 2 fine-tuning seeds of the unchanged code (the suite's experiment
    folder stays set for the module's tests)."""
    folder = tmp_path_factory.mktemp("check")
    experiments = folder / "experiments"
    experiments.mkdir()
    shutil.copy(EXPERIMENTS_DIR / SCALES_FILE, experiments / SCALES_FILE)
    (experiments / "check_suite.toml").write_text(EXPERIMENT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BERTBENCH_EXPERIMENTS", str(experiments))
        lines = []
        assert calibrate(2, folder / "ci.json", suite=SUITE, out=lines.append, workdir=folder) == 0
        print("\n".join(lines[-3:]))
        yield folder / "ci.json"


def check(baseline):
    lines = []
    status = run_check(baseline, out=lines.append, workdir=baseline.parent)
    table = lines[-3]
    print(table)
    return status, {line.split()[0]: line.split()[-1] for line in table.splitlines()[1:]}


def test_unchanged_code_passes(baseline):
    status, rows = check(baseline)
    assert status == 0 and set(rows.values()) <= {"ok", "better"}


def test_learning_rate_schedule_x100_fails(baseline, monkeypatch):
    from bertbench.model.optimization import WarmupLinearDecay

    schedule = WarmupLinearDecay.__call__
    monkeypatch.setattr(WarmupLinearDecay, "__call__", lambda self, step: 100.0 * schedule(self, step))
    status, rows = check(baseline)
    assert status == 1 and rows[PERPLEXITY] == "REGRESSION"


def test_masking_80_10_10_swapped_to_0_0_100_fails(baseline, monkeypatch):
    import bertbench.pretraining.dataset as dataset

    mask = dataset.tf_mask_tokens  # the dynamic masking of the tf.data pipeline (training and held-out)
    monkeypatch.setattr(dataset, "tf_mask_tokens", lambda token_ids, lengths, spec, seed: mask(
        token_ids, lengths, dataclasses.replace(spec, fractions=(0.0, 0.0, 1.0)), seed))
    status, rows = check(baseline)
    assert status == 1 and rows[PERPLEXITY] == "REGRESSION"
