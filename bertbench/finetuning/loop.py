"""Fine-tuning: encoder checkpoint -> task head -> train -> whole-dev metrics.

    record = finetune(FinetuneConfig(task="mrpc"), "runs/tiny/encoder", "runs/ft/mrpc")

Protocol (the paper's, google-research/bert's): AdamW, linear warmup over `warmup_fraction` of the
steps then linear decay to 0, weight decay 0.01 (not on LayerNorm/bias), global-norm clipping 1.0,
dropout `cfg.dropout` in the encoder and the head. Steps = ceil(epochs * n_train / batch_size)
(fractional epochs allowed). Feature-based runs (frozen encoder + from-scratch BiLSTM) use
`feature_learning_rate` / `feature_epochs` instead (FinetuneConfig.effective_*). The dev set is
predicted whole and scored once with the official metrics, never as batch averages; predictions are
written in the task's official format and read back by `bertbench score`.

The task's kind (bertbench.finetuning.kinds) encodes, builds the head, gives the loss, turns logits
into predictions, writes them and scores them; the encoder comes from bertbench.finetuning.init;
the data (capped subsets, tf.data) from bertbench.finetuning.data. Grid search: finetuning.grid.
- Data come from `cfg.source`: "files" (standard layouts under data_dir) or "tfds" (prepared TFDS).
- MNLI scores both dev splits: `metrics` holds dev_matched's values under the plain names and
  dev_mismatched's as `dev_mismatched_<name>`; `metrics_by_split` has both.
- Progress: a step bar and a prediction bar (bertbench.progress) on a terminal when `verbose`.
- TensorBoard (`out_dir/logs/`, as pretraining's): train/loss (mean of the last steps) and
  train/learning_rate about LOG_POINTS times a run, and `<split>/<metric>` of each dev split at the
  last step (bertbench.finetuning.logs).
- Precision: `cfg.precision` (bertbench.model.precision; "auto" resolved for the strategy's devices) is
  the global Keras dtype policy while the model is built, trained and predicts, the caller's restored
  after; the record's "precision" is the resolved name. Heads' outputs stay float32
  (bertbench.model.heads.output_dense); fp16 trains with dynamic loss scaling.
- `predict_test=True` (GLUE tasks): the test split(s) predicted too, written in the GLUE server's
  files under `out_dir/test/` (bertbench.finetuning.submission), listed in the record's
  `test_predictions`; the test files are read before training, so a missing one fails fast.
- Idempotent: an existing out_dir/record.json is returned as is.
"""

import collections
import contextlib
import dataclasses
import json
import math
import shutil
import time
import warnings
import weakref
from pathlib import Path

from bertbench.config import to_dict
from bertbench.errors import BertbenchError, ConfigError
from bertbench.files import write_json_atomic
from bertbench.finetuning.data import PADDINGS, encode_cached, length_batches, load_split, make_dataset, restore_order
from bertbench.finetuning.init import prepare_init, restore_encoder
from bertbench.finetuning.kinds import kind_of
from bertbench.finetuning.submission import glue_test_sets, with_placeholder_labels
from bertbench.model.precision import resolve_precision, wrap_optimizer
from bertbench.model.strategy import get_strategy
from bertbench.tasks import get_task

TRACED_MODELS = 6  # compiled models kept per process (a `run` goes variant by variant over ~5 tasks)
_TRACED = collections.OrderedDict()  # graph key -> a compiled model whose training step is traced
_FORWARD = weakref.WeakKeyDictionary()  # model -> its traced prediction function



def check_config(spec, kind, cfg, model_cfg):
    if cfg.max_seq_length > model_cfg.max_sequence_length:
        raise ConfigError(f"finetune.max_seq_length={cfg.max_seq_length} exceeds the encoder's "
                          f"max_sequence_length={model_cfg.max_sequence_length}; lower it")
    if cfg.feature_layers and not kind.FEATURE_BASED:
        raise ConfigError(f"finetune.feature_layers='{cfg.feature_layers}' is for tagging tasks "
                          f"(conll2003), not {spec.name}; set it to \"\"")


