"""What a fine-tuning run shows while it runs and leaves for TensorBoard.

- `TrainMonitor`, a Keras callback for `model.fit`: the step bar (bertbench.progress) and the train
  loss / learning rate in TensorBoard every `every` steps, under the run's `logs/` folder, like
  pretraining's. Keras reports the RUNNING MEAN of the loss since the first step; the logged
  `train/loss` is the mean of the last `every` steps, recovered exactly from two running means
  (mean_t * t - mean_s * s) / (t - s) (every batch holds batch_size examples: the training set is
  repeated before batching).
- `PredictMonitor`: the bar of a whole-split prediction (batches).
- `write_scalars(logdir, step, scalars)`: e.g. the dev metrics at the last step (`dev/<metric>`).
- `write_hparams(logdir, hparams, metrics)`: the HParams dashboard's data of one run (its settings
  -> its metrics), for the runner to call per run; `tensorboard --logdir DIR` then compares the runs
  found under DIR in the HPARAMS tab.
Loads TensorFlow at import: import it inside functions elsewhere.
"""

import math

import keras
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from bertbench.progress import Progress

LOG_POINTS = 200  # about this many train-loss points per run in TensorBoard, whatever its length


def log_every(num_steps):
    """Steps between two train-loss points: every step up to LOG_POINTS steps, then sparser."""
    return max(1, math.ceil(num_steps / LOG_POINTS))


class TrainMonitor(keras.callbacks.Callback):
    """Step bar + TensorBoard train/loss and train/learning_rate every `every` steps."""

    def __init__(self, num_steps, logdir=None, label="finetune", verbose=True, every=None):
        super().__init__()
        self.num_steps, self.every = num_steps, every or log_every(num_steps)
        self.writer = tf.summary.create_file_writer(str(logdir)) if logdir else None
        self.bar = Progress(num_steps, label=label, unit="step", enabled=verbose)
        self.last = (0, 0.0)  # (step, running mean of the loss at that step)

    def on_train_batch_end(self, batch, logs=None):
        step, mean = batch + 1, float((logs or {}).get("loss", math.nan))
        self.bar.update(1, postfix={"loss": f"{mean:.4f}"})
        if self.writer is None or not (step % self.every == 0 or step == self.num_steps):
            return
        previous_step, previous_mean = self.last
        window = (mean * step - previous_mean * previous_step) / (step - previous_step)
        self.last = (step, mean)
        with self.writer.as_default(step=step):
            tf.summary.scalar("train/loss", window)
            tf.summary.scalar("train/learning_rate", float(self.model.optimizer.learning_rate))

    def on_train_end(self, logs=None):
        self.bar.close()
        if self.writer is not None:
            self.writer.flush()


class PredictMonitor(keras.callbacks.Callback):
    """The bar of a `model.predict` over `num_batches` batches."""

    def __init__(self, num_batches, label="predict", verbose=True):
        super().__init__()
        self.bar = Progress(num_batches, label=label, unit="batch", enabled=verbose)

    def on_predict_batch_end(self, batch, logs=None):
        self.bar.update(1)

    def on_predict_end(self, logs=None):
        self.bar.close()


def writer_for(logdir_or_writer):
    """A summary writer: the one given, or a new one on a folder."""
    if isinstance(logdir_or_writer, (str, bytes)) or hasattr(logdir_or_writer, "__fspath__"):
        return tf.summary.create_file_writer(str(logdir_or_writer))
    return logdir_or_writer


def write_scalars(logdir, step, scalars):
    """Scalar summaries {tag: number} at `step` (non-numbers are skipped); `logdir` is a folder or
    a writer (one writer per folder and process: each writer starts a new event file)."""
    writer = writer_for(logdir)
    with writer.as_default(step=step):
        for tag, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                tf.summary.scalar(tag, float(value))
    writer.flush()


def hparam_value(value):
    """A value the HParams plugin takes (bool, int, float, str); anything else as its string."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def write_hparams(logdir, hparams, metrics, step=0):
    """One run for the HParams dashboard: `hparams` {name: value} -> `metrics` {name: number}.

    Writes to `logdir` (a folder, or a writer) the run's hparams (session start info) and each
    metric as a scalar of that name at `step`; `tensorboard --logdir ROOT` lists in its HPARAMS tab
    every run found under ROOT, with these hparams as columns and the metrics beside them.
    """
    writer = writer_for(logdir)
    with writer.as_default():
        hp.hparams({name: hparam_value(value) for name, value in hparams.items()})
    write_scalars(writer, step, metrics)
