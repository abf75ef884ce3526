"""Task kinds: the ONE place that dispatches on `TaskSpec.kind`.

A task (bertbench.tasks) is data: its kind says how it is fine-tuned and scored. Every kind module
implements the same small protocol, used by the fine-tuning loop and by `bertbench score`:

    encode(spec, examples, tokenizer, cfg) -> Encoded       features + targets (numpy, finetuning.data)
    build_head(encoder, spec, cfg) -> keras.Model            the task model on an encoder (one output)
    loss(y_true, y_pred) -> [b]                              per-example loss, for compile(loss=...)
    predict(spec, examples, encoded, logits, cfg)            whole-dev logits -> predictions
    write_predictions(stem, examples, indices, predictions) -> Path   the official prediction file
    read_predictions(spec, path, gold, **options) -> (examples, predictions)   that file read back
    score(spec, examples, predictions) -> {metric: value}   official metrics (bertbench.evaluation)
    FEATURE_BASED                                            whether finetune.feature_layers applies
    ROW_FORM, example_rows(spec, examples, predictions)      per-example rows of the predictions
                                                             (bertbench.evaluation.per_example)
    constant_predictions(spec, train_examples, examples)     the majority-class / constant baseline
    single_prediction(predictions) -> bool                   one answer for everything (collapsed)

`cfg` is the run's FinetuneConfig; `indices` are the examples' positions in the split's file (the
GLUE/SWAG `index` column); `options` are `bertbench score`'s (na_prob, na_prob_thresh for SQuAD).
"""

from bertbench.errors import unknown_name
from bertbench.finetuning import classification, multiple_choice, regression, span, tagging

KINDS = {
    "classification": classification,
    "regression": regression,
    "span": span,
    "tagging": tagging,
    "multiple_choice": multiple_choice,
}
PROTOCOL = ("encode", "build_head", "loss", "predict", "write_predictions", "read_predictions", "score",
            "FEATURE_BASED", "ROW_FORM", "example_rows", "constant_predictions", "single_prediction")


def kind_of(spec):
    """The kind module of a TaskSpec (an unknown kind is a one-line error naming the known ones)."""
    if spec.kind not in KINDS:
        raise unknown_name(f"kind of task {spec.name}", spec.kind, KINDS)
    return KINDS[spec.kind]
