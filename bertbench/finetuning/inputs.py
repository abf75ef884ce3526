"""Task examples -> model features (numpy) -> tf.data, for every task kind.

`encode(spec, examples, tokenizer, cfg)` returns `Encoded(inputs, targets, meta)`:

    kind             inputs (int32)                       targets
    classification   token_ids/segment_ids/padding_mask   [n] label index (spec.labels order)
    regression       [n, seq] each                        [n] float score
    span             [n_windows, seq] (bertbench.tasks.squad windows)   [n_windows, 2] start/end
    tagging          [n, seq]                             [n, seq] tag index at the FIRST piece of
                                                          each word, -1 everywhere else
    multiple_choice  [n, choices, seq]                    [n] index of the right ending

`meta` keeps what postprocessing needs: the SQuAD windows, or for tagging the number of words of
each sentence that fit in the window (words cut off by max_seq_length are predicted "O").
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.files import write_text_atomic
from bertbench.model.heads import IGNORE_LABEL


@dataclasses.dataclass
class Encoded:
    inputs: dict  # name -> int32 numpy array
    targets: np.ndarray
    meta: dict

    def __len__(self):
        return len(self.targets)


def encode(spec, examples, tokenizer, cfg):
    """Features of `examples` for task `spec` under FinetuneConfig `cfg`."""
    if not examples:
        raise BertbenchError(f"task {spec.name}: no examples to encode; check the data files")
    if spec.kind in ("classification", "regression"):
        return encode_pairs(spec, examples, tokenizer, cfg.max_seq_length)
    if spec.kind == "tagging":
        return encode_tagging(spec, examples, tokenizer, cfg.max_seq_length, cfg.document_context)
    if spec.kind == "multiple_choice":
        return encode_choices(examples, tokenizer, cfg.max_seq_length)
    if spec.kind == "span":
        return encode_squad(examples, tokenizer, cfg)
    raise BertbenchError(f"task {spec.name}: unknown kind {spec.kind!r}")


def label_index(spec, example):
    if example.label is None:
        raise BertbenchError(f"task {spec.name}: example {example.guid} has no label; fine-tuning "
                             f"and dev scoring need labelled splits")
    if spec.kind == "regression":
        return float(example.label)
    return spec.labels.index(example.label)


def encode_pairs(spec, examples, tokenizer, max_seq_length):
    ids_a = tokenizer.tokenize([ex.text_a for ex in examples])
    pairs = all(ex.text_b is not None for ex in examples)
    ids_b = tokenizer.tokenize([ex.text_b for ex in examples]) if pairs else None
    inputs = tokenizer.pack_batch(ids_a, ids_b, max_seq_length)
    dtype = np.float32 if spec.kind == "regression" else np.int32
    targets = np.asarray([label_index(spec, ex) for ex in examples], dtype)
    return Encoded(inputs, targets, {})


def encode_choices(examples, tokenizer, max_seq_length):
    """[CLS] context [SEP] ending_i [SEP] for each of the endings -> [n, choices, seq]."""
    num_choices = len(examples[0].endings)
    contexts = tokenizer.tokenize([ex.context for ex in examples])
    endings = tokenizer.tokenize([e for ex in examples for e in ex.endings])
    if any(len(ex.endings) != num_choices for ex in examples):
        raise BertbenchError(f"multiple-choice examples must all have {num_choices} endings")
    flat = tokenizer.pack_batch([c for c in contexts for _ in range(num_choices)], endings, max_seq_length)
    inputs = {k: v.reshape(len(examples), num_choices, max_seq_length) for k, v in flat.items()}
    if any(ex.label is None for ex in examples):
        raise BertbenchError("multiple-choice example without a label; use a labelled split")
    targets = np.asarray([ex.label for ex in examples], np.int32)
    return Encoded(inputs, targets, {"num_choices": num_choices})


def encode_squad(examples, tokenizer, cfg):
    from bertbench.tasks import squad

    windows = squad.make_windows(examples, tokenizer, cfg.max_seq_length, cfg.doc_stride,
                                 cfg.max_query_length)
    arrays = squad.windows_to_arrays(windows)
    inputs = {k: arrays[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    targets = np.stack([arrays["start_positions"], arrays["end_positions"]], axis=1).astype(np.int32)
    return Encoded(inputs, targets, {"windows": windows})


# ---- tagging ------------------------------------------------------------------------------------
def word_pieces(tokenizer, examples):
    """Per example, the WordPiece ids of each word (a word with no pieces becomes [UNK])."""
    unique = sorted({w for ex in examples for w in ex.words})
    pieces = dict(zip(unique, tokenizer.tokenize_words(unique)))
    return [[pieces[w] or [tokenizer.unk_id] for w in ex.words] for ex in examples]


def _context_pieces(per_example, examples, index, side):
    """Flattened pieces of the same document's sentences before (side=-1) or after (+1) `index`."""
    doc = examples[index].doc_id
    out, j = [], index + side
    while doc is not None and 0 <= j < len(examples) and examples[j].doc_id == doc:
        sentence = [p for word in per_example[j] for p in word]
        out = sentence + out if side < 0 else out + sentence
        j += side
        if len(out) > 4096:  # more than any window can hold
            break
    return out