@contextlib.contextmanager
def dtype_policy(name):
    """The global Keras dtype policy `name` inside the block (models built there keep it), the
    previous one restored after, as the pretraining loop does."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(spec, kind, init, cfg, num_steps, strategy):
    """Encoder (restored or random) + head + optimizer, created in `strategy.scope()`: the one place.
    Under the global dtype policy (see `dtype_policy`); mixed_float16 gets a loss-scaling optimizer."""
    import keras

    from bertbench.model.optimization import create_optimizer

    with strategy.scope():
        encoder = restore_encoder(init, cfg.dropout, cfg.seed)
        model = kind.build_head(encoder, spec, cfg)
        warmup = int(round(cfg.warmup_fraction * num_steps))
        optimizer = wrap_optimizer(create_optimizer(cfg.effective_learning_rate, num_steps, warmup,
                                                    cfg.weight_decay), keras.config.dtype_policy().name)
        model.compile(optimizer=optimizer, loss=kind.loss, jit_compile=False)
    return model


def reuse_traced(model, key, strategy):
    """A model whose training step is already traced, holding `model`'s values, or `model` itself.

    Tracing the training step takes seconds, and every run builds a new model: a `run` traces ~25
    times. Runs of one process with the same graph (the `key`: task, settings but the seed, encoder,
    steps, padding, strategy, precision) reuse the first one's compiled model, with every variable
    (weights, dropout seed states, fresh optimizer slots and step) set from the run's own freshly
    built `model`: the same graph on the same values computes the same numbers.
    """
    cached = _TRACED.get(key)
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    fresh = model.variables + model.optimizer.variables
    layout = [(tuple(v.shape), str(v.dtype)) for v in fresh]
    if cached is None or layout != [(tuple(v.shape), str(v.dtype)) for v in cached.variables + cached.optimizer.variables]:
        _TRACED[key] = model
        while len(_TRACED) > TRACED_MODELS:
            _TRACED.popitem(last=False)
        return model
    for source, target in zip(fresh, cached.variables + cached.optimizer.variables, strict=True):
        target.assign(source)
    _TRACED.move_to_end(key)
    return cached


def finetune(finetune_cfg, init, out_dir, data_dir=None, strategy="default", model_cfg=None, vocab="sample",
             verbose=False, predict_test=False, diagnostic=None):
    """Fine-tune on finetune_cfg.task, score on dev, write predictions + record.json -> record.

    init: a checkpoint dir, or None with `model_cfg` (+ tokenizer `vocab`) for random init;
    strategy: a bertbench.model.strategy name or a tf.distribute.Strategy; verbose: progress bars
    (on a terminal); predict_test: also the GLUE test files (`diagnostic`: the AX file for MNLI);
    finetune_cfg.padding sets the training batches' padding (finetuning.data.make_dataset); kinds that
    are not PADDING_INVARIANT always train at full length. Prediction is length-sorted and cut whatever
    the padding, where the kind allows it (same numbers as full length).
    """
    import keras

    out_dir = Path(out_dir)
    if (out_dir / "record.json").is_file():
        return _finished(out_dir, predict_test)
    cfg = finetune_cfg
    spec = get_task(cfg.task)
    kind = kind_of(spec)
    padding = _training_padding(cfg.padding, kind)
    tests, notes = glue_test_sets(spec, data_dir, cfg.source, diagnostic) if predict_test else ([], [])
    setup = prepare_init(init, model_cfg, vocab, cfg.lowercase)
    check_config(spec, kind, cfg, setup.model_cfg)
    keras.utils.set_random_seed(cfg.seed)
    train_examples, _ = load_split(spec, "train", data_dir, cfg.max_train_examples, cfg.source)
    evals = {split: load_split(spec, split, data_dir, cfg.max_eval_examples, cfg.source)
             for split in spec.eval_splits}
    train = encode_cached(kind, spec, train_examples, setup.tokenizer, cfg)
    num_steps = max(1, math.ceil(cfg.effective_epochs * len(train) / cfg.batch_size))
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    precision = resolve_precision(cfg.precision, strategy)  # "auto": what this machine's devices do best
    with dtype_policy(precision):  # built, trained and predicting under it
        model = build_model(spec, kind, setup, cfg, num_steps, strategy)
        model = reuse_traced(model, (spec.name, repr(dataclasses.replace(cfg, seed=0)), repr(setup.model_cfg),
                                     num_steps, padding, id(strategy), precision), strategy)
        shutil.rmtree(out_dir / "logs", ignore_errors=True)  # an interrupted attempt's curve
        history, wall, writer = _train(model, train, cfg, num_steps, out_dir / "logs", verbose, padding)
        out_dir.mkdir(parents=True, exist_ok=True)
        by_split, paths, predicted = evaluate_splits(spec, kind, model, evals, setup, cfg, out_dir, verbose)
        tested = predict_tests(spec, kind, model, setup, cfg, tests, out_dir / "test", verbose) if predict_test else {}
    _log_dev(writer, num_steps, by_split)
    trained = {"num_train_examples": len(train_examples), "num_train_features": len(train),
               "train_wall_time_s": wall, "steps": num_steps,
               "final_train_loss": float(history.history["loss"][-1])}
    record = _record(spec, cfg, setup, strategy, evals, by_split, paths, trained, precision)
    first = spec.eval_splits[0]
    record.update(dev_statistics(spec, kind, train_examples, evals[first][0], predicted[first]))
    if predict_test:
        record["test_predictions"] = tested
        record["test_notes"] = notes
    record["padding"] = padding
    write_json_atomic(out_dir / "record.json", record)
    return record


def _finished(out_dir, predict_test):
    """The record of a finished run; asking a run finished without them for test predictions is an error."""
    record = json.loads((out_dir / "record.json").read_text(encoding="utf-8"))
    if predict_test and "test_predictions" not in record:
        raise BertbenchError(f"{out_dir} holds a run finished without test predictions; pass another --out "
                             f"(or remove that folder) to fine-tune again with --predict-test")
    return record


def _training_padding(padding, kind):
    """The padding of training batches: the one asked for where the kind's numbers allow it, else full."""
    if padding not in PADDINGS:
        raise ConfigError(f"padding={padding!r} is not one of {', '.join(PADDINGS)}; pick one")
    return padding if kind.PADDING_INVARIANT else "full"


