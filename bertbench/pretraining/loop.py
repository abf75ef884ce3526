"""Pretraining loop: corpus -> instances -> encoder + objective heads -> checkpoint (the `pretrain`
command's library part; the command is bertbench.commands.pretrain).

One custom loop inside a `tf.distribute` strategy: AdamW with warmup + linear decay, global-norm
clipping, checkpoints every N steps (pretraining.checkpoints: model + optimizer + data iterator, so a
rerun resumes from the newest intact one and ends where an uninterrupted run would; a rerun with
another config is refused), TensorBoard logs, a JSON summary, and a stop with a clear message on a
non-finite loss (the last good checkpoint is kept).
"""

import dataclasses
import json
import math
import time
from pathlib import Path

from bertbench.config import to_dict
from bertbench.errors import BertbenchError, ConfigError
from bertbench.files import write_json_atomic, write_text_atomic
from bertbench.model.checkpoint import save_encoder
from bertbench.model.precision import resolve_precision, wrap_optimizer
from bertbench.model.strategy import get_strategy
from bertbench.pretraining.accounting import estimate_flops, phase_tokens, phases, step_tokens
from bertbench.pretraining.checkpoints import (CheckpointPolicy, TimeLedger, check_run_config, read_history,
                                               run_precision, store_run_config)
from bertbench.pretraining.dataset import heldout_dataset, pretraining_input, train_dataset
from bertbench.pretraining.workers import DISTRIBUTED_INPUT, distributed_iterator, save_checkpoint, worker_role
from bertbench.progress import Progress
from bertbench.text.tokenizer import load_tokenizer

HELDOUT_FILE = "heldout.json"  # in each encoder_step<k>/ export: the held-out metrics at step k


def resolve_model_config(model_cfg, pretrain_cfg, vocabulary_size):
    """The model config a pretraining run really uses: the tokenizer's vocabulary size, and causal
    attention for the left-to-right objective (kept for that model's fine-tuning)."""
    attention = "causal" if pretrain_cfg.objective == "ltr" else model_cfg.attention
    if pretrain_cfg.objective != "ltr" and attention == "causal":
        raise ConfigError(f"objective '{pretrain_cfg.objective}' needs bidirectional attention; "
                          f"use objective=ltr for a causal model")
    return dataclasses.replace(model_cfg, vocabulary_size=vocabulary_size, attention=attention)


