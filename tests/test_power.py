"""Power lines from hand-made records: the pooled SD of paired differences, by hand, turned into seeds by
bertbench.evaluation.stats.seeds_for_power."""

import dataclasses
import math

import pytest

from bertbench.evaluation import stats
from bertbench.experiments.schema import Column, load_experiment
from bertbench.results.cells import table_cells
from bertbench.results.power import paired_sd, power_lines

PPL = Column("LM (ppl)", source="pretrain", metric="heldout.lm_perplexity", decimals=2)


def ft(variant, seed, value, pretrain_seed=0):
    return {"kind": "finetune", "experiment": "ablation_nsp", "variant": variant, "column": "MNLI-m", "seed": seed,
            "pretrain_seed": pretrain_seed, "status": "ok", "grid": {}, "main_metric": {"value": value}}


@pytest.fixture
def experiment():
    exp = load_experiment("ablation_nsp")
    return dataclasses.replace(exp, columns=(exp.columns[0], PPL))


@pytest.fixture
def records():
    """Paired differences to BERT: No NSP (1, 3) on seeds 0, 1 (its seed 5 has no partner); LTR (0, 2, 4)
    on seeds 0-2; + BiLSTM one pair only (not used). Pooled variance (1 x 2 + 2 x 4) / 3 = 10/3."""
    bert = [ft("bert", s, 70.0 + s) for s in range(3)]
    return bert + [ft("no_nsp", 0, 71.0), ft("no_nsp", 1, 74.0), ft("no_nsp", 5, 90.0),
                   ft("ltr_no_nsp", 0, 70.0), ft("ltr_no_nsp", 1, 73.0), ft("ltr_no_nsp", 2, 76.0),
                   ft("ltr_bilstm", 0, 60.0), ft("ltr_bilstm", 1, 80.0, pretrain_seed=1)]


def test_pooled_paired_sd_by_hand(records, experiment):
    _, cells = table_cells(records, experiment)
    sd, used, pairs = paired_sd(cells["MNLI-m"], "bert")
    assert sd == pytest.approx(math.sqrt(10 / 3)) and (used, pairs) == (2, 5)
    assert math.isnan(paired_sd(cells["LM (ppl)"], "bert")[0])


def test_power_lines(records, experiment):
    lines = power_lines(records, experiment)
    sd = math.sqrt(10 / 3)
    one, two = stats.seeds_for_power(sd, 1.0), stats.seeds_for_power(sd, 2.0)
    # effects 0.548 and 1.095 SDs: the normal approximation (1.96 + 0.84)² / d² gives 26.2 and 6.5 seeds; the
    # paired t-test needs a few more
    assert (one, two) == (29, 9)
    assert lines[1] == (f"  MNLI-m: paired SD 1.83 (2 comparisons, 5 pairs) -> 1 point: {one} seeds, "
                        f"2 points: {two} seeds")
    assert lines[2] == "  LM (ppl): not measurable yet (needs a comparison with ≥ 2 paired pretraining seeds)"
    assert lines[0].startswith("power (80% power, two-sided α 0.05, paired seeds")
    assert power_lines(records, dataclasses.replace(experiment, reference=""))[0].endswith("no paired comparisons")