def _train(model, train, cfg, num_steps, logdir, verbose, padding="full"):
    """`num_steps` steps over the seeded, reshuffled training set -> (Keras history, wall seconds,
    the TensorBoard writer of `logdir`)."""
    from bertbench.finetuning.logs import TrainMonitor

    monitor = TrainMonitor(num_steps, logdir, label=f"finetune {cfg.task}", verbose=verbose)
    start = time.time()
    with warnings.catch_warnings():  # span/tagging/BiLSTM heads do not use the [CLS] pooler: expected
        warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables "
                                r"\['pooled_dense/kernel', 'pooled_dense/bias'\]")
        history = model.fit(make_dataset(train, cfg.batch_size, training=True, seed=cfg.seed, padding=padding),
                            epochs=1, steps_per_epoch=num_steps, shuffle=False, verbose=0,
                            callbacks=[monitor])
    return history, time.time() - start, monitor.writer


def _log_dev(writer, step, by_split):
    """Every dev split's metrics in TensorBoard as `<split>/<metric>` at the last step."""
    from bertbench.finetuning.logs import write_scalars

    write_scalars(writer, step, {f"{split}/{name}": value for split, values in by_split.items()
                                 for name, value in values.items()})


def predict(model, encoded, cfg, label, verbose, dynamic=True):
    """Logits of every row of `encoded` (batches of 2 x batch_size), with a bar when verbose.

    dynamic: rows sorted by length, batched, each batch cut to its length (finetuning.data), run
    through one function traced once for any batch and length (`model.predict` would trace again for
    each new shape), the logits put back in the rows' order; else `model.predict` at full length.
    """
    import tensorflow as tf

    from bertbench.finetuning.logs import PredictMonitor

    batch = 2 * cfg.batch_size
    monitor = PredictMonitor(math.ceil(len(encoded) / batch), label=label, verbose=verbose)
    if not dynamic:
        return model.predict(make_dataset(encoded, batch, training=False), verbose=0, callbacks=[monitor])
    if model not in _FORWARD:  # traced once per model, for every batch size and length
        signature = {k: tf.TensorSpec([None] * v.ndim, tf.as_dtype(v.dtype)) for k, v in encoded.inputs.items()}
        held = weakref.ref(model)  # the function must not keep its model (the key) alive
        _FORWARD[model] = tf.function(lambda inputs: held()(inputs, training=False), input_signature=[signature],
                                     autograph=False)
    forward = _FORWARD[model]
    batches, outputs = length_batches(encoded, batch), []
    for _, inputs in batches:
        outputs.append(forward(inputs).numpy())
        monitor.bar.update(1)
    monitor.bar.close()
    return restore_order([rows for rows, _ in batches], outputs, len(encoded), encoded.inputs["token_ids"].shape[-1])