class Trainer:
    """Model, optimizer and compiled steps, built once inside the strategy scope."""

    def __init__(self, model_cfg, cfg, strategy, encoder_fn=None):
        import keras
        import tensorflow as tf

        from bertbench.model.encoder import build_encoder
        from bertbench.model.optimization import create_optimizer
        from bertbench.pretraining.objectives import BertPretrainer

        self.cfg, self.strategy = cfg, strategy
        self.precision = keras.config.dtype_policy().name  # the policy it is built and trained in
        with strategy.scope():  # the one place where the model is built
            self.encoder = (encoder_fn or build_encoder)(model_cfg)  # the benchmark swaps in its peer
            self.model = BertPretrainer(self.encoder, cfg.objective, activation=model_cfg.activation,
                                        layer_norm_epsilon=model_cfg.layer_norm_epsilon,
                                        initializer_range=model_cfg.initializer_range)
            self.optimizer = wrap_optimizer(create_optimizer(
                cfg.learning_rate, cfg.num_steps, cfg.warmup_steps, cfg.weight_decay, cfg.adam_beta_1,
                cfg.adam_beta_2, cfg.adam_epsilon, cfg.clip_norm), keras.config.dtype_policy().name)
        self._keras, self._tf = keras, tf
        self._loss_scaled = isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer)
        self.role = worker_role(strategy)  # the chief writes; every worker computes
        on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)  # TPUs run XLA: fixed shapes, one graph
        self._train_step = tf.function(self._distributed_train_step)
        self._eval_step = tf.function(self._distributed_eval_step if self.role.count == 1 else self._local_eval_step)
        self._grads = tf.function(self._replica_grads, jit_compile=cfg.jit_compile or on_tpu)

    def build(self, batch):
        """Create every variable (model and optimizer slots) before a checkpoint restore."""
        features, _ = batch
        with self.strategy.scope():
            self.model({k: v[:1] for k, v in features.items()}, training=False)
            self.optimizer.build(self.model.trainable_variables)

    def distribute(self, batch):
        """Split a global batch into per-replica slices (a no-op on one replica)."""
        replicas = self.strategy.num_replicas_in_sync
        if replicas == 1:
            return batch
        if self.cfg.batch_size % replicas:
            raise ConfigError(f"pretrain.batch_size={self.cfg.batch_size} is not divisible by the "
                              f"{replicas} replicas of the strategy; pick a multiple of {replicas}")
        tf = self._tf

        def value_fn(ctx):
            return tf.nest.map_structure(lambda t: tf.split(t, replicas)[ctx.replica_id_in_sync_group], batch)

        return self.strategy.experimental_distribute_values_from_function(value_fn)

    def _global_counts(self, labels):
        """LM predictions and NSP examples summed over all replicas (they depend on labels only)."""
        from bertbench.pretraining.objectives import lm_label_keys

        tf = self._tf
        ctx = tf.distribute.get_replica_context()
        counts = {"lm_count": ctx.all_reduce(
            "sum", tf.reduce_sum(tf.cast(labels[lm_label_keys(self.cfg.objective)[1]], tf.float32)))}
        if self.cfg.nsp:
            counts["nsp_count"] = ctx.all_reduce(
                "sum", tf.cast(tf.size(labels["next_sentence_labels"]), tf.float32))
        return counts

    def _replica_grads(self, features, labels, counts):
        from bertbench.pretraining.objectives import loss_sums, total_loss

        with self._tf.GradientTape() as tape:
            sums = loss_sums(self.model(features, training=True), labels, self.cfg.objective)
            loss = total_loss(sums, counts)  # local sums / GLOBAL counts: replicas' gradients add up
            if self._loss_scaled:  # mixed_float16: scaled up here, unscaled (and checked) by the optimizer
                loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, self.model.trainable_variables)
        return grads, sums

    def _distributed_train_step(self, batch):
        def step_fn(features, labels):
            grads, sums = self._grads(features, labels, self._global_counts(labels))
            # Weights the objective does not reach (the pooler without NSP) get no gradient: leave
            # them out (as Keras would, with a warning on every trace) so they are neither moved nor decayed.
            self.optimizer.apply_gradients([(g, v) for g, v in zip(grads, self.model.trainable_variables)
                                            if g is not None])
            return sums

        per_replica = self.strategy.run(step_fn, args=batch)
        return {k: self.strategy.reduce("sum", v, axis=None) for k, v in per_replica.items()}

    def _distributed_eval_step(self, batch):
        from bertbench.pretraining.objectives import loss_sums

        def step_fn(features, labels):
            return loss_sums(self.model(features, training=False), labels, self.cfg.objective)

        per_replica = self.strategy.run(step_fn, args=batch)
        return {k: self.strategy.reduce("sum", v, axis=None) for k, v in per_replica.items()}

    def _local_eval_step(self, batch):
        """Several workers: each evaluates the whole held-out set on its own (no collectives in a
        finite, uneven pass); the weights are the same on all of them."""
        from bertbench.pretraining.objectives import loss_sums

        features, labels = batch
        return loss_sums(self.model(features, training=False), labels, self.cfg.objective)

    def train_step(self, batch):
        return {k: float(v) for k, v in self._train_step(batch).items()}

    def evaluate(self, dataset):
        """Metrics summed over a finite dataset (whole held-out set at once, not batch means)."""
        from bertbench.pretraining.objectives import summarize

        totals = {}
        batches = dataset if self.role.count > 1 else self.strategy.experimental_distribute_dataset(dataset)
        for batch in batches:
            for k, v in self._eval_step(batch).items():
                totals[k] = totals.get(k, 0.0) + float(v)
        return summarize(totals)


class _Progress:
    """The step bar (bertbench.progress: drawn on a terminal only, off with verbose=False), followed
    by the latest loss / logged metrics and the tokens/s of this process."""

    def __init__(self, total, verbose, initial=0):
        self.bar = Progress(total, label="pretrain", unit="step", initial=initial, enabled=verbose)
        self.start, self.tokens, self.metrics = time.perf_counter(), 0, {}

    def update(self, step, tokens, metrics, force=False):
        self.tokens += tokens
        self.metrics.update(metrics)
        rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        shown = " ".join(f"{k}={v:.3g}" if k == "learning_rate" else f"{k}={v:.4f}"
                         for k, v in self.metrics.items())
        self.bar.update(step - self.bar.done, postfix=f"{shown} tokens/s={rate:,.0f}")
        if step >= self.bar.total:
            self.bar.close()


