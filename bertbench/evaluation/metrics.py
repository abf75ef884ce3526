"""The official metrics, computed once over a whole dev set (numpy / plain Python). Values are %.

GLUE: accuracy; F1 of the positive class "1" (MRPC, QQP); Matthews correlation (CoLA, sklearn);
Pearson and Spearman correlation (STS-B, scipy). `glue_average` is the paper's Table 1 "Average":
the mean of MNLI-m, MNLI-mm, QQP F1, QNLI, SST-2, CoLA MCC, STS-B Spearman, MRPC F1 and RTE, WNLI
excluded.
SQuAD: the official `evaluate-v1.1.py` and `evaluate-v2.0.py` definitions (normalize_answer, EM, F1,
max over gold answers; v2.0 no-answer gold = "", HasAns/NoAns, `find_best_thresh` over na-probs).
CoNLL: a line-by-line port of the `conlleval` perl script (2004-01-26 version): chunks start and end
by its startOfChunk/endOfChunk rules, so IOB1 and IOB2 input both score correctly.
Every metric name and its direction: `METRICS` / `higher_is_better(name)` at the end.
"""

import collections
import re
import string

import numpy as np

from bertbench.errors import BertbenchError, unknown_name


# ---- GLUE -----------------------------------------------------------------------------------
def _same_length(golds, preds):
    if len(golds) != len(preds):
        raise BertbenchError(f"{len(preds)} predictions for {len(golds)} gold labels; pass one "
                             f"prediction per example")
    if not len(golds):
        raise BertbenchError("no examples to score; the dev set is empty")


def accuracy(golds, preds):
    _same_length(golds, preds)
    return 100.0 * float(np.mean(np.asarray(golds) == np.asarray(preds)))


def f1_positive(golds, preds, positive="1"):
    """F1 of the positive class, as GLUE reports for MRPC and QQP (sklearn's binary F1)."""
    _same_length(golds, preds)
    gold, pred = np.asarray(golds) == positive, np.asarray(preds) == positive
    tp = float(np.sum(gold & pred))
    denominator = float(np.sum(gold) + np.sum(pred))
    return 100.0 * (2 * tp / denominator if denominator else 0.0)


def matthews(golds, preds):
    from sklearn.metrics import matthews_corrcoef

    _same_length(golds, preds)
    return 100.0 * float(matthews_corrcoef(list(golds), list(preds)))


def correlations(golds, preds):
    """{"pearson", "spearman"} of float scores (STS-B)."""
    from scipy import stats

    _same_length(golds, preds)
    golds, preds = np.asarray(golds, float), np.asarray(preds, float)
    if np.all(preds == preds[0]) or np.all(golds == golds[0]):
        return {"pearson": 0.0, "spearman": 0.0}  # undefined (constant input): no correlation
    return {"pearson": 100.0 * float(stats.pearsonr(golds, preds)[0]),
            "spearman": 100.0 * float(stats.spearmanr(golds, preds)[0])}


def glue_metrics(metric_names, golds, preds):
    """The named GLUE metrics of one task: {"accuracy", "f1", "mcc", "pearson", "spearman"}."""
    out = {}
    for name in metric_names:
        fn = METRICS[name][0] if name in METRICS else None
        if fn is None:
            raise BertbenchError(f"unknown GLUE metric '{name}'")
        value = fn(golds, preds)
        out.update(value if isinstance(value, dict) else {name: value})  # correlations: both at once
    return out


# The number each GLUE column of the paper's Table 1 reports.
GLUE_COLUMNS = {"mnli_m": "accuracy", "mnli_mm": "accuracy", "qqp": "f1", "qnli": "accuracy",
                "sst2": "accuracy", "cola": "mcc", "stsb": "spearman", "mrpc": "f1", "rte": "accuracy"}


def glue_average(scores):
    """The paper's GLUE "Average": mean of the Table 1 columns present in `scores`.

    `scores` maps "mnli_m", "mnli_mm", "qqp", "qnli", "sst2", "cola", "stsb", "mrpc", "rte" (and
    optionally "wnli", which is excluded as in the paper) to a metrics dict or to the number itself.
    """
    values = []
    for name, value in scores.items():
        if name == "wnli":
            continue
        if name not in GLUE_COLUMNS:
            raise BertbenchError(f"glue_average: unknown column '{name}'; use "
                                 f"{', '.join(GLUE_COLUMNS)} (MNLI as mnli_m and mnli_mm)")
        values.append(float(value[GLUE_COLUMNS[name]] if isinstance(value, dict) else value))
    if not values:
        raise BertbenchError("glue_average: no GLUE task scores given")
    return float(np.mean(values))


# ---- SQuAD (official evaluate-v1.1.py / evaluate-v2.0.py) --------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace (official)."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _tokens(s):
    return normalize_answer(s).split() if s else []


def exact_score(gold, pred):
    return int(normalize_answer(gold) == normalize_answer(pred))


