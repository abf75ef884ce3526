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
- Idempotent: an existing out_dir/record.json is returned as is.
"""

import json
import math
import time
import warnings
from pathlib import Path

from bertbench.config import to_dict
from bertbench.errors import ConfigError
from bertbench.files import write_json_atomic
from bertbench.finetuning.data import load_split, make_dataset
from bertbench.finetuning.init import prepare_init, restore_encoder
from bertbench.finetuning.kinds import kind_of
from bertbench.model.strategy import get_strategy
from bertbench.tasks import get_task


def check_config(spec, kind, cfg, model_cfg):
    if cfg.max_seq_length > model_cfg.max_sequence_length:
        raise ConfigError(f"finetune.max_seq_length={cfg.max_seq_length} exceeds the encoder's "
                          f"max_sequence_length={model_cfg.max_sequence_length}; lower it")
    if cfg.feature_layers and not kind.FEATURE_BASED:
        raise ConfigError(f"finetune.feature_layers='{cfg.feature_layers}' is for tagging tasks "
                          f"(conll2003), not {spec.name}; set it to \"\"")


def build_model(spec, kind, init, cfg, num_steps, strategy):
    """Encoder (restored or random) + head + optimizer, created in `strategy.scope()`: the one place."""
    from bertbench.model.optimization import create_optimizer

    with strategy.scope():
        encoder = restore_encoder(init, cfg.dropout, cfg.seed)
        model = kind.build_head(encoder, spec, cfg)
        warmup = int(round(cfg.warmup_fraction * num_steps))
        optimizer = create_optimizer(cfg.effective_learning_rate, num_steps, warmup, cfg.weight_decay)
        model.compile(optimizer=optimizer, loss=kind.loss, jit_compile=False)
    return model


def finetune(finetune_cfg, init, out_dir, data_dir=None, strategy="default", model_cfg=None, vocab="sample"):
    """Fine-tune on finetune_cfg.task, score on dev, write predictions + record.json -> record.

    init: a checkpoint dir, or None with `model_cfg` (+ tokenizer `vocab`) for random init;
    strategy: a bertbench.model.strategy name or a tf.distribute.Strategy.
    """
    import keras

    out_dir = Path(out_dir)
    if (out_dir / "record.json").is_file():
        return json.loads((out_dir / "record.json").read_text(encoding="utf-8"))
    cfg = finetune_cfg
    spec = get_task(cfg.task)
    kind = kind_of(spec)
    setup = prepare_init(init, model_cfg, vocab, cfg.lowercase)
    check_config(spec, kind, cfg, setup.model_cfg)
    keras.utils.set_random_seed(cfg.seed)
    train_examples, _ = load_split(spec, "train", data_dir, cfg.max_train_examples, cfg.source)
    evals = {split: load_split(spec, split, data_dir, cfg.max_eval_examples, cfg.source)
             for split in spec.eval_splits}
    train = kind.encode(spec, train_examples, setup.tokenizer, cfg)
    num_steps = max(1, math.ceil(cfg.effective_epochs * len(train) / cfg.batch_size))
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    model = build_model(spec, kind, setup, cfg, num_steps, strategy)
    history, wall = _train(model, train, cfg, num_steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_split, paths, predicted = {}, {}, {}
    for split, (examples, indices) in evals.items():
        stem = out_dir / ("predictions" if len(evals) == 1 else f"predictions_{split}")
        by_split[split], paths[split], predicted[split] = evaluate_split(spec, kind, model, examples, indices,
                                                                         setup, cfg, stem)
    trained = {"num_train_examples": len(train_examples), "num_train_features": len(train),
               "train_wall_time_s": wall, "steps": num_steps,
               "final_train_loss": float(history.history["loss"][-1])}
    record = _record(spec, cfg, setup, strategy, evals, by_split, paths, trained)
    first = spec.eval_splits[0]
    record.update(dev_statistics(spec, kind, train_examples, evals[first][0], predicted[first]))
    write_json_atomic(out_dir / "record.json", record)
    return record


def _train(model, train, cfg, num_steps):
    """`num_steps` steps over the seeded, reshuffled training set -> (Keras history, wall seconds)."""
    start = time.time()
    with warnings.catch_warnings():  # span/tagging/BiLSTM heads do not use the [CLS] pooler: expected
        warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables "
                                r"\['pooled_dense/kernel', 'pooled_dense/bias'\]")
        history = model.fit(make_dataset(train, cfg.batch_size, training=True, seed=cfg.seed),
                            epochs=1, steps_per_epoch=num_steps, shuffle=False, verbose=0)
    return history, time.time() - start


def evaluate_split(spec, kind, model, examples, indices, init, cfg, stem):
    """Predict a whole dev split, write its official prediction file, score it once.

    `indices` are the examples' positions in the split's file.
    Returns (metrics, prediction path, predictions).
    """
    encoded = kind.encode(spec, examples, init.tokenizer, cfg)
    logits = model.predict(make_dataset(encoded, 2 * cfg.batch_size, training=False), verbose=0)
    predictions = kind.predict(spec, examples, encoded, logits, cfg)
    path = kind.write_predictions(stem, examples, indices, predictions)
    return kind.score(spec, examples, predictions), path, predictions


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


def _record(spec, cfg, init, strategy, evals, by_split, paths, trained):
    """The run record: metrics of the first dev split under plain names, the others prefixed."""
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
        "predictions_path": str(paths[first]),
        "predictions_paths": {s: str(p) for s, p in paths.items()},
    }