def pretrain(model_cfg, cfg, out_dir, strategy="default", export_at=(), verbose=True, stop_at=None):
    """Pretrain an encoder; returns the run summary. Reruns resume from `out_dir/ckpt/`.

    `stop_at=k` (< num_steps) trains only up to step k in this call: it checkpoints there and returns
    {"status": "paused", "steps": k, "model": ...} without the final encoder or summary; a later call
    resumes and ends exactly where an uninterrupted run would (the runner fine-tunes each export so).

    Writes `out_dir/encoder/` (a bertbench encoder checkpoint, what fine-tuning loads),
    `out_dir/encoder_step{k}/` for each k in `export_at`, `out_dir/summary.json`, `out_dir/logs/`.
    The summary's "model" is the RESOLVED model config (`resolve_model_config`: the tokenizer's
    vocabulary size, causal attention for "ltr"), the one the encoder was built with: a record of
    the run must take its model config from there, not from the config asked for.
    """
    import keras

    began = time.perf_counter()  # the process's wall time for this run counts from here (TimeLedger)
    out_dir = Path(out_dir)
    run_config = check_run_config(out_dir, model_cfg, cfg)  # a rerun with another config is refused
    summary_path = out_dir / "summary.json"
    if summary_path.exists():  # finished earlier: nothing to do
        missing_exports(out_dir, export_at, cfg.num_steps)
        return json.loads(summary_path.read_text())
    strategy_obj = get_strategy(strategy)  # first: MultiWorkerMirroredStrategy must precede other TF work
    tokenizer = load_tokenizer(cfg.vocab, cfg.lowercase)
    corpus, cfg = pretraining_input(cfg, tokenizer)  # TFRecords fix the sequence length in cfg
    model_cfg = resolve_model_config(model_cfg, cfg, tokenizer.vocabulary_size)
    if max(seq for seq, _, _ in phases(cfg)) > model_cfg.max_sequence_length:
        raise ConfigError(f"sequence length {max(s for s, _, _ in phases(cfg))} exceeds "
                          f"model.max_sequence_length={model_cfg.max_sequence_length}")
    # "auto": what this machine's devices do best, unless the run began elsewhere in another precision
    chief = worker_role(strategy_obj).is_chief
    precision, run_config = run_precision(out_dir, run_config, resolve_precision(cfg.precision, strategy_obj),
                                          cfg.precision, say=chief)
    if chief:  # inputs read and checked: a failed start leaves no --out behind
        out_dir.mkdir(parents=True, exist_ok=True)  # (the other workers write nothing here)
        store_run_config(out_dir, run_config)
    keras.utils.set_random_seed(cfg.seed)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        trainer = Trainer(model_cfg, cfg, strategy_obj)
        summary = _train(trainer, corpus, model_cfg, cfg, out_dir, export_at, verbose, tokenizer,
                         per_worker_input=strategy in DISTRIBUTED_INPUT, stop_at=stop_at, began=began)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    if summary["status"] == "paused":
        return {**summary, "model": to_dict(model_cfg), "precision": precision}
    summary.update(strategy=strategy, num_replicas=strategy_obj.num_replicas_in_sync, precision=precision,
                   model=to_dict(model_cfg), pretrain=to_dict(cfg),
                   estimated_flops=estimate_flops(model_cfg, cfg))
    if not trainer.role.is_chief:
        return summary
    save_encoder(trainer.encoder, model_cfg, out_dir / "encoder", tokenizer.vocab_path, cfg.lowercase,
                 extra={"objective": cfg.objective, "steps": cfg.num_steps, "precision": trainer.precision})
    write_json_atomic(summary_path, summary)
    return summary