def tagging_row(tokenizer, words, tag_ids, max_seq_length, left=(), right=()):
    """One window: [CLS] left-context sentence right-context [SEP] with labels on first pieces.

    words: list of piece-id lists; tag_ids: one per word. Returns (token_ids, labels, num_kept_words).
    Context pieces (from neighbouring sentences) carry no labels.
    """
    budget = max_seq_length - 2
    tokens, labels, kept = [], [], 0
    for pieces, tag in zip(words, tag_ids):
        if len(tokens) + len(pieces) > budget:
            break  # this word and the rest do not fit: predicted "O"
        tokens += pieces
        labels += [tag] + [IGNORE_LABEL] * (len(pieces) - 1)
        kept += 1
    room = budget - len(tokens)
    n_right = min(len(right), room // 2)
    n_left = min(len(left), room - n_right)
    n_right = min(len(right), room - n_left)  # give back what the left side did not need
    left_part = list(left[len(left) - n_left:]) if n_left else []
    tokens = [tokenizer.cls_id] + left_part + tokens + list(right[:n_right]) + [tokenizer.sep_id]
    labels = ([IGNORE_LABEL] * (1 + n_left) + labels + [IGNORE_LABEL] * (n_right + 1))
    return tokens, labels, kept


def encode_tagging(spec, examples, tokenizer, max_seq_length, document_context=False):
    """First-piece labelling as google-research/bert NER; optional document context."""
    per_example = word_pieces(tokenizer, examples)
    n = len(examples)
    token_ids = np.full((n, max_seq_length), tokenizer.pad_id, np.int32)
    labels = np.full((n, max_seq_length), IGNORE_LABEL, np.int32)
    mask = np.zeros((n, max_seq_length), np.int32)
    kept = np.zeros(n, np.int32)
    for i, ex in enumerate(examples):
        unknown = [t for t in ex.tags if t not in spec.labels]
        if unknown:
            raise BertbenchError(f"task {spec.name}: sentence {ex.guid} has tag {unknown[0]!r}, not "
                                 f"one of {', '.join(spec.labels)}")
        tag_ids = [spec.labels.index(t) for t in ex.tags]
        left = _context_pieces(per_example, examples, i, -1) if document_context else ()
        right = _context_pieces(per_example, examples, i, +1) if document_context else ()
        row, row_labels, kept[i] = tagging_row(tokenizer, per_example[i], tag_ids, max_seq_length,
                                               left, right)
        token_ids[i, :len(row)] = row
        labels[i, :len(row)] = row_labels
        mask[i, :len(row)] = 1
    inputs = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids), "padding_mask": mask}
    return Encoded(inputs, labels, {"kept_words": kept})


def tags_from_logits(spec, examples, logits, encoded):
    """Predicted tag strings per sentence: argmax at each word's first piece; cut words get "O"."""
    ids = np.asarray(logits).argmax(-1)  # [n, seq]
    first = encoded.targets != IGNORE_LABEL  # [n, seq], True at the first piece of each kept word
    out = []
    for i, ex in enumerate(examples):
        predicted = [spec.labels[k] for k in ids[i][first[i]]]
        if len(predicted) != encoded.meta["kept_words"][i]:
            raise AssertionError(f"{ex.guid}: {len(predicted)} labelled pieces for "
                                 f"{encoded.meta['kept_words'][i]} kept words")
        out.append(predicted + ["O"] * (len(ex.words) - len(predicted)))
    return out