def f1_score(gold, pred):
    """Token-overlap F1 of v2.0 (equal to v1.1's whenever the gold answer is non-empty)."""
    gold_toks, pred_toks = _tokens(gold), _tokens(pred)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)  # no-answer: 1 if both empty
    common = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_toks), common / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _v1_f1(gold, pred):
    """evaluate-v1.1.py's f1_score: 0 when there is no overlap (also for empty strings)."""
    gold_toks, pred_toks = normalize_answer(gold).split(), normalize_answer(pred).split()
    common = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_toks), common / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def squad_v1(golds, predictions):
    """Official v1.1: {"exact", "f1"}; `golds` {qid: [answer texts]}, `predictions` {qid: text}.

    As the official script, a question without a prediction scores 0 and still counts.
    """
    if not golds:
        raise BertbenchError("no SQuAD questions to score")
    exact = f1 = 0.0
    for qid, answers in golds.items():
        if not answers:
            raise BertbenchError(f"question {qid} has no gold answer; score SQuAD v2.0 data with squad2")
        if qid not in predictions:
            continue
        exact += max(exact_score(a, predictions[qid]) for a in answers)
        f1 += max(_v1_f1(a, predictions[qid]) for a in answers)
    return {"exact": 100.0 * exact / len(golds), "f1": 100.0 * f1 / len(golds)}


def _v2_raw(golds, predictions):
    exact, f1 = {}, {}
    for qid, answers in golds.items():
        answers = [a for a in answers if normalize_answer(a)] or [""]
        if qid not in predictions:
            raise BertbenchError(f"no prediction for question {qid}; SQuAD v2.0 scoring needs one per "
                                 f"question (\"\" for no answer)")
        exact[qid] = max(exact_score(a, predictions[qid]) for a in answers)
        f1[qid] = max(f1_score(a, predictions[qid]) for a in answers)
    return exact, f1


def find_best_thresh(predictions, scores, na_probs, has_answer):
    """evaluate-v2.0.py: (best score %, threshold) when answering "" above a na-prob threshold."""
    cur = best = sum(1 for qid in has_answer if not has_answer[qid])
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            diff = scores[qid]
        else:
            diff = -1 if predictions[qid] else 0
        cur += diff
        if cur > best:
            best, best_thresh = cur, na_probs[qid]
    return 100.0 * best / len(scores), best_thresh


def squad_v2(golds, predictions, na_probs=None, na_prob_thresh=1.0):
    """Official v2.0: exact, f1, total, HasAns_*/NoAns_* and, with na_probs, best_exact/best_f1.

    `golds` {qid: [answer texts]} with [] for unanswerable questions.
    """
    if not golds:
        raise BertbenchError("no SQuAD questions to score")
    has_answer = {qid: bool(answers) for qid, answers in golds.items()}
    exact_raw, f1_raw = _v2_raw(golds, predictions)
    probs = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}
    missing = [qid for qid in golds if qid not in probs]
    if missing:
        raise BertbenchError(f"na-prob file lacks {len(missing)} question(s), e.g. {missing[0]}")

    def threshold(scores):
        return {q: float(not has_answer[q]) if probs[q] > na_prob_thresh else s for q, s in scores.items()}

    exact, f1 = threshold(exact_raw), threshold(f1_raw)
    out = {"exact": 100.0 * sum(exact.values()) / len(exact), "f1": 100.0 * sum(f1.values()) / len(f1),
           "total": len(exact)}
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q in golds if has_answer[q] == wanted]
        if qids:
            out[f"{prefix}_exact"] = 100.0 * sum(exact[q] for q in qids) / len(qids)
            out[f"{prefix}_f1"] = 100.0 * sum(f1[q] for q in qids) / len(qids)
            out[f"{prefix}_total"] = len(qids)
    if na_probs is not None:
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(predictions, exact_raw, probs,
                                                                       has_answer)
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(predictions, f1_raw, probs, has_answer)
    return out


# ---- CoNLL (conlleval) --------------------------------------------------------------------------
def _split_tag(tag):
    """conlleval: 'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''); hyphens may occur in the type."""
    head, sep, kind = tag.partition("-")
    return (head, kind) if sep else (tag, "")


def _end_of_chunk(prev_tag, tag, prev_type, kind):
    if (prev_tag, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"),
                           ("E", "O")}:
        return True
    if prev_tag not in ("O", ".") and prev_type != kind:
        return True
    return prev_tag in ("]", "[")


def _start_of_chunk(prev_tag, tag, prev_type, kind):
    if (prev_tag, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"),
                           ("O", "E")}:
        return True
    if tag not in ("O", ".") and prev_type != kind:
        return True
    return tag in ("[", "]")