def _train(trainer, corpus, model_cfg, cfg, out_dir, export_at, verbose, tokenizer, per_worker_input=False,
           stop_at=None, began=None):
    import tensorflow as tf

    plan, role = phases(cfg), trainer.role
    checkpointed, start_input = _inputs(trainer, corpus, cfg, plan, per_worker_input)
    ckpt, manager, counter = _checkpointing(trainer, cfg, out_dir, checkpointed)
    manager.restore()  # the newest intact checkpoint with finite weights
    step = int((trainer.optimizer.iterations if counter is None else counter).numpy())
    if role.is_chief:
        missing_exports(out_dir, export_at, step)
    ledger = TimeLedger(out_dir, step, time.perf_counter() if began is None else began, writer=role.is_chief)
    limit = cfg.num_steps if stop_at is None else min(stop_at, cfg.num_steps)
    next_batch = start_input(step)  # per phase: () -> the next (distributed) global batch
    heldout = heldout_dataset(corpus, cfg, cfg.max_seq_length, cfg.batch_size)
    initial_path = out_dir / "initial_eval.json"
    if role.is_chief and not initial_path.exists():  # step-0 held-out metrics, kept across resumes
        write_json_atomic(initial_path, trainer.evaluate(heldout) if step == 0 else {})
    writer = tf.summary.create_file_writer(str(out_dir / "logs")) if role.is_chief else tf.summary.create_noop_writer()
    if role.is_chief:
        _truncate_history(out_dir / "metrics.jsonl", step)
    progress, window, started = _Progress(cfg.num_steps, verbose, step), {}, time.perf_counter()
    resumed_from = step
    for phase, (seq, first, end) in enumerate(plan):
        while first <= step < min(end, limit):
            sums = trainer.train_step(next_batch[phase]())
            step += 1
            if counter is not None:
                counter.assign(step)
            loss = sums["lm_loss_sum"] / max(sums["lm_count"], 1.0)
            loss += sums.get("nsp_loss_sum", 0.0) / max(sums.get("nsp_count", 1.0), 1.0)
            if not math.isfinite(loss):
                raise manager.non_finite(loss, step, out_dir, cfg.learning_rate)
            for k, v in sums.items():
                window[k] = window.get(k, 0.0) + v
            if step % cfg.log_every == 0 or step == cfg.num_steps:
                _log(writer, out_dir, step, window, trainer, progress, cfg, seq)
                window = {}
            else:
                progress.update(step, step_tokens(cfg.batch_size, seq), {"loss": loss})
            if step in export_at and role.is_chief:  # before the checkpoint: a kill between them exports again
                save_encoder(trainer.encoder, model_cfg, out_dir / f"encoder_step{step}", tokenizer.vocab_path,
                             cfg.lowercase, extra={"objective": cfg.objective, "steps": step, "precision": trainer.precision})
                # the held-out MLM curve (accuracy/perplexity against steps) at every export
                write_json_atomic(out_dir / f"encoder_step{step}" / HELDOUT_FILE, trainer.evaluate(heldout))
            if step % cfg.checkpoint_every == 0 or step == limit:
                save_checkpoint(ckpt, manager, role, step)  # every worker takes part
                ledger.mark(step)
    if step < cfg.num_steps:  # stopped at `stop_at`: checkpointed there, resumed by a later call
        return {"status": "paused", "steps": step, "resumed_from_step": resumed_from}
    train_time = time.perf_counter() - started
    final = trainer.evaluate(heldout) if role.is_chief else {}
    tokens = phase_tokens(plan, cfg.batch_size, resumed_from)  # trained in this process (resumes skip steps)
    return {"status": "ok", "steps": step, "resumed_from_step": resumed_from, "train_wall_time_s": train_time,
            "wall_time_total_s": ledger.total(),  # every process that trained it (None: not known)
            "tokens_seen": phase_tokens(plan, cfg.batch_size, 0),
            "tokens_per_s": tokens / max(train_time, 1e-9),
            "initial_heldout": json.loads(initial_path.read_text()) if role.is_chief else {}, "heldout": final,
            "heldout_at_exports": _heldout_at_exports(out_dir, export_at) if role.is_chief else {},
            "unigram_baseline": corpus.unigram_baseline(), "corpus": corpus.stats()}


def _checkpointing(trainer, cfg, out_dir, checkpointed):
    """(tf.train.Checkpoint of the whole training state, its CheckpointPolicy, the step counter or None)."""
    import tensorflow as tf

    # Under loss scaling a skipped (overflowing) step leaves optimizer.iterations behind the steps
    # taken: the steps are then counted apart (checkpointed), so a resume meets the data where it was.
    counter = tf.Variable(0, dtype=tf.int64, trainable=False) if trainer._loss_scaled else None
    ckpt = tf.train.Checkpoint(model=trainer.model, optimizer=trainer.optimizer,
                               dropout_rng=_seed_states(trainer.model), **checkpointed,
                               **({"trained_steps": counter} if counter is not None else {}))
    manager = CheckpointPolicy(ckpt, out_dir / "ckpt", cfg.keep_checkpoints, trainer.model.variables,
                               writer=trainer.role.is_chief)
    return ckpt, manager, counter


