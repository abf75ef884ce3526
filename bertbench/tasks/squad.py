"""SQuAD v1.1 / v2.0: reading the official JSON, sliding windows, and mapping logits back to answers.

Files live in `<root>/squad/`: `train-v1.1.json`, `dev-v1.1.json`, `train-v2.0.json`, `dev-v2.0.json`;
the reconstructed dev files of ../shared/data (`dev-v1.1.reconstructed.json`, ...) are accepted too.
TFDS: `squad/v1.1`, `squad/v2.0`.

Windows follow google-research/bert `run_squad.py` (max_seq_length 384, doc_stride 128,
max_query_length 64, [CLS] question [SEP] context-window [SEP], "max context" per token), but over the
WordPiece tokens of the whole context with character offsets into the ORIGINAL context, so an
answer is `context[char_start:char_end]` of its first and last token: no whitespace re-splitting
and no `get_final_text` heuristics are needed. Postprocessing is `write_predictions`: n-best over
all windows of an example, max answer length, v2.0 null score start[0]+end[0] (minimum over
windows), score_diff = null - best non-null, "" when score_diff > threshold.

Proxy: `squad1_devsplit` splits the articles of dev-v1.1 (train-v1.1.json is not available here)
with a fixed seed: 80% of the articles for training, 20% for evaluation.
"""

import bisect
import dataclasses
import json
import random

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.resources import resolve_data_dir
from bertbench.tasks.base import SquadExample, data_error, missing_file, require_file

FILES = {  # (version, split) -> accepted file names under <root>/squad/, first = standard name
    ("1.1", "train"): ("train-v1.1.json",),
    ("1.1", "dev"): ("dev-v1.1.json", "dev-v1.1.reconstructed.json"),
    ("2.0", "train"): ("train-v2.0.json",),
    ("2.0", "dev"): ("dev-v2.0.json", "dev-v2.0.reconstructed.json"),
}
DEVSPLIT_SEED = 0  # fixed: the proxy's split is part of its definition
DEVSPLIT_TRAIN_FRACTION = 0.8


# ---- reading --------------------------------------------------------------------------------
def squad_path(version, split, data_dir=None):
    folder = resolve_data_dir(data_dir) / "squad"
    names = FILES[(version, split)]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise missing_file(" or ".join(str(folder / n) for n in names), f"SQuAD v{version} {split} file")


def read_squad_articles(path):
    """[(title, [SquadExample, ...]), ...] per article of a SQuAD JSON file, in file order."""
    require_file(path, "SQuAD file")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise data_error(path, err.lineno, f"invalid JSON ({err.msg}, column {err.colno})") from err
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise data_error(path, None, "no top-level 'data' list", "expected the official SQuAD JSON layout")
    articles = []
    for a, article in enumerate(data["data"]):
        examples = []
        try:
            for p, paragraph in enumerate(article["paragraphs"]):
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    examples.append(_example(path, article.get("title", ""), context, qa))
        except (KeyError, TypeError) as err:
            raise data_error(path, None, f"article {a} ('{article.get('title', '')}') lacks field "
                             f"{err}", "each article needs paragraphs[].context and qas[].id/question/"
                             "answers") from err
        articles.append((article.get("title", ""), examples))
    return articles


def _example(path, title, context, qa):
    impossible = bool(qa.get("is_impossible", False))
    answers = []
    for answer in ([] if impossible else qa["answers"]):
        start = answer["answer_start"]
        if not isinstance(start, int) or not 0 <= start <= len(context) - len(answer["text"]):
            raise data_error(path, None, f"question {qa['id']}: answer_start {start!r} is outside "
                             f"its context", "answer_start is a character offset into the context")
        answers.append((answer["text"], start))
    return SquadExample(qa["id"], qa["question"], context, tuple(answers), impossible, title)


def split_articles(articles, seed=DEVSPLIT_SEED, train_fraction=DEVSPLIT_TRAIN_FRACTION):
    """(train, eval) example lists from a seeded shuffle of whole articles."""
    order = list(range(len(articles)))
    random.Random(seed).shuffle(order)
    n_train = min(max(round(train_fraction * len(order)), 1), len(order) - 1)  # both halves non-empty
    pick = lambda idx: [ex for i in sorted(idx) for ex in articles[i][1]]  # noqa: E731
    return pick(order[:n_train]), pick(order[n_train:])


def tfds_to_example(record):
    """A SquadExample from one TFDS `squad/v1.1` or `squad/v2.0` record."""
    text = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)  # noqa: E731
    answers = record.get("answers", {"text": [], "answer_start": []})
    impossible = bool(record.get("is_impossible", False))
    pairs = () if impossible else tuple(
        (text(t), int(s)) for t, s in zip(answers["text"], answers["answer_start"]))
    return SquadExample(text(record["id"]), text(record["question"]), text(record["context"]),
                        pairs, impossible, text(record.get("title", "")))