def evaluate_splits(spec, kind, model, evals, init, cfg, out_dir, verbose=False):
    """`evaluate_split` of each dev split {split: (examples, indices)} into out_dir/predictions[_<split>]
    -> ({split: metrics}, {split: path}, {split: predictions})."""
    by_split, paths, predicted = {}, {}, {}
    for split, (examples, indices) in evals.items():
        stem = out_dir / ("predictions" if len(evals) == 1 else f"predictions_{split}")
        by_split[split], paths[split], predicted[split] = evaluate_split(spec, kind, model, examples, indices,
                                                                         init, cfg, stem, verbose)
    return by_split, paths, predicted


def evaluate_split(spec, kind, model, examples, indices, init, cfg, stem, verbose=False):
    """Predict a whole dev split, write its official prediction file, score it once.

    `indices` are the examples' positions in the split's file.
    Returns (metrics, prediction path, predictions).
    """
    encoded = encode_cached(kind, spec, examples, init.tokenizer, cfg)
    split = Path(stem).name.partition("_")[2] or "dev"  # predictions[_<split>]
    logits = predict(model, encoded, cfg, f"predict {spec.name} {split}", verbose, kind.PADDING_INVARIANT)
    predictions = kind.predict(spec, examples, encoded, logits, cfg)
    path = kind.write_predictions(stem, examples, indices, predictions)
    return kind.score(spec, examples, predictions), path, predictions


def predict_tests(spec, kind, model, init, cfg, tests, folder, verbose=False):
    """Predict each unlabelled test set [(file stem, examples)] into `folder/<stem>.tsv`, the GLUE
    server's layout (row i = the test file's index i) -> {file name: path}."""
    paths = {}
    for stem, examples in tests:
        encoded = kind.encode(spec, with_placeholder_labels(spec, examples), init.tokenizer, cfg)
        logits = predict(model, encoded, cfg, f"predict {stem} test", verbose, kind.PADDING_INVARIANT)
        predictions = kind.predict(spec, examples, encoded, logits, cfg)
        path = kind.write_predictions(folder / stem, examples, range(len(examples)), predictions)
        paths[path.name] = str(path)
    return paths


def dev_statistics(spec, kind, train_examples, examples, predictions):
    """What the statistics of a table need from a run's first dev split: per-example rows of its
    predictions (dev-set bootstrap), whether it predicts one thing for everything (collapsed), and
    the metrics of the majority-class / constant prediction on the same examples."""
    baseline = kind.score(spec, examples, kind.constant_predictions(spec, train_examples, examples))
    return {"example_rows": {"form": kind.ROW_FORM,
                             "rows": kind.example_rows(spec, examples, predictions).tolist()},
            "single_prediction": bool(kind.single_prediction(predictions)),
            "majority_baseline": {k: float(v) for k, v in baseline.items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)}}


def _record(spec, cfg, init, strategy, evals, by_split, paths, trained, precision):
    """The run record: metrics of the first dev split under plain names, the others prefixed;
    `precision` is the dtype policy the run used (cfg.precision resolved)."""
    first = spec.eval_splits[0]
    metrics = dict(by_split[first])
    for split in spec.eval_splits[1:]:
        metrics.update({f"{split}_{k}": v for k, v in by_split[split].items()})
    return {
        "status": "ok", "task": spec.name, "kind": spec.kind, "metrics": metrics,
        "metrics_by_split": by_split, "main_metric": spec.main_metric,
        "main_value": float(metrics[spec.main_metric]), "higher_is_better": spec.higher_is_better,
        "num_train_examples": trained["num_train_examples"],
        "num_train_features": trained["num_train_features"], "num_eval_examples": len(evals[first][0]),
        "num_eval_examples_by_split": {s: len(e) for s, (e, _) in evals.items()},
        "train_wall_time_s": trained["train_wall_time_s"], "steps": trained["steps"],
        "final_train_loss": trained["final_train_loss"], "config": to_dict(cfg), "init": init.record,
        "strategy": type(strategy).__name__, "num_replicas": int(strategy.num_replicas_in_sync),
        "precision": precision,
        "predictions_path": str(paths[first]),
        "predictions_paths": {s: str(p) for s, p in paths.items()},
    }
