"""Tagging (CoNLL-2003 NER): a sentence's words -> one tag per word.

    inputs   token_ids / segment_ids / padding_mask [n, seq] int32, one sentence per row
             (optionally filled with neighbouring sentences of its document: document_context)
    targets  [n, seq] tag index at the FIRST piece of each word, -1 everywhere else
             (google-research/bert NER); words cut off by max_seq_length are predicted "O"
    model    dropout + dense on each token's output -> logits [b, seq, num_labels]; feature-based
             (finetune.feature_layers, Table 7): frozen encoder features -> 2-layer BiLSTM -> dense
    loss     mean cross-entropy over the labelled (first-piece) tokens of the batch
    file     conlleval input `word gold pred` (blank line after each sentence)
    metrics  conlleval entity F1, precision, recall (+ per type)
"""

import numpy as np

from bertbench.errors import BertbenchError, ConfigError
from bertbench.evaluation import metrics, per_example
from bertbench.files import write_text_atomic
from bertbench.finetuning.data import Encoded
from bertbench.tasks import conll
from bertbench.tasks.base import TaggingExample, data_error

FEATURE_BASED = True  # finetune.feature_layers: frozen encoder + BiLSTM (Table 7)
# Loss and predictions read first pieces only, the BiLSTMs skip masked steps: padding changes nothing
# but float rounding (finetuning.data dynamic padding).
PADDING_INVARIANT = True
ROW_FORM = "chunks"  # bertbench.evaluation.per_example: per-sentence conlleval counts
IGNORE_LABEL = -1  # label of positions that take no part in loss or prediction


# ---- encode -------------------------------------------------------------------------------------
def word_pieces(tokenizer, examples):
    """Per example, the WordPiece ids of each word (a word with no pieces becomes [UNK])."""
    unique = sorted({w for ex in examples for w in ex.words})
    pieces = dict(zip(unique, tokenizer.tokenize_words(unique), strict=True))
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
    for pieces, tag in zip(words, tag_ids, strict=True):
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


def encode(spec, examples, tokenizer, cfg):
    return encode_tagging(spec, examples, tokenizer, cfg.max_seq_length, cfg.document_context)


# ---- model --------------------------------------------------------------------------------------
def build_head(encoder, spec, cfg):
    import keras

    from bertbench.model import heads

    if len(spec.labels) < 2:
        raise BertbenchError(f"a tagging head needs at least 2 labels, got {len(spec.labels)}")
    if cfg.feature_layers and cfg.head != "default":
        raise ConfigError("finetune.head='bilstm' cannot be combined with feature_layers: the "
                          "feature-based model already has its own 2-layer BiLSTM")
    inputs = heads.encoder_inputs()
    if cfg.feature_layers:
        x, name = _frozen_features(encoder, inputs, cfg.feature_layers), "feature_tagger"
    else:
        x, name = heads.token_features(encoder, inputs, cfg.head), "tagger"
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    logits = heads.output_dense(len(spec.labels), "tag_logits")(x)
    return keras.Model(inputs, logits, name=name)  # [b, s, num_labels]


def _frozen_features(encoder, inputs, feature_layers):
    """Table 7: frozen encoder hidden states -> feature choice -> 2-layer BiLSTM, [b, s, 2H]."""
    from keras import ops

    from bertbench.model import heads

    mask = ops.cast(inputs["padding_mask"], "bool")  # [b, s]
    hidden_states = heads.FrozenEncoder(encoder, name="frozen_encoder")(inputs)
    x = heads.select_features(hidden_states, feature_layers)
    x = heads.bilstm_sequence(x, encoder.hidden_dim, mask, "bilstm_1")
    return heads.bilstm_sequence(x, encoder.hidden_dim, mask, "bilstm_2")


def loss(y_true, y_pred):
    """y_true [b, s] tag ids (-1 = ignored), y_pred [b, s, C] -> [b] values whose batch mean is the
    mean cross-entropy over the labelled (first-piece) tokens of the batch."""
    import keras
    from keras import ops

    labels = ops.cast(y_true, "int32")
    mask = ops.cast(labels != IGNORE_LABEL, y_pred.dtype)  # [b, s]
    ce = keras.losses.sparse_categorical_crossentropy(ops.maximum(labels, 0), y_pred, from_logits=True)
    per_example = ops.sum(ce * mask, axis=1)  # [b]
    batch = ops.cast(ops.shape(labels)[0], y_pred.dtype)
    return per_example * batch / ops.maximum(ops.sum(mask), 1.0)


# ---- predictions, files, metrics ---------------------------------------------------------------
def predict(spec, examples, encoded, logits, cfg):
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


def write_predictions(stem, examples, indices, predictions):
    """conlleval input `<stem>.txt`: `word gold pred` per token, a blank line after each sentence."""
    path = stem.with_suffix(".txt")
    lines = []
    for ex, tags in zip(examples, predictions, strict=True):
        lines += [f"{w} {g} {p}\n" for w, g, p in zip(ex.words, ex.tags, tags, strict=True)] + ["\n"]
    write_text_atomic(path, "".join(lines))
    return path


def read_predictions(spec, path, gold, **options):
    """conlleval input -> (examples with the file's words and gold tags, predicted tags); with a
    gold file, its words and gold chunks must match the predictions file's."""
    sentences = _read_conlleval(path)
    if gold:
        reference = spec.read_gold(gold)
        if len(reference) != len(sentences):
            raise data_error(path, None, f"{len(sentences)} sentences but {gold} has {len(reference)}")
        for sent, ref in zip(sentences, reference, strict=True):
            file_gold = conll.iob1_to_iob2([tok[2] for tok in sent])
            if [tok[1] for tok in sent] != list(ref.words) or file_gold != list(ref.tags):
                raise data_error(path, sent[0][0], f"sentence differs from {gold} (words or gold tags)",
                                 "write predictions in the gold file's order")
    examples = [TaggingExample(f"dev-{i}", tuple(tok[1] for tok in sent), tuple(tok[2] for tok in sent), None)
                for i, sent in enumerate(sentences)]
    return examples, [[tok[3] for tok in sent] for sent in sentences]


def _read_conlleval(path):
    """[[(line number, word, gold, pred), ...] per sentence] of a conlleval input file."""
    sentences, current = [], []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if current:
                    sentences.append(current)
                current = []
                continue
            if len(fields) < 3:
                raise data_error(path, line_number, f"expected 'word ... gold pred', found {line.strip()!r}")
            current.append((line_number, fields[0], fields[-2], fields[-1]))
    if current:
        sentences.append(current)
    if not sentences:
        raise data_error(path, None, "no tagged tokens found", "expected 'word ... gold pred' lines")
    return sentences


def score(spec, examples, predictions):
    return metrics.ner_metrics([ex.tags for ex in examples], list(predictions))


def example_rows(spec, examples, predictions):
    """Per-sentence conlleval chunk counts (bertbench.evaluation.per_example, form "chunks")."""
    return per_example.rows(ROW_FORM, [ex.tags for ex in examples], list(predictions))


def constant_predictions(spec, train_examples, examples):
    """The majority baseline of NER: "O" for every word (entity F1 0)."""
    return [["O"] * len(ex.words) for ex in examples]


def single_prediction(predictions):
    """Whether every word of every sentence gets the same tag (e.g. all "O": a collapsed run)."""
    return len({tag for sentence in predictions for tag in sentence}) <= 1