def load(name, split, data_dir=None, source="files"):
    version = "2.0" if name == "squad2" else "1.1"
    if split == "test":
        raise BertbenchError(f"task {name} has no labelled test split (SQuAD's is hidden); use 'dev'")
    if name == "squad1_devsplit":
        if source == "tfds":
            from bertbench.tasks import tfds_source

            records = tfds_source.load_records("squad/v1.1", "validation", data_dir)
            by_title = {}
            for ex in map(tfds_to_example, records):
                by_title.setdefault(ex.title, []).append(ex)
            articles = list(by_title.items())
        else:
            articles = read_squad_articles(squad_path("1.1", "dev", data_dir))
        train, held = split_articles(articles)
        return train if split == "train" else held
    if source == "tfds":
        from bertbench.tasks import tfds_source

        tfds_split = "train" if split == "train" else "validation"
        return [tfds_to_example(r) for r in tfds_source.load_records(f"squad/v{version}", tfds_split,
                                                                     data_dir)]
    return [ex for _, exs in read_squad_articles(squad_path(version, split, data_dir)) for ex in exs]


def gold_answers(examples):
    """{qid: [answer texts]} for bertbench.evaluation.metrics (empty list for impossible questions)."""
    return {ex.qid: [text for text, _ in ex.answers] for ex in examples}


# ---- windows --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class SquadWindow:
    example_index: int  # index into the example list given to make_windows
    token_ids: np.ndarray  # [max_seq_length] int32: [CLS] question [SEP] context window [SEP] pad
    segment_ids: np.ndarray  # [max_seq_length] int32: 0 question part, 1 context part
    padding_mask: np.ndarray  # [max_seq_length] int32
    char_starts: np.ndarray  # [max_seq_length] int32: offset into the context, -1 off-context
    char_ends: np.ndarray  # [max_seq_length] int32: exclusive end offset, -1 off-context
    max_context: np.ndarray  # [max_seq_length] bool: this window gives the token most context
    start_position: int  # 0 ([CLS]) when the answer is not wholly inside the window or impossible
    end_position: int


def answer_token_span(starts, ends, char_start, char_end):
    """(first, last) context-token indices covering [char_start, char_end), or None."""
    first = bisect.bisect_right(ends, char_start)  # first token ending after the answer starts
    last = bisect.bisect_left(starts, char_end) - 1  # last token starting before the answer ends
    return (first, last) if first <= last and first < len(starts) else None


def window_spans(num_tokens, max_tokens, doc_stride):
    """[(start, length)] of the sliding windows, as run_squad.py (at least one, maybe empty)."""
    spans, start = [], 0
    while True:
        length = min(num_tokens - start, max_tokens)
        spans.append((start, length))
        if start + length >= num_tokens:
            return spans
        start += min(length, doc_stride)


def max_context_windows(spans, num_tokens):
    """For each context token, the window giving it most context (run_squad.py
    `_check_is_max_context`: score = min(left, right) + 0.01 * length, first best window wins)."""
    best = np.full(num_tokens, -1, np.int64)
    best_score = np.full(num_tokens, -np.inf)
    for i, (start, length) in enumerate(spans):
        position = np.arange(start, start + length)
        score = np.minimum(position - start, start + length - 1 - position) + 0.01 * length
        better = score > best_score[start:start + length]
        best[start:start + length][better] = i
        best_score[start:start + length][better] = score[better]
    return best


def make_windows(examples, tokenizer, max_seq_length=384, doc_stride=128, max_query_length=64):
    """SquadWindows of every example; training positions use the first gold answer."""
    contexts = sorted({ex.context for ex in examples})
    ids, starts, ends = tokenizer.tokenize_with_offsets(contexts)
    by_context = {c: (ids[i], starts[i], ends[i]) for i, c in enumerate(contexts)}
    queries = tokenizer.tokenize([ex.question for ex in examples])
    windows = []
    for index, ex in enumerate(examples):
        query = queries[index][:max_query_length]
        max_tokens = max_seq_length - len(query) - 3
        if max_tokens <= 0:
            raise BertbenchError(f"max_seq_length={max_seq_length} leaves no room for the context "
                                 f"after a {len(query)}-token question; raise it or lower "
                                 f"max_query_length")
        c_ids, c_starts, c_ends = by_context[ex.context]
        span = None
        if ex.answers and not ex.is_impossible:
            text, char_start = ex.answers[0]
            span = answer_token_span(c_starts, c_ends, char_start, char_start + len(text))
        spans = window_spans(len(c_ids), max_tokens, doc_stride)
        best = max_context_windows(spans, len(c_ids))
        for span_index in range(len(spans)):
            windows.append(_window(tokenizer, index, query, (c_ids, c_starts, c_ends), spans,
                                   span_index, span, best, max_seq_length))
    return windows


