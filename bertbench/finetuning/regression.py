"""Regression (STS-B): sentence pair -> a similarity score in [0, 5].

    inputs   token_ids / segment_ids / padding_mask [n, seq] int32
    targets  [n] float32 gold score
    model    dropout + dense(1) on the sentence vector -> score [b]
    loss     squared error
    file     `index<TAB>prediction` with full-precision floats (rescoring gives the same numbers)
    metrics  Spearman and Pearson correlation (spec.metrics)
"""

import numpy as np

from bertbench.evaluation import per_example
from bertbench.finetuning import classification
from bertbench.finetuning.prediction_files import read_index_file, require_gold, write_index_file
from bertbench.tasks.base import data_error

FEATURE_BASED = False
PADDING_INVARIANT = True  # as classification: the sentence vector ignores padding
ROW_FORM = "scores"  # bertbench.evaluation.per_example
single_prediction = classification.single_prediction  # a constant score: correlations undefined (0)
score = classification.score  # the named GLUE metrics of the same gold labels


def encode(spec, examples, tokenizer, cfg):
    targets = np.asarray(classification.labelled(spec, examples, float), np.float32)
    return classification.encode_pairs(spec, examples, tokenizer, cfg.max_seq_length, targets)


def build_head(encoder, spec, cfg):
    import keras

    from bertbench.model import heads

    inputs = heads.encoder_inputs()
    x = heads.sentence_features(encoder, inputs, cfg.head, cfg.dropout)
    value = heads.output_dense(1, "score")(x)  # [b, 1]
    value = keras.layers.Reshape((), dtype=heads.OUTPUT_DTYPE, name="squeeze")(value)  # [b]
    return keras.Model(inputs, value, name="regressor")


def loss(y_true, y_pred):
    """y_true [b] floats, y_pred [b] -> [b] squared error."""
    from keras import ops

    return ops.square(ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype) - y_pred)


def predict(spec, examples, encoded, logits, cfg):
    return [float(v) for v in np.asarray(logits).reshape(-1)]


def write_predictions(stem, examples, indices, predictions):
    return write_index_file(stem, indices, [repr(v) for v in predictions])  # repr: full precision


def _parse_score(value, path, line):
    try:
        return float(value)
    except ValueError:
        raise data_error(path, line, f"prediction {value!r} is not a number") from None


def read_predictions(spec, path, gold, **options):
    examples = spec.read_gold(require_gold(spec, gold))
    return examples, read_index_file(path, len(examples), _parse_score)


def example_rows(spec, examples, predictions):
    """Per-example [gold, prediction] rows (bertbench.evaluation.per_example, form "scores")."""
    golds = [float(g) for g in classification.gold_labels(spec, examples)]
    return per_example.rows(ROW_FORM, golds, predictions)


def constant_predictions(spec, train_examples, examples):
    """The constant-prediction baseline: the mean training score for every example."""
    mean = float(np.mean([float(ex.label) for ex in train_examples]))
    return [mean] * len(examples)
