"""Per-example rows recompute each official metric exactly (bertbench.evaluation.metrics)."""

import numpy as np
import pytest

from bertbench.errors import BertbenchError
from bertbench.evaluation import metrics, per_example


def _labels(seed, n, classes=("0", "1")):
    rng = np.random.default_rng(seed)
    return [classes[i] for i in rng.integers(0, len(classes), n)]


@pytest.mark.parametrize("metric", ["accuracy", "f1", "mcc"])
def test_label_metrics_from_rows_equal_the_official_ones(metric):
    golds, preds = _labels(0, 300), _labels(1, 300)
    rows = per_example.rows("labels", golds, preds)
    assert rows.shape == (300, 5)
    expected = metrics.glue_metrics((metric,), golds, preds)[metric]
    assert per_example.value("labels", metric, rows) == pytest.approx(expected, abs=1e-9)
    constant = per_example.rows("labels", golds, ["0"] * 300)  # a collapsed run: MCC and F1 are 0
    assert per_example.value("labels", metric, constant) == pytest.approx(
        metrics.glue_metrics((metric,), golds, ["0"] * 300)[metric], abs=1e-9)


def test_multiclass_accuracy_and_correlations_from_rows():
    golds, preds = _labels(2, 200, ("a", "b", "c")), _labels(3, 200, ("a", "b", "c"))
    rows = per_example.rows("labels", golds, preds)
    assert per_example.value("labels", "accuracy", rows) == pytest.approx(metrics.accuracy(golds, preds))
    choice_golds, choice_preds = [0, 1, 2, 3, 1], [0, 1, 3, 3, 2]  # SWAG: choice indices
    rows = per_example.rows("labels", choice_golds, choice_preds)
    assert per_example.value("labels", "accuracy", rows) == pytest.approx(60.0)
    rng = np.random.default_rng(4)
    gold_scores = rng.uniform(0, 5, 100)
    pred_scores = gold_scores + rng.normal(0, 1, 100)
    rows = per_example.rows("scores", gold_scores, pred_scores)
    for name in ("pearson", "spearman"):
        expected = metrics.correlations(gold_scores, pred_scores)[name]
        assert per_example.value("scores", name, rows) == pytest.approx(expected)


def test_squad_rows_average_to_the_official_scores():
    golds = {"q1": ["the cat", "a cat"], "q2": ["Paris"], "q3": ["in 1990"], "q4": ["blue whale"]}
    preds = {"q1": "cat", "q2": "Paris, France", "q3": "1990"}  # q4 missing: scores 0 as the official script
    rows = per_example.rows("squad", golds, preds)
    official = metrics.squad_v1(golds, preds)
    assert per_example.value("squad", "f1", rows) == pytest.approx(official["f1"])
    assert per_example.value("squad", "exact", rows) == pytest.approx(official["exact"])
    golds2 = {"a": ["x y"], "b": []}  # v2.0: "b" has no answer; answering "" is right
    rows2 = per_example.rows("squad", golds2, {"a": "x", "b": ""}, version_2=True)
    official2 = metrics.squad_v2(golds2, {"a": "x", "b": ""})
    assert per_example.value("squad", "f1", rows2) == pytest.approx(official2["f1"])


def test_ner_rows_sum_to_conlleval():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"], ["O", "B-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O"], ["B-ORG", "O"], ["O", "B-ORG", "O"]]
    rows = per_example.rows("chunks", gold, pred)
    official = metrics.ner_metrics(gold, pred)
    for name in ("f1", "precision", "recall"):
        assert per_example.value("chunks", name, rows) == pytest.approx(official[name])


def test_unknown_forms_and_metrics_are_one_line_errors():
    assert not per_example.has_rows("labels", "spearman")
    with pytest.raises(BertbenchError, match="cannot be recomputed"):
        per_example.value("labels", "spearman", [[1, 0, 0, 0, 1]])
    with pytest.raises(BertbenchError, match="unknown per-example form"):
        per_example.rows("pixels", [], [])