def _window(tokenizer, index, query, context, spans, span_index, answer, best, max_seq_length):
    c_ids, c_starts, c_ends = context
    doc_start, length = spans[span_index]
    offset = len(query) + 2  # [CLS] query [SEP] precede the context tokens
    n = offset + length + 1
    token_ids = np.full(max_seq_length, tokenizer.pad_id, np.int32)
    token_ids[:n] = [tokenizer.cls_id] + list(query) + [tokenizer.sep_id] + \
        list(c_ids[doc_start:doc_start + length]) + [tokenizer.sep_id]
    segment_ids = np.zeros(max_seq_length, np.int32)
    segment_ids[offset:n] = 1
    padding_mask = np.zeros(max_seq_length, np.int32)
    padding_mask[:n] = 1
    char_starts = np.full(max_seq_length, -1, np.int32)
    char_ends = np.full(max_seq_length, -1, np.int32)
    char_starts[offset:offset + length] = c_starts[doc_start:doc_start + length]
    char_ends[offset:offset + length] = c_ends[doc_start:doc_start + length]
    max_context = np.zeros(max_seq_length, bool)
    max_context[offset:offset + length] = best[doc_start:doc_start + length] == span_index
    start_position = end_position = 0
    if answer and doc_start <= answer[0] and answer[1] < doc_start + length:
        start_position, end_position = answer[0] - doc_start + offset, answer[1] - doc_start + offset
    return SquadWindow(index, token_ids, segment_ids, padding_mask, char_starts, char_ends,
                       max_context, start_position, end_position)


def windows_to_arrays(windows):
    """Model inputs and targets: token_ids/segment_ids/padding_mask [n, seq], *_positions [n]."""
    stack = lambda name: np.stack([getattr(w, name) for w in windows])  # noqa: E731
    return {"token_ids": stack("token_ids"), "segment_ids": stack("segment_ids"),
            "padding_mask": stack("padding_mask"),
            "start_positions": np.asarray([w.start_position for w in windows], np.int32),
            "end_positions": np.asarray([w.end_position for w in windows], np.int32)}


# ---- postprocessing -------------------------------------------------------------------------
def _candidates(window, context, start_logits, end_logits, n_best_size, max_answer_length):
    """(score, text) of valid spans among the window's top-n starts and ends."""
    out = []
    top_starts = np.argsort(-start_logits, kind="stable")[:n_best_size]
    top_ends = np.argsort(-end_logits, kind="stable")[:n_best_size]
    for s in top_starts:
        if window.char_starts[s] < 0 or not window.max_context[s]:
            continue
        for e in top_ends:
            if window.char_starts[e] < 0 or e < s or e - s + 1 > max_answer_length:
                continue
            text = context[window.char_starts[s]:window.char_ends[e]]
            out.append((float(start_logits[s] + end_logits[e]), text))
    return out


def postprocess(examples, windows, start_logits, end_logits, n_best_size=20, max_answer_length=30,
                version_2=False, null_score_diff_threshold=0.0):
    """Answers from logits [n_windows, seq] -> (predictions {qid: text}, score_diffs {qid: float}).

    score_diffs (v2 only) is null score minus best non-null score, the value google-research/bert
    writes as null_odds (use it as the na-prob file). When no non-null candidate exists the answer
    is "" and the score diff is +inf.
    """
    by_example = {}
    for w, window in enumerate(windows):
        by_example.setdefault(window.example_index, []).append(w)
    predictions, score_diffs = {}, {}
    for index, ex in enumerate(examples):
        candidates, null_score = [], None
        for w in by_example.get(index, []):
            s, e = np.asarray(start_logits[w]), np.asarray(end_logits[w])
            if version_2:
                window_null = float(s[0] + e[0])
                null_score = window_null if null_score is None else min(null_score, window_null)
            candidates += _candidates(windows[w], ex.context, s, e, n_best_size, max_answer_length)
        candidates.sort(key=lambda c: -c[0])
        best = candidates[0] if candidates else None  # the n-best list's first non-null entry
        if not version_2:
            predictions[ex.qid] = best[1] if best else ""
            continue
        diff = float("inf") if best is None or null_score is None else null_score - best[0]
        score_diffs[ex.qid] = diff
        predictions[ex.qid] = "" if best is None or diff > null_score_diff_threshold else best[1]
    return predictions, score_diffs


def nbest(examples, windows, start_logits, end_logits, n_best_size=20, max_answer_length=30):
    """{qid: [(text, score, probability)]}: the n-best distinct answers with softmax probabilities."""
    by_example = {}
    for w, window in enumerate(windows):
        by_example.setdefault(window.example_index, []).append(w)
    out = {}
    for index, ex in enumerate(examples):
        candidates = []
        for w in by_example.get(index, []):
            candidates += _candidates(windows[w], ex.context, np.asarray(start_logits[w]),
                                      np.asarray(end_logits[w]), n_best_size, max_answer_length)
        seen, best = set(), []
        for score, text in sorted(candidates, key=lambda c: -c[0]):
            if text not in seen and len(best) < n_best_size:
                seen.add(text)
                best.append((text, score))
        scores = np.asarray([s for _, s in best])
        probs = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum() if best else []
        out[ex.qid] = [(t, s, float(p)) for (t, s), p in zip(best, probs)]
    return out