def missing_exports(out_dir, export_at, step):
    """Refuse a run (finished, or resumed at `step`) that passed an export step without its export: one
    run serves plans with and without exports (the id leaves them out), and a passed step cannot be
    exported again."""
    missing = [k for k in sorted(export_at) if k <= step and not (Path(out_dir) / f"encoder_step{k}").is_dir()]
    if missing:
        raise BertbenchError(f"pretraining run {out_dir} is past step {missing[0]} without the encoder export the plan "
                             f"needs there (it ran for a plan without exports); remove {out_dir} to train it again "
                             f"with the exports, or run the experiment that needs them before the others")


def _heldout_at_exports(out_dir, export_at):
    """{step: held-out metrics} of the exported encoders (written when each was exported)."""
    found = {}
    for step in sorted(export_at):
        path = out_dir / f"encoder_step{step}" / HELDOUT_FILE
        if path.exists():
            found[str(step)] = json.loads(path.read_text())
    return found


def _inputs(trainer, corpus, cfg, plan, per_worker):
    """(iterators to checkpoint by name, start(step) -> per phase a function giving the next batch);
    builds the model's and optimizer's variables from a first batch."""
    if not per_worker:
        datasets = [train_dataset(corpus, cfg, seq, cfg.batch_size) for seq, _, _ in plan]
        trainer.build(next(iter(datasets[0])))
        # Plain tf.data iterators (checkpointable, unlike distributed ones); each global batch is split
        # across replicas by `Trainer.distribute`.
        iterators = [iter(ds) for ds in datasets]
        return ({f"data_phase{i}": it for i, it in enumerate(iterators)},
                lambda step: [lambda it=it: trainer.distribute(next(it)) for it in iterators])
    role = trainer.role
    trainer.build(next(iter(train_dataset(corpus, cfg, plan[0][0], 1, shard=(role.index, role.count)))))

    def start(step):  # distributed iterators are not checkpointable: each worker's stream skips to `step`
        def phase_fn(phase, seq, first):
            def dataset_fn(batch, shard, local):
                dataset = train_dataset(corpus, cfg, seq, batch, shard, start=max(step - first, 0) * local)
                if phase == 0:  # one process trains on the second (reshuffled) pass of phase 0's dataset,
                    iter(dataset)  # its first built the model: the same pass here, the same instances
                return dataset

            return dataset_fn

        iterators = [distributed_iterator(trainer.strategy, cfg.batch_size, phase_fn(phase, seq, first))
                     for phase, (seq, first, _) in enumerate(plan)]
        return [lambda it=it: next(it) for it in iterators]

    return {}, start


def _seed_states(model):
    """The state variables of every Keras seed generator (dropout): tf.train.Checkpoint does not track
    them, and a resumed run must draw the same dropout masks as an uninterrupted one."""
    import tensorflow as tf

    states = [sg.state for layer in model._flatten_layers() for sg in getattr(layer, "_seed_generators", [])]
    return tf.train.Checkpoint(**{f"seed_{i}": state.value for i, state in enumerate(states)})


def _truncate_history(path, step):
    """Drop logged lines past the restored step (a resumed run logs those steps again) and a last
    line cut by a kill; rewritten atomically."""
    if path.exists():
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in read_history(path) if r["step"] <= step))


def _log(writer, out_dir, step, window, trainer, progress, cfg, seq):
    import tensorflow as tf

    from bertbench.pretraining.objectives import summarize

    metrics = summarize(window)
    metrics["learning_rate"] = float(trainer.optimizer.learning_rate)
    with writer.as_default(step=step):
        for k, v in metrics.items():
            tf.summary.scalar(k, v)
    if trainer.role.is_chief:
        with open(out_dir / "metrics.jsonl", "a") as handle:  # the loss curve, for checks
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
    shown = {k: v for k, v in metrics.items() if k != "lm_perplexity"}
    progress.update(step, step_tokens(cfg.batch_size, seq), shown, force=True)
