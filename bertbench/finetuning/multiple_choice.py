"""Multiple choice (SWAG): a context and its candidate endings -> the index of the right ending.

    inputs   token_ids / segment_ids / padding_mask [n, choices, seq] int32
             ([CLS] context [SEP] ending_i [SEP] for each ending)
    targets  [n] int32 index of the right ending
    model    each (context, ending) row through the encoder, dense(1) on its sentence vector,
             softmax over the choices -> logits [b, choices]
    loss     cross-entropy over the choices
    file     `index<TAB>prediction` with the chosen index 0..choices-1
    metrics  accuracy
"""

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.evaluation import metrics, per_example
from bertbench.finetuning import classification
from bertbench.finetuning.data import Encoded
from bertbench.finetuning.prediction_files import (parse_label, read_index_file, require_gold,
                                                   write_index_file)

FEATURE_BASED = False
PADDING_INVARIANT = True  # as classification, per (context, ending) row
ROW_FORM = "labels"  # bertbench.evaluation.per_example (accuracy of choice indices)
loss = classification.loss  # y_true [b] choice ids, y_pred [b, choices] logits
single_prediction = classification.single_prediction  # always the same ending: a collapsed run


def encode(spec, examples, tokenizer, cfg):
    """[n, choices, seq] rows; every example must have as many endings as the first."""
    max_seq_length = cfg.max_seq_length
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


def build_head(encoder, spec, cfg):
    """spec.labels are the choice indices ("0".."3"): their number is the number of choices."""
    import keras

    from bertbench.model import heads

    num_choices = len(spec.labels)
    inputs = heads.encoder_inputs(num_choices)
    fold = heads.FoldChoices(num_choices, name="fold_choices")  # each (context, ending) is one row
    x = heads.sentence_features(encoder, {k: fold(v) for k, v in inputs.items()}, cfg.head, cfg.dropout)
    score_ = heads.output_dense(1, "score")(x)  # [b*c, 1]
    logits = heads.FoldChoices(num_choices, fold=False, dtype=heads.OUTPUT_DTYPE,
                               name="unfold_choices")(score_)  # [b, c]
    return keras.Model(inputs, logits, name="multiple_choice")


def predict(spec, examples, encoded, logits, cfg):
    return np.asarray(logits).argmax(-1).tolist()


def write_predictions(stem, examples, indices, predictions):
    return write_index_file(stem, indices, [str(v) for v in predictions])


def read_predictions(spec, path, gold, **options):
    examples = spec.read_gold(require_gold(spec, gold))
    check = parse_label(spec.labels)
    return examples, read_index_file(path, len(examples), lambda v, p, line: int(check(v, p, line)))


def score(spec, examples, predictions):
    golds = classification.gold_labels(spec, examples)
    return {"accuracy": metrics.accuracy(golds, [int(p) for p in predictions])}


def example_rows(spec, examples, predictions):
    """Per-example rows of the chosen indices (bertbench.evaluation.per_example, form "labels")."""
    golds = classification.gold_labels(spec, examples)
    return per_example.rows(ROW_FORM, [int(g) for g in golds], [int(p) for p in predictions])


def constant_predictions(spec, train_examples, examples):
    """The majority baseline: the ending index most often right in training, for every example."""
    choices = sorted({int(ex.label) for ex in train_examples})
    counts = {c: sum(int(ex.label) == c for ex in train_examples) for c in choices}
    return [max(choices, key=lambda c: counts[c])] * len(examples)
