"""Span extraction (SQuAD v1.1 / v2.0): a question and its context -> an answer span (or none).

    inputs   token_ids / segment_ids / padding_mask [n_windows, seq] int32: sliding windows
             [CLS] question [SEP] context window [SEP] (bertbench.finetuning.squad_windows)
    targets  [n_windows, 2] start/end token of the answer; both 0 ([CLS]) when the window does not
             hold it or the question is impossible (v2.0), as google-research/bert run_squad
    model    dense(2) on each token's output -> start/end logits [b, seq, 2]
    loss     mean of the start and end cross-entropies
    file     JSON {question id: answer text} ("" = no answer); v2.0 also null_odds.json
    metrics  official evaluate-v1.1.py / evaluate-v2.0.py (exact, f1, HasAns/NoAns, best_*)

SQuAD v2.0: the no-answer threshold on score_diff = null - best non-null is chosen on dev for the
best F1 (as in the paper); the reported exact/f1/HasAns/NoAns are at that threshold, best_f1 and
best_exact are the official sweep's.
"""

import dataclasses
import json

import numpy as np

from bertbench.evaluation import metrics, per_example
from bertbench.files import write_text_atomic
from bertbench.finetuning.data import Encoded
from bertbench.finetuning.prediction_files import check_ids, read_json_map, require_gold
from bertbench.finetuning.squad_windows import make_windows, postprocess, windows_to_arrays
from bertbench.tasks.base import require_file
from bertbench.tasks.squad import gold_answers, squad_version

FEATURE_BASED = False
# Not invariant to padding, as google-research/bert run_squad: the start/end softmax of the loss and the
# n-best search (top n_best_size positions, padding included) both see the padding positions, so
# SQuAD windows always run at full max_seq_length.
PADDING_INVARIANT = False
ROW_FORM = "squad"  # bertbench.evaluation.per_example: per-question official exact / f1


@dataclasses.dataclass
class Answers:
    """SQuAD predictions and what scoring them takes."""

    texts: dict  # {question id: answer text}, "" = no answer
    na_probs: dict = None  # {qid: no-answer score} for the official threshold sweep (best_*)
    na_prob_thresh: float = 1.0  # official: answer "" when na_prob > this
    tuned: dict = dataclasses.field(default_factory=dict)  # v2.0 fine-tuning: reported with the metrics
    null_odds: dict = None  # {qid: null - best non-null score}, written beside the predictions
    missing: tuple = None  # read from a file: the gold questions it has no answer for (they score 0)


