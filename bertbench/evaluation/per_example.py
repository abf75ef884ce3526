"""Per-example statistics of a run's dev predictions, from which its corpus-level metric is recomputed.

A one-seed table still gets honest error bars by resampling dev examples (bertbench.evaluation.stats);
that needs each metric as a function of per-example rows, summed or averaged:

    metric       one row per                 row                       metric of the rows
    accuracy     example                     [correct]                 100 * mean
    f1           example (positive "1")      [tp, fp, fn]              100 * 2tp / (2tp + fp + fn)
    mcc          example (binary)            [tp, fp, fn, tn]          Matthews of the summed counts
    pearson,     example                     [gold, prediction]        100 * correlation
    spearman
    exact, f1    SQuAD question              [exact, f1] (official)    mean (already in %)
    f1, ...      CoNLL sentence              [correct, found_pred,     conlleval's F1 of the sums
                                              found_gold]

`rows(kind, metric, golds, predictions)` builds them; `value(kind, metric, rows)` recomputes the metric,
equal to bertbench.evaluation.metrics on the same predictions (tested).
"""

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.evaluation import metrics

POSITIVE = "1"  # GLUE's positive class for F1 (MRPC, QQP) and MCC (CoLA)


def _binary_counts(golds, preds):
    gold = np.asarray([str(g) == POSITIVE for g in golds])
    pred = np.asarray([str(p) == POSITIVE for p in preds])
    return np.stack([gold & pred, ~gold & pred, gold & ~pred, ~gold & ~pred], axis=1).astype(float)


def _classification_rows(metric, golds, preds):
    if metric == "accuracy":
        return (np.asarray(golds, object) == np.asarray(preds, object)).astype(float)[:, None]
    if metric == "f1":
        return _binary_counts(golds, preds)[:, :3]
    if metric == "mcc":
        return _binary_counts(golds, preds)
    if metric in ("pearson", "spearman"):
        return np.stack([np.asarray(golds, float), np.asarray(preds, float)], axis=1)
    raise BertbenchError(f"no per-example form for metric '{metric}'")


def _classification_value(metric, rows):
    if metric == "accuracy":
        return 100.0 * float(rows[:, 0].mean())
    if metric == "f1":
        tp, fp, fn = rows.sum(axis=0)
        return 100.0 * (2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0)
    if metric == "mcc":
        tp, fp, fn, tn = rows.sum(axis=0)
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return 100.0 * float((tp * tn - fp * fn) / denominator) if denominator else 0.0
    return metrics.correlations(rows[:, 0], rows[:, 1])[metric]


def _squad_rows(metric, golds, predictions, version_2):
    """golds {qid: [answers]}, predictions {qid: text} -> [n_questions, 2] (exact, f1) in %."""
    score = metrics.squad_v2 if version_2 else metrics.squad_v1
    rows = []
    for qid, answers in golds.items():
        one = score({qid: answers}, {qid: predictions[qid]} if qid in predictions else {})
        rows.append([one["exact"], one["f1"]])
    return np.asarray(rows, float)


def _tagging_rows(golds, preds):
    rows = []
    for gold, pred in zip(golds, preds, strict=True):
        counts = metrics.conlleval([list(zip(gold, pred, strict=True))])
        rows.append([counts["correct"], counts["found_pred"], counts["found_gold"]])
    return np.asarray(rows, float)


def _prf(correct, found_pred, found_gold):
    """conlleval's precision, recall and F1 (%) of summed chunk counts."""
    precision = 100.0 * correct / found_pred if found_pred else 0.0
    recall = 100.0 * correct / found_gold if found_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def rows(kind, metric, golds, predictions, version_2=False):
    """Per-example rows [n, k] of `metric` for a task kind (see the module docstring)."""
    if kind == "span":
        if metric not in ("exact", "f1"):
            raise BertbenchError(f"no per-example form for SQuAD metric '{metric}'")
        return _squad_rows(metric, golds, predictions, version_2)
    if kind == "tagging":
        if metric not in ("f1", "precision", "recall"):
            raise BertbenchError(f"no per-example form for NER metric '{metric}'")
        return _tagging_rows(golds, predictions)
    return _classification_rows(metric, golds, predictions)


def value(kind, metric, example_rows):
    """The corpus-level metric (in %) of per-example rows, as bertbench.evaluation.metrics gives it."""
    example_rows = np.asarray(example_rows, float)
    if kind == "span":
        return float(example_rows[:, 0 if metric == "exact" else 1].mean())
    if kind == "tagging":
        return _prf(*example_rows.sum(axis=0))[metric]
    return _classification_value(metric, example_rows)