# ---- tf.data ------------------------------------------------------------------------------------
def make_dataset(encoded, batch_size, training, seed=0):
    """(inputs, targets) batches; training: seeded reshuffle each epoch, repeated forever."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((encoded.inputs, encoded.targets))
    if training:
        ds = ds.shuffle(len(encoded), seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---- outputs: logits -> predictions -> official files + metrics ---------------------------------
def evaluate_split(spec, examples, indices, encoded, logits, cfg, stem):
    """Score a whole dev split once and write its official prediction file(s).

    `indices` are the examples' positions in the split's file (the GLUE/SWAG `index` column).
    Returns (metrics, path of the main prediction file).
    """
    from bertbench.evaluation.score import score_examples

    logits = np.asarray(logits)
    stem = Path(stem)
    if spec.kind == "span":
        return _evaluate_squad(spec, examples, encoded, logits, cfg, stem)
    if spec.kind == "tagging":
        predicted = tags_from_logits(spec, examples, logits, encoded)
        path = stem.with_suffix(".txt")
        write_conll(path, examples, predicted)
        return score_examples(spec.name, examples, predicted), path
    if spec.kind == "regression":
        predicted = [float(v) for v in logits.reshape(-1)]
        column = [repr(v) for v in predicted]  # full precision: rescoring the file gives the same numbers
    elif spec.kind == "multiple_choice":
        predicted = logits.argmax(-1).tolist()
        column = [str(v) for v in predicted]
    else:
        predicted = [spec.labels[k] for k in logits.argmax(-1)]
        column = predicted
    path = stem.with_suffix(".tsv")
    write_text_atomic(path, "index\tprediction\n" + "".join(f"{i}\t{c}\n" for i, c in zip(indices, column)))
    return score_examples(spec.name, examples, predicted), path


def _evaluate_squad(spec, examples, encoded, logits, cfg, stem):
    """v1.1: n-best answers. v2.0: threshold on score_diff chosen on dev for the best F1."""
    from bertbench.evaluation.score import score_examples
    from bertbench.tasks import squad

    windows = encoded.meta["windows"]
    args = (examples, windows, logits[:, :, 0], logits[:, :, 1], cfg.n_best_size, cfg.max_answer_length)
    path = stem.with_suffix(".json")
    if spec.name != "squad2":
        predictions, _ = squad.postprocess(*args)
        write_text_atomic(path, json.dumps(predictions, indent=1, ensure_ascii=False))
        return score_examples(spec.name, examples, predictions), path
    # Best non-null answer everywhere + score diffs; the official find_best_thresh picks the threshold.
    answers, diffs = squad.postprocess(*args, version_2=True, null_score_diff_threshold=float("inf"))
    finite = {q: (d if np.isfinite(d) else 1e9) for q, d in diffs.items()}  # "no span at all" = never answer
    sweep = score_examples(spec.name, examples, answers, na_probs=rank_probabilities(finite))
    threshold = diff_threshold(finite, rank_probabilities(finite), sweep["best_f1_thresh"])
    predictions, _ = squad.postprocess(*args, version_2=True, null_score_diff_threshold=threshold)
    result = score_examples(spec.name, examples, predictions)
    result.update({k: sweep[k] for k in ("best_f1", "best_exact") if k in sweep})
    result["null_score_diff_threshold"] = threshold if np.isfinite(threshold) else None  # None: never answer
    write_text_atomic(path, json.dumps(predictions, indent=1, ensure_ascii=False))
    write_text_atomic(stem.parent / "null_odds.json", json.dumps(finite, indent=1))
    return result, path


def rank_probabilities(diffs):
    """score diffs -> values in (0, 1) with the same order (ties equal): (rank + 1) / (n + 1).

    evaluate-v2.0.py's find_best_thresh starts from "answer nothing" at threshold 0.0, which is right
    for probabilities but not for score diffs (they can be negative); ranks keep its semantics.
    """
    values = np.asarray(list(diffs.values()), float)
    ranks = np.searchsorted(np.sort(values), values, side="right")  # ties share the highest rank
    return {q: float(r) / (len(values) + 1) for q, r in zip(diffs, ranks)}


def diff_threshold(diffs, probs, prob_threshold):
    """The score-diff threshold equal to a rank-probability threshold (-inf: answer nothing)."""
    kept = [d for q, d in diffs.items() if probs[q] <= prob_threshold]
    return float(max(kept)) if kept else float("-inf")


def write_conll(path, examples, predicted):
    """conlleval input: `word gold pred` per token, a blank line after each sentence."""
    lines = []
    for ex, tags in zip(examples, predicted):
        lines += [f"{w} {g} {p}\n" for w, g, p in zip(ex.words, ex.tags, tags)] + ["\n"]
    write_text_atomic(path, "".join(lines))



