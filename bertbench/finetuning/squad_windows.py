"""SQuAD sliding windows (question + context -> model rows) and n-best answers (logits -> text).

Windows follow google-research/bert `run_squad.py` (max_seq_length 384, doc_stride 128,
max_query_length 64, [CLS] question [SEP] context-window [SEP], "max context" per token), but over the
WordPiece tokens of the whole context with character offsets into the ORIGINAL context, so an
answer is `context[char_start:char_end]` of its first and last token: no whitespace re-splitting
and no `get_final_text` heuristics are needed. Postprocessing is `write_predictions`: n-best over
all windows of an example, max answer length, v2.0 null score start[0]+end[0] (minimum over
windows), score_diff = null - best non-null, "" when score_diff > threshold.
"""

import bisect
import dataclasses

import numpy as np

from bertbench.errors import BertbenchError


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
