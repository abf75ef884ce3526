"""What a pretraining folder holds between runs, and how a rerun resumes from it.

    record = check_run_config(out_dir, model_cfg, cfg)  # a rerun with another config is refused
    store_run_config(out_dir, record)                   # first start: the config is stored with the run
    policy = CheckpointPolicy(ckpt, out_dir / "ckpt", keep, model.variables)
    step = policy.restore()                             # the newest INTACT, finite checkpoint (0: none)
    policy.save(checkpoint_number=step)                 # ckpt-<step>; a full disk is a one-line error
    raise policy.non_finite(loss, step, out_dir, learning_rate)

A checkpoint is "good" once the loss of the step after it was finite (the loss of step k is computed
from the weights saved at step k-1): a non-finite loss deletes the checkpoint it condemns, so the one
named in the message and resumed by a rerun is truly finite, and retention never deletes the newest
good checkpoint while the newest one is unconfirmed. Checkpoints are listed from their `ckpt-N.index`
files (a garbage `checkpoint` state file is rewritten, not trusted); one that fails to restore
(checksum, missing shard, wrong shapes) or holds non-finite weights is moved to `damaged/` and the
previous one is tried. Stale `ckpt-N_temp/` folders of a killed write are removed at start.
"""

import contextlib
import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bertbench.config import to_dict
from bertbench.errors import BertbenchError
from bertbench.experiments.ids import without_later_defaults
from bertbench.files import write_json_atomic, write_text_atomic
from bertbench.model.precision import PRECISIONS

RUN_CONFIG = "run_config.json"
TIME_FILE = "train_time.json"  # {checkpoint step: wall seconds spent up to it}: a resumed run's total
# Settings a rerun may change after a non-finite loss, to resume the run from its last good checkpoint.
AFTER_DIVERGENCE = ("pretrain.learning_rate", "pretrain.warmup_steps", "pretrain.clip_norm")
_INDEX = re.compile(r"ckpt-(\d+)\.index")
# What a pretraining folder holds (pretraining.loop); --overwrite removes these and nothing else.
_RUN_FILES = ("summary.json", "metrics.jsonl", "initial_eval.json", TIME_FILE)
_RUN_DIRS = ("ckpt", "logs", "encoder")


def _first_line(err):
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {(text[0] if text else '')[:200]}"


# ------------------------------------------------------------------------------------------
# the run's config


def _flat(model_cfg, cfg):
    # settings added later, at the value that reproduces older runs, are left out (as from run ids): a
    # folder written before such a setting resumes under a config that holds it
    pretrain = without_later_defaults("pretrain", to_dict(cfg))
    nested = json.loads(json.dumps({"model": to_dict(model_cfg), "pretrain": pretrain}))
    return {f"{part}.{k}": v for part, fields in nested.items() for k, v in fields.items()}


