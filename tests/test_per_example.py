"""Per-example rows recompute each official metric exactly (bertbench.evaluation.metrics)."""

import numpy as np
import pytest

from bertbench.evaluation import metrics, per_example


def _labels(seed, n, classes=("0", "1")):
    rng = np.random.default_rng(seed)
    return [classes[i] for i in rng.integers(0, len(classes), n)]


@pytest.mark.parametrize("metric", ["accuracy", "f1", "mcc"])
def test_classification_metrics_from_rows_equal_the_official_ones(metric):
    golds, preds = _labels(0, 300), _labels(1, 300)
    rows = per_example.rows("classification", metric, golds, preds)
    assert rows.shape[0] == 300
    expected = metrics.glue_metrics((metric,), golds, preds)[metric]
    assert per_example.value("classification", metric, rows) == pytest.approx(expected, abs=1e-9)


def test_multiclass_accuracy_and_correlations_from_rows():
    golds, preds = _labels(2, 200, ("a", "b", "c")), _labels(3, 200, ("a", "b", "c"))
    rows = per_example.rows("classification", "accuracy", golds, preds)
    assert per_example.value("classification", "accuracy", rows) == pytest.approx(metrics.accuracy(golds, preds))
    rng = np.random.default_rng(4)
    gold_scores = rng.uniform(0, 5, 100)
    pred_scores = gold_scores + rng.normal(0, 1, 100)
    for name in ("pearson", "spearman"):
        rows = per_example.rows("regression", name, gold_scores, pred_scores)
        expected = metrics.correlations(gold_scores, pred_scores)[name]
        assert per_example.value("regression", name, rows) == pytest.approx(expected)


def test_squad_rows_average_to_the_official_scores():
    golds = {"q1": ["the cat", "a cat"], "q2": ["Paris"], "q3": ["in 1990"], "q4": ["blue whale"]}
    preds = {"q1": "cat", "q2": "Paris, France", "q3": "1990"}  # q4 missing: scores 0 as the official script
    rows = per_example.rows("span", "f1", golds, preds)
    official = metrics.squad_v1(golds, preds)
    assert per_example.value("span", "f1", rows) == pytest.approx(official["f1"])
    assert per_example.value("span", "exact", rows) == pytest.approx(official["exact"])


def test_ner_rows_sum_to_conlleval():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"], ["O", "B-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O"], ["B-ORG", "O"], ["O", "B-ORG", "O"]]
    rows = per_example.rows("tagging", "f1", gold, pred)
    official = metrics.ner_metrics(gold, pred)
    for name in ("f1", "precision", "recall"):
        assert per_example.value("tagging", name, rows) == pytest.approx(official[name])
