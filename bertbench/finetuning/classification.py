"""Classification (GLUE but STS-B): sentence or pair -> one of the task's labels.

    inputs   token_ids / segment_ids / padding_mask [n, seq] int32   ([CLS] a [SEP] b [SEP])
    targets  [n] int32 index into spec.labels
    model    dropout + dense on the sentence vector -> logits [b, num_labels]
    loss     cross-entropy
    file     `index<TAB>prediction` with the label strings (GLUE submission layout)
    metrics  spec.metrics (accuracy, F1 of "1", MCC) over the whole dev set
"""

import collections

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.evaluation import metrics, per_example
from bertbench.finetuning.data import Encoded
from bertbench.finetuning.prediction_files import (parse_label, read_index_file, require_gold,
                                                   write_index_file)

FEATURE_BASED = False  # no frozen-encoder variant (finetune.feature_layers is for tagging)
# Dynamic padding (finetuning.data) leaves the logits equal up to float rounding: attention masks
# padding out and the sentence vector is read at real positions.
PADDING_INVARIANT = True
ROW_FORM = "labels"  # bertbench.evaluation.per_example


def labelled(spec, examples, value):
    """[value(example)] of labelled examples; an unlabelled one (a test split) is a one-line error."""
    out = []
    for ex in examples:
        if ex.label is None:
            raise BertbenchError(f"task {spec.name}: example {ex.guid} has no label; fine-tuning "
                                 f"and dev scoring need labelled splits")
        out.append(value(ex.label))
    return out


def encode_pairs(spec, examples, tokenizer, max_seq_length, targets):
    """[CLS] text_a [SEP] (text_b [SEP]) rows; `targets` is the [n] numpy array of the labels."""
    ids_a = tokenizer.tokenize([ex.text_a for ex in examples])
    pairs = all(ex.text_b is not None for ex in examples)
    ids_b = tokenizer.tokenize([ex.text_b for ex in examples]) if pairs else None
    return Encoded(tokenizer.pack_batch(ids_a, ids_b, max_seq_length), targets, {})


def encode(spec, examples, tokenizer, cfg):
    targets = np.asarray(labelled(spec, examples, spec.labels.index), np.int32)
    return encode_pairs(spec, examples, tokenizer, cfg.max_seq_length, targets)


def build_head(encoder, spec, cfg):
    import keras

    from bertbench.model import heads

    if len(spec.labels) < 2:
        raise BertbenchError(f"a classification head needs at least 2 labels, got {len(spec.labels)}")
    inputs = heads.encoder_inputs()
    x = heads.sentence_features(encoder, inputs, cfg.head, cfg.dropout)
    logits = heads.output_dense(len(spec.labels), "logits")(x)
    return keras.Model(inputs, logits, name="classifier")


def loss(y_true, y_pred):
    """y_true [b] label ids, y_pred [b, C] logits -> [b] cross-entropy."""
    import keras
    from keras import ops

    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)


def predict(spec, examples, encoded, logits, cfg):
    """Label strings, argmax of logits [n, C]."""
    return [spec.labels[k] for k in np.asarray(logits).argmax(-1)]


def write_predictions(stem, examples, indices, predictions):
    return write_index_file(stem, indices, predictions)


def read_predictions(spec, path, gold, **options):
    examples = spec.read_gold(require_gold(spec, gold))
    return examples, read_index_file(path, len(examples), parse_label(spec.labels))


def gold_labels(spec, examples):
    """The examples' labels, for scoring; unlabelled gold examples are a one-line error."""
    golds = [ex.label for ex in examples]
    if any(g is None for g in golds):
        raise BertbenchError(f"{spec.name}: the gold examples have no labels (a test split?); score a dev split")
    return golds


def score(spec, examples, predictions):
    """spec.metrics of predicted labels against the examples' gold labels."""
    return metrics.glue_metrics(spec.metrics, gold_labels(spec, examples), list(predictions))


def example_rows(spec, examples, predictions):
    """Per-example rows of the predictions (bertbench.evaluation.per_example, form "labels")."""
    return per_example.rows(ROW_FORM, gold_labels(spec, examples), predictions)


def majority_label(labels, train_examples):
    """The most frequent training label; ties go to the first in `labels` order."""
    counts = collections.Counter(ex.label for ex in train_examples)
    return max(labels, key=lambda label: counts[label])


def constant_predictions(spec, train_examples, examples):
    """The majority-class baseline: the most frequent training label for every example."""
    return [majority_label(spec.labels, train_examples)] * len(examples)


def single_prediction(predictions):
    """Whether a run predicts one class for every example (a collapsed run)."""
    return len(set(predictions)) <= 1