def _read_run_config(path):
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return stored, dict(stored["config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BertbenchError(f"{path} is unreadable ({_first_line(err)}); use a new --out or pass "
                             f"--overwrite to start over") from None


def check_run_config(out_dir, model_cfg, cfg):
    """Refuse a rerun into `out_dir` with another config than the stored one; returns what
    `store_run_config` writes (None: nothing). After a non-finite loss the settings of
    AFTER_DIVERGENCE may change, to resume with a lower rate; the change is recorded."""
    path, asked = Path(out_dir) / RUN_CONFIG, _flat(model_cfg, cfg)
    fresh = {"config": asked, "diverged_at_step": None, "changes": []}
    if not path.exists():
        return fresh
    stored, config = _read_run_config(path)
    changed = sorted(k for k in set(config) | set(asked) if config.get(k) != asked.get(k))
    if not changed:
        return None
    if not _has_progress(Path(out_dir)):  # stopped before its first result (a bad input): nothing to mix up
        return fresh
    if stored.get("diverged_at_step") is not None and set(changed) <= set(AFTER_DIVERGENCE):
        change = {"at_step": stored["diverged_at_step"], **{k: [config.get(k), asked[k]] for k in changed}}
        return {**stored, "config": asked, "diverged_at_step": None,
                "changes": [*stored.get("changes", []), change]}
    shown = ", ".join(f"{k}: {config.get(k)!r} -> {asked.get(k)!r}" for k in changed[:3])
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    raise BertbenchError(f"{out_dir} holds a pretraining run with another config ({shown}{more}); "
                         f"use a new --out or pass --overwrite to start over")


def _has_progress(out_dir):
    """Whether the folder holds anything a run computed (which a run with another config would mix up)."""
    return (any((out_dir / name).exists() for name in _RUN_FILES)
            or any((out_dir / "ckpt").glob("ckpt-*.index")))


def store_run_config(out_dir, record):
    """Write run_config.json (the chief, once the folder exists); `record` from check_run_config."""
    if record is not None:
        write_json_atomic(Path(out_dir) / RUN_CONFIG, record)


def run_precision(out_dir, record, resolved, asked, say=True):
    """(the dtype policy the run trains in, the run_config record to store).

    A resumed run keeps the policy it began with (run_config.json's "precision"), whatever `asked`
    ("auto") resolves to on the machine it resumes on: one run is one computation, and its record says
    which. `record` is check_run_config's (None: the stored config, unchanged); a stored config from
    before the field takes `resolved` from now on. `say`: print the one line of a kept precision (the chief
    worker does; the others compute in silence)."""
    path = Path(out_dir) / RUN_CONFIG
    stored = _read_run_config(path)[0] if path.exists() and _has_progress(Path(out_dir)) else {}
    began = stored.get("precision")
    if began is not None and began not in PRECISIONS[1:]:
        raise BertbenchError(f"{path}: precision {began!r} is not one of {', '.join(PRECISIONS[1:])}; "
                             f"use a new --out or pass --overwrite to start over")
    if say and began and began != resolved:
        print(f"{out_dir}: resuming in {began}, the precision this run began with (pretrain.precision="
              f"{asked!r} would be {resolved} on this machine; a run keeps one precision)", file=sys.stderr)
    precision = began or resolved
    if record is None:
        return precision, None if began else {**stored, "precision": precision}
    return precision, {**record, "precision": precision}


def mark_diverged(out_dir, step):
    """Record in run_config.json that the run stopped on a non-finite loss at `step`."""
    path = Path(out_dir) / RUN_CONFIG
    if path.exists():
        stored, _ = _read_run_config(path)
        write_json_atomic(path, {**stored, "diverged_at_step": step})


def clear_run(out_dir):
    """Empty a pretraining folder for --overwrite: only what a pretraining run writes is removed, and
    only from a folder that looks like one (run_config.json, summary.json or ckpt/)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not any((out_dir / name).exists() for name in (RUN_CONFIG, "summary.json", "ckpt")):
        raise BertbenchError(f"--overwrite refuses to clear {out_dir}: it does not look like a bertbench "
                             f"pretraining folder (no {RUN_CONFIG}, summary.json or ckpt/); pick another --out")
    ours = [p for p in out_dir.iterdir() if p.name in _RUN_FILES or p.name in _RUN_DIRS
            or p.name.startswith("encoder_step")  # and the temporary files and folders of their writes:
            or (p.name.startswith(".") and any(n in p.name for n in (*_RUN_FILES, RUN_CONFIG, "encoder")))]
    # summary.json first (a cut clear never looks finished), run_config.json last (it still looks like a run)
    for p in sorted(ours, key=lambda p: p.name != "summary.json"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    (out_dir / RUN_CONFIG).unlink(missing_ok=True)


def read_history(path):
    """The records of metrics.jsonl; a last line cut by a kill is dropped, any other bad line is an error."""
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break  # cut mid-write: the step is logged again after the resume
            raise BertbenchError(f"{path} line {i + 1} is not JSON; remove the bad line (or use a new --out) "
                                 f"and rerun") from None
    return records


# ------------------------------------------------------------------------------------------
# checkpoints


class TimeLedger:
    """The wall time of a pretraining run over every process that trained it: the seconds spent up to
    each checkpoint are kept beside the checkpoints, and a resumed process adds its own to those of the
    checkpoint it restored (work after that checkpoint, lost to a kill, is not counted). `total()` is
    None for a run resumed from a checkpoint with no entry (written by code from before the ledger)."""

    def __init__(self, out_dir, step, started, writer=True):
        self.path, self.started, self.writer = Path(out_dir) / TIME_FILE, started, writer
        try:
            marks = {int(k): float(v) for k, v in json.loads(self.path.read_text()).items()}
        except (OSError, ValueError, TypeError, AttributeError):  # none yet, or unreadable: no base
            marks = {}
        self.marks = {k: v for k, v in marks.items() if k <= step}
        self.base = 0.0 if step == 0 else self.marks.get(step)

    def total(self):
        return None if self.base is None else self.base + time.perf_counter() - self.started

    def mark(self, step):
        """Record the seconds up to the checkpoint just saved at `step`."""
        if self.writer and self.base is not None:
            self.marks[step] = self.total()
            write_json_atomic(self.path, {str(k): v for k, v in sorted(self.marks.items())})


class CheckpointPolicy:
    """The checkpoints of one run in `directory` (the loop picks it): write, retain, restore."""

    def __init__(self, ckpt, directory, keep, variables, writer=True):
        self.ckpt, self.directory, self.keep = ckpt, Path(directory), keep
        self.variables = list(variables)  # checked finite after a restore
        self.writer = writer  # False: a worker that only restores (moves and deletes nothing)
        ckpt.save_counter  # created now (restore creates it): written with the rest, so a restore matches it
        if writer:
            self.directory.mkdir(parents=True, exist_ok=True)
            for stale in self.directory.glob("ckpt-*_temp*"):  # a write killed midway
                shutil.rmtree(stale, ignore_errors=True)

    def steps(self):
        """Steps of the checkpoints on disk, oldest first (from the index files, not the state file)."""
        if not self.directory.is_dir():
            return []
        found = (_INDEX.fullmatch(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, step):
        return self.directory / f"ckpt-{step}"

    def latest(self):
        steps = self.steps()
        return str(self.path(steps[-1])) if steps else None

    def restore(self):
        """Restore the newest intact checkpoint with finite weights; returns its step (0 without one)."""
        failures = []
        for step in reversed(self.steps()):
            problem = self._try_restore(step)
            if problem is None:
                for bad, why in failures if self.writer else ():
                    self._set_aside(bad, why, step)
                if self.writer:
                    self._write_state()
                return step
            failures.append((step, problem))
        if failures:
            step, why = failures[0]
            raise BertbenchError(f"cannot resume: checkpoint {self.path(step)} is damaged or does not fit this "
                                 f"run ({why}), and no earlier one is intact; use a new --out or pass "
                                 f"--overwrite to start over")
        return 0

    def _try_restore(self, step):
        import tensorflow as tf

        try:
            self.ckpt.restore(str(self.path(step))).assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError, OSError) as err:
            return _first_line(err)
        if not all(np.isfinite(v.numpy()).all() for v in self.variables):
            return "non-finite weights"
        return None

    def _set_aside(self, step, why, resumed):
        """Move a checkpoint that failed to restore to `damaged/` (kept for a look, out of the way)."""
        aside = self.directory / "damaged"
        aside.mkdir(exist_ok=True)
        for f in self.directory.glob(f"ckpt-{step}.*"):
            f.replace(aside / f.name)
        print(f"bertbench: {self.path(step)} cannot be restored ({why}); moved to {aside}, resuming from "
              f"{self.path(resumed)}", file=sys.stderr)

    def _delete(self, step):
        for f in self.directory.glob(f"ckpt-{step}.*"):
            f.unlink(missing_ok=True)
        for d in self.directory.glob(f"ckpt-{step}_temp*"):
            shutil.rmtree(d, ignore_errors=True)

    def _write_state(self):
        """The `checkpoint` state file of tf.train (latest_checkpoint reads it), rewritten atomically."""
        steps = self.steps()
        lines = [f'model_checkpoint_path: "ckpt-{steps[-1]}"'] if steps else []
        lines += [f'all_model_checkpoint_paths: "ckpt-{s}"' for s in steps]
        write_text_atomic(self.directory / "checkpoint", "".join(line + "\n" for line in lines))

    def save(self, checkpoint_number):
        """Write ckpt-<step> (the name of tf.train.CheckpointManager.save's argument); the older ones
        beyond `keep` go, but never the newest good one (every checkpoint before this one is good: the
        loop checked the loss of the step after it)."""
        import tensorflow as tf

        step = checkpoint_number
        try:
            self.ckpt.write(str(self.path(step)))
        except (tf.errors.OpError, OSError) as err:  # ResourceExhaustedError (a full disk) is an OpError
            with contextlib.suppress(OSError):  # a failed cleanup never hides the error that caused it
                self._delete(step)
            kept = self.latest() or "none"
            raise BertbenchError(f"could not write checkpoint {self.path(step)} ({_first_line(err)}); the "
                                 f"earlier checkpoints are intact (latest: {kept}): free disk space and rerun "
                                 f"the same command to resume") from None
        older = [s for s in self.steps() if s < step]
        for s in older[:max(len(older) - max(self.keep - 1, 1), 0)]:
            self._delete(s)
        self._write_state()

    def non_finite(self, loss, step, out_dir, learning_rate):
        """After a non-finite loss at `step`: delete the checkpoints it condemns (step-1 and later),
        record the stop in run_config.json; returns the one-line error to raise."""
        if self.writer:
            for s in self.steps():
                if s >= step - 1:
                    self._delete(s)
            self._write_state()
            mark_diverged(out_dir, step)
        kept = self.latest() or "none (no checkpoint written yet)"
        with contextlib.suppress(TypeError, ValueError):
            learning_rate = f"{float(learning_rate) / 10:g}"
        return BertbenchError(f"non-finite loss ({loss}) at step {step}; stopped. Last good checkpoint: {kept}. "
                              f"Rerun the same command with a lower rate (e.g. --set pretrain.learning_rate="
                              f"{learning_rate}) to resume from it, or check the data")
