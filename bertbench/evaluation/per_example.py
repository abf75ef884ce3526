"""Per-example rows of a run's dev predictions, from which its corpus-level metrics are recomputed.

A one-seed table still gets honest error bars by resampling dev examples (bertbench.evaluation.stats);
that needs each metric as a function of per-example rows. One row layout per *form* of prediction
(a task kind names its form: bertbench.finetuning.<kind>.ROW_FORM):

    form       one row per           row                                  metrics of the rows
    labels     example               [correct, tp, fp, fn, tn]            accuracy; f1, mcc of class "1"
    scores     example               [gold, prediction]                   pearson, spearman
    squad      question              [exact, f1] (official, in %)         exact, f1 (means)
    chunks     sentence              [correct, found_pred, found_gold]    f1, precision, recall (conlleval)

`rows(form, golds, predictions)` builds them; `value(form, metric, rows)` recomputes a metric, equal
to bertbench.evaluation.metrics on the same predictions (tested).
"""

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.evaluation import metrics

POSITIVE = "1"  # GLUE's positive class for F1 (MRPC, QQP) and MCC (CoLA)
METRICS_OF = {"labels": ("accuracy", "f1", "mcc"), "scores": ("pearson", "spearman"),
              "squad": ("exact", "f1"), "chunks": ("f1", "precision", "recall")}


def _label_rows(golds, preds):
    gold = np.asarray([str(g) for g in golds], object)
    pred = np.asarray([str(p) for p in preds], object)
    g, p = gold == POSITIVE, pred == POSITIVE
    return np.stack([gold == pred, g & p, ~g & p, g & ~p, ~g & ~p], axis=1).astype(float)


def _squad_rows(golds, predictions, version_2):
    """golds {qid: [answers]}, predictions {qid: text} -> [n_questions, 2] (exact, f1) in %."""
    score = metrics.squad_v2 if version_2 else metrics.squad_v1
    out = []
    for qid, answers in golds.items():
        one = score({qid: answers}, {qid: predictions[qid]} if qid in predictions else {})
        out.append([one["exact"], one["f1"]])
    return np.asarray(out, float)


def _chunk_rows(golds, preds):
    out = []
    for gold, pred in zip(golds, preds, strict=True):
        counts = metrics.conlleval([list(zip(gold, pred, strict=True))])
        out.append([counts["correct"], counts["found_pred"], counts["found_gold"]])
    return np.asarray(out, float)


def rows(form, golds, predictions, version_2=False):
    """Per-example rows [n, k] of a form (see the module docstring); version_2: SQuAD v2.0 scoring."""
    if form == "labels":
        return _label_rows(golds, predictions)
    if form == "scores":
        return np.stack([np.asarray(golds, float), np.asarray(predictions, float)], axis=1)
    if form == "squad":
        return _squad_rows(golds, predictions, version_2)
    if form == "chunks":
        return _chunk_rows(golds, predictions)
    raise BertbenchError(f"unknown per-example form '{form}'; known: {', '.join(METRICS_OF)}")


def _label_value(metric, example_rows):
    correct, tp, fp, fn, tn = example_rows.sum(axis=0)
    if metric == "accuracy":
        return 100.0 * float(correct / len(example_rows))
    if metric == "f1":
        return 100.0 * float(2 * tp / (2 * tp + fp + fn)) if 2 * tp + fp + fn else 0.0
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))  # mcc
    return 100.0 * float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def has_rows(form, metric):
    """Whether `metric` can be recomputed from rows of `form`."""
    return metric in METRICS_OF.get(form, ())


def value(form, metric, example_rows):
    """Metric `metric` (in %) of per-example rows, as bertbench.evaluation.metrics gives it."""
    if not has_rows(form, metric):
        raise BertbenchError(f"metric '{metric}' cannot be recomputed from '{form}' rows")
    example_rows = np.asarray(example_rows, float)
    if form == "labels":
        return _label_value(metric, example_rows)
    if form == "scores":
        return metrics.correlations(example_rows[:, 0], example_rows[:, 1])[metric]
    if form == "squad":
        return float(example_rows[:, 0 if metric == "exact" else 1].mean())
    return metrics.prf(*example_rows.sum(axis=0))[metric]