def conlleval(sentences):
    """conlleval over [[(gold_tag, pred_tag), ...] per sentence] -> counts and scores (%).

    Returns {"precision", "recall", "f1", "accuracy", "found_gold", "found_pred", "correct",
    "tokens", "per_type": {type: {"precision", "recall", "f1", "found_pred"}}}.
    """
    correct_chunk, found_gold, found_pred = (collections.Counter() for _ in range(3))
    correct_tags = tokens = 0
    in_correct = False
    last_gold, last_pred, last_gold_type, last_pred_type = "O", "O", "", ""
    stream = [pair for sent in sentences for pair in list(sent) + [None]]  # None = sentence break
    for pair in stream:
        (gold, gold_type), (pred, pred_type) = ((("O", ""), ("O", "")) if pair is None
                                                else (_split_tag(pair[0]), _split_tag(pair[1])))
        gold_end = _end_of_chunk(last_gold, gold, last_gold_type, gold_type)
        pred_end = _end_of_chunk(last_pred, pred, last_pred_type, pred_type)
        if in_correct:
            if gold_end and pred_end and last_gold_type == last_pred_type:
                in_correct = False
                correct_chunk[last_gold_type] += 1
            elif gold_end != pred_end or gold_type != pred_type:
                in_correct = False
        gold_start = _start_of_chunk(last_gold, gold, last_gold_type, gold_type)
        pred_start = _start_of_chunk(last_pred, pred, last_pred_type, pred_type)
        if gold_start and pred_start and gold_type == pred_type:
            in_correct = True
        if gold_start:
            found_gold[gold_type] += 1
        if pred_start:
            found_pred[pred_type] += 1
        if pair is not None:
            correct_tags += int(gold == pred and gold_type == pred_type)
            tokens += 1
        last_gold, last_pred, last_gold_type, last_pred_type = gold, pred, gold_type, pred_type
    if in_correct:
        correct_chunk[last_gold_type] += 1
    out = prf(sum(correct_chunk.values()), sum(found_pred.values()), sum(found_gold.values()))
    out.update(accuracy=100.0 * correct_tags / tokens if tokens else 0.0, tokens=tokens,
               found_gold=sum(found_gold.values()), found_pred=sum(found_pred.values()),
               correct=sum(correct_chunk.values()))
    out["per_type"] = {kind: dict(prf(correct_chunk[kind], found_pred[kind], found_gold[kind]),
                                  found_pred=found_pred[kind])
                       for kind in sorted(set(found_gold) | set(found_pred))}
    return out


def prf(correct, found_pred, found_gold):
    """conlleval's precision, recall and F1 (%) of chunk counts."""
    precision = 100.0 * correct / found_pred if found_pred else 0.0
    recall = 100.0 * correct / found_gold if found_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def ner_metrics(gold_tags, pred_tags):
    """Entity-level {"f1", "precision", "recall", "accuracy", "f1_<TYPE>"...} of tag sequences."""
    if len(gold_tags) != len(pred_tags):
        raise BertbenchError(f"{len(pred_tags)} predicted sentences for {len(gold_tags)} gold ones")
    sentences = []
    for i, (gold, pred) in enumerate(zip(gold_tags, pred_tags)):
        if len(gold) != len(pred):
            raise BertbenchError(f"sentence {i}: {len(pred)} predicted tags for {len(gold)} words")
        sentences.append(list(zip(gold, pred)))
    result = conlleval(sentences)
    out = {k: result[k] for k in ("f1", "precision", "recall", "accuracy")}
    out.update({f"f1_{kind}": v["f1"] for kind, v in result["per_type"].items() if kind})
    return out


# ---- the registry: every metric name bertbench reports, with its direction ---------------------
# name -> (fn(golds, preds) or None, higher_is_better). fn is the per-example-list metric GLUE and
# SWAG scoring call by name; None where the value comes from a family's own scorer (SQuAD, conlleval)
# or from pretraining. This is the ONLY source of metric direction: tasks, tables and the
# regression check ask `higher_is_better(name)`.
METRICS = {
    "accuracy": (accuracy, True), "f1": (f1_positive, True), "mcc": (matthews, True),
    "pearson": (correlations, True), "spearman": (correlations, True),
    "exact": (None, True), "best_exact": (None, True), "best_f1": (None, True),  # SQuAD
    "precision": (None, True), "recall": (None, True),  # conlleval (also f1, accuracy)
    "glue_average": (None, True),
    # pretraining summary (bertbench.pretraining.objectives.summarize, the loop's summary.json)
    "lm_loss": (None, False), "lm_accuracy": (None, True), "lm_perplexity": (None, False),
    "nsp_loss": (None, False), "nsp_accuracy": (None, True), "loss": (None, False),
    "perplexity": (None, False),  # unigram_baseline.perplexity
    "tokens_per_s": (None, True), "train_wall_time_s": (None, False),
}


def metric_base(name):
    """The registry name behind a reported one: `heldout.lm_perplexity` (a key path in a summary),
    `dev_mismatched_accuracy` (MNLI's second split), `HasAns_f1`/`NoAns_exact` (SQuAD v2.0),
    `best_f1_thresh` (its threshold follows best_f1), `f1_PER` (a CoNLL entity type)."""
    base = name.rsplit(".", 1)[-1]
    base = re.sub(r"^dev_[a-z]+_", "", base)
    base = re.sub(r"^(HasAns|NoAns)_", "", base)
    base = re.sub(r"_thresh$", "", base)
    return re.sub(r"_[A-Z]+$", "", base)


def higher_is_better(name):
    """Whether a larger value of metric `name` (or of one of its variants, see metric_base) is better."""
    base = metric_base(name)
    if base not in METRICS:
        raise unknown_name("metric", name, METRICS)
    return METRICS[base][1]