def encode(spec, examples, tokenizer, cfg):
    windows = make_windows(examples, tokenizer, cfg.max_seq_length, cfg.doc_stride, cfg.max_query_length)
    arrays = windows_to_arrays(windows)
    inputs = {k: arrays[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    targets = np.stack([arrays["start_positions"], arrays["end_positions"]], axis=1).astype(np.int32)
    return Encoded(inputs, targets, {"windows": windows})


def build_head(encoder, spec, cfg):
    import keras

    from bertbench.model import heads

    inputs = heads.encoder_inputs()
    x = heads.token_features(encoder, inputs, cfg.head)
    logits = heads.output_dense(2, "span_logits")(x)  # [b, s, 2]
    return keras.Model(inputs, logits, name="span_model")


def loss(y_true, y_pred):
    """y_true [b, 2] (start, end) token positions, y_pred [b, s, 2] logits -> [b] mean of the two CEs."""
    import keras
    from keras import ops

    positions = ops.cast(y_true, "int32")
    start = keras.losses.sparse_categorical_crossentropy(positions[:, 0], y_pred[:, :, 0], from_logits=True)
    end = keras.losses.sparse_categorical_crossentropy(positions[:, 1], y_pred[:, :, 1], from_logits=True)
    return (start + end) / 2.0


def predict(spec, examples, encoded, logits, cfg):
    """v1.1: the n-best answers. v2.0: answers at the score-diff threshold best for dev F1."""
    logits = np.asarray(logits)
    args = (examples, encoded.meta["windows"], logits[:, :, 0], logits[:, :, 1], cfg.n_best_size,
            cfg.max_answer_length)
    if squad_version(spec.name) != "2.0":
        return Answers(postprocess(*args)[0])
    # Best non-null answer everywhere + score diffs; the official find_best_thresh picks the threshold.
    answers, diffs = postprocess(*args, version_2=True, null_score_diff_threshold=float("inf"))
    finite = {q: (d if np.isfinite(d) else 1e9) for q, d in diffs.items()}  # "no span at all" = never answer
    probs = rank_probabilities(finite)
    sweep = score(spec, examples, Answers(answers, na_probs=probs))
    threshold = diff_threshold(finite, probs, sweep["best_f1_thresh"])
    texts, _ = postprocess(*args, version_2=True, null_score_diff_threshold=threshold)
    tuned = {k: sweep[k] for k in ("best_f1", "best_exact") if k in sweep}
    tuned["null_score_diff_threshold"] = threshold if np.isfinite(threshold) else None  # None: never answer
    return Answers(texts, tuned=tuned, null_odds=finite)


def rank_probabilities(diffs):
    """score diffs -> values in (0, 1) with the same order (ties equal): (rank + 1) / (n + 1).

    evaluate-v2.0.py's find_best_thresh starts from "answer nothing" at threshold 0.0, which is right
    for probabilities but not for score diffs (they can be negative); ranks keep its semantics.
    """
    values = np.asarray(list(diffs.values()), float)
    ranks = np.searchsorted(np.sort(values), values, side="right")  # ties share the highest rank
    return {q: float(r) / (len(values) + 1) for q, r in zip(diffs, ranks, strict=True)}


def diff_threshold(diffs, probs, prob_threshold):
    """The score-diff threshold equal to a rank-probability threshold (-inf: answer nothing)."""
    kept = [d for q, d in diffs.items() if probs[q] <= prob_threshold]
    return float(max(kept)) if kept else float("-inf")


def write_predictions(stem, examples, indices, predictions):
    """`<stem>.json` {qid: answer}; v2.0 fine-tuning also writes null_odds.json (the na-prob file)."""
    path = stem.with_suffix(".json")
    write_text_atomic(path, json.dumps(predictions.texts, indent=1, ensure_ascii=False))
    if predictions.null_odds is not None:
        write_text_atomic(stem.parent / "null_odds.json", json.dumps(predictions.null_odds, indent=1))
    return path


def read_predictions(spec, path, gold, na_prob=None, na_prob_thresh=1.0, **options):
    """The gold questions and the answers of a JSON predictions file (+ an optional na-prob file).

    As evaluate-v1.1.py, a file may answer only part of the questions: the others score 0 and still
    count (`Answers.missing`; `bertbench score` reports their number). An id the gold file lacks is an
    error, and a na-prob file must cover every answered question.
    """
    examples = spec.read_gold(require_gold(spec, gold))
    qids = {ex.qid for ex in examples}
    texts = read_json_map(path, str, "an answer string")
    check_ids(qids, texts, path, required=set())
    probs = None
    if na_prob:
        probs = read_json_map(require_file(na_prob, "na-prob file", tfds=False), float, "a number")
        check_ids(qids, probs, na_prob, required=set(texts))
    missing = tuple(ex.qid for ex in examples if ex.qid not in texts)
    return examples, Answers(texts, probs, na_prob_thresh, missing=missing)


def score(spec, examples, predictions):
    """Official v1.1 or v2.0 metrics of `predictions` (Answers), plus what fine-tuning tuned on dev;
    for a file, `missing`: the number of questions it does not answer (scored 0)."""
    golds = gold_answers(examples)
    if squad_version(spec.name) == "2.0":
        result = squad_v2_partial(golds, predictions)
    else:
        result = metrics.squad_v1(golds, predictions.texts)  # a missing answer scores 0 there
    if predictions.missing is not None:
        result["missing"] = len(predictions.missing)
    return {**result, **predictions.tuned}


def squad_v2_partial(golds, predictions):
    """evaluate-v2.0.py's metrics where every question without an answer scores 0 (the rule of
    evaluate-v1.1.py; v2.0's own script stops with a KeyError on such a file).

    The official metrics of the answered questions, rescaled: each is a mean over a set of questions
    (all, HasAns, NoAns; the best-threshold sweeps too, as 0 is added at every threshold), so with 0
    for the others it is the answered mean x answered / all of that set.
    """
    answered = {q: a for q, a in golds.items() if q in predictions.texts}
    if len(answered) == len(golds):
        return metrics.squad_v2(golds, predictions.texts, predictions.na_probs, predictions.na_prob_thresh)
    result = (metrics.squad_v2(answered, predictions.texts, predictions.na_probs, predictions.na_prob_thresh)
              if answered else {})
    out = {"exact": result.get("exact", 0.0) * len(answered) / len(golds),
           "f1": result.get("f1", 0.0) * len(answered) / len(golds), "total": len(golds)}
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        every = [q for q, answers in golds.items() if bool(answers) == wanted]
        if every:
            share = sum(1 for q in every if q in answered) / len(every)
            out[f"{prefix}_exact"] = result.get(f"{prefix}_exact", 0.0) * share
            out[f"{prefix}_f1"] = result.get(f"{prefix}_f1", 0.0) * share
            out[f"{prefix}_total"] = len(every)
    if predictions.na_probs is not None:
        for name in ("best_exact", "best_f1"):
            out[name] = result.get(name, 0.0) * len(answered) / len(golds)
            out[f"{name}_thresh"] = result.get(f"{name}_thresh", 0.0)
    return out


def example_rows(spec, examples, predictions):
    """Per-question [exact, f1] of the official script (bertbench.evaluation.per_example, form "squad")."""
    return per_example.rows(ROW_FORM, gold_answers(examples), predictions.texts,
                            version_2=squad_version(spec.name) == "2.0")


def constant_predictions(spec, train_examples, examples):
    """The constant baseline of SQuAD: no answer ("") for every question."""
    return Answers({ex.qid: "" for ex in examples})


def single_prediction(predictions):
    """Whether every question gets the same answer text (e.g. always no answer: a collapsed run)."""
    return len(set(predictions.texts.values())) <= 1
