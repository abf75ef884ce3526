"""Fine-tuning: inputs (first-piece tagging), init from checkpoints, whole-dev scoring in official
formats read back by `bertbench score`, determinism, grid selection, CLI errors, and the evidence run
(a tiny encoder trained on real SST-2 beats the majority class)."""

import collections
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bertbench.config import FinetuneConfig, ModelConfig
from bertbench.errors import BertbenchError
from bertbench.evaluation import per_example
from bertbench.finetuning import grid, loop, tagging
from bertbench.finetuning.init import prepare_init
from bertbench.finetuning.kinds import kind_of
from bertbench.finetuning.span import diff_threshold, rank_probabilities
from bertbench.finetuning.tagging import encode_tagging, tagging_row
from bertbench.model.encoder import BertEncoder
from bertbench.resources import SAMPLE_DIR
from bertbench.tasks import TaggingExample, get_task

TINY = ModelConfig(num_layers=1, hidden_dim=16, num_heads=2, max_sequence_length=128)  # vocab: the tokenizer's


# ---- helpers: small copies of the bundled real data, and a vocabulary learned from train text ------
def make_vocab(path, texts, lowercase=True, size=1500):
    """[PAD]..[MASK], single characters (+ ## forms) and the most frequent words of `texts`."""
    words = collections.Counter()
    for text in texts:
        words.update(re.findall(r"\w+|[^\w\s]", text.lower() if lowercase else text))
    chars = sorted({c for w in words for c in w})
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    tokens += [w for w, _ in words.most_common(size)]
    Path(path).write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    return str(path)


def head_lines(src, dst, n, header):
    lines = Path(src).read_text(encoding="utf-8").splitlines(keepends=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(lines[:n + (1 if header else 0)]), encoding="utf-8")


def conll_head(src, dst, n_sentences):
    out, count = [], 0
    for line in Path(src).read_text(encoding="utf-8").splitlines(keepends=True):
        out.append(line)
        if not line.strip() and out[-2:-1] and out[-2].strip():
            count += 1
            if count == n_sentences:
                break
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(out), encoding="utf-8")


def squad_head(src, dst, n_questions):
    data = json.loads(Path(src).read_text(encoding="utf-8"))
    paragraph = dict(data["data"][0]["paragraphs"][0])
    paragraph["qas"] = paragraph["qas"][:n_questions]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps({"version": "1.1", "data": [{"title": data["data"][0]["title"],
                                                           "paragraphs": [paragraph]}]}), encoding="utf-8")


SWAG_HEADER = ",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"


def write_swag(path, n, seed):
    """A small file in the swagaf CSV format (commas inside a quoted field on purpose)."""
    rng = np.random.default_rng(seed)
    actions = ["plays the guitar", "swims in the pool", "reads a book", "rides a bike", "cooks dinner"]
    rows = [SWAG_HEADER]
    for i in range(n):
        label = int(rng.integers(4))
        endings = [actions[int(k)] for k in rng.permutation(5)[:4]]
        rows.append(f'{i},vid{i},{100 + i},"The man sits, then he","The man sits, then he",'
                    f'"He",gold,{",".join(e + "." for e in endings)},{label}\n')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(rows), encoding="utf-8")


def small_data(root, task, n_train=48, n_dev=24):
    """A data root holding a few real examples of `task` (from the bundled sample) in its layout."""
    glue = {"cola": ("CoLA", False), "sst2": ("SST-2", True), "mrpc": ("MRPC", True), "stsb": ("STS-B", True)}
    if task in glue:
        folder, header = glue[task]
        for split, n in (("train", n_train), ("dev", n_dev)):
            head_lines(SAMPLE_DIR / "glue" / folder / f"{split}.tsv", root / "glue" / folder / f"{split}.tsv",
                       n, header)
    elif task == "squad1":
        squad_head(SAMPLE_DIR / "squad" / "train-v1.1.json", root / "squad" / "train-v1.1.json", n_train)
        squad_head(SAMPLE_DIR / "squad" / "dev-v1.1.json", root / "squad" / "dev-v1.1.json", n_dev)
    elif task == "squad2":
        squad_head(SAMPLE_DIR / "squad" / "train-v2.0.json", root / "squad" / "train-v2.0.json", n_train)
        squad_head(SAMPLE_DIR / "squad" / "dev-v2.0.json", root / "squad" / "dev-v2.0.json", n_dev)
    elif task == "conll2003":
        conll_head(SAMPLE_DIR / "conll2003" / "eng.train", root / "conll2003" / "eng.train", n_train)
        conll_head(SAMPLE_DIR / "conll2003" / "eng.testa", root / "conll2003" / "eng.testa", n_dev)
    elif task == "swag":
        write_swag(root / "swag" / "train.csv", n_train, 0)
        write_swag(root / "swag" / "val.csv", n_dev, 1)
    return root


def texts_of(task, data_dir):
    spec = get_task(task)
    out = []
    for ex in spec.load("train", data_dir) + spec.load("dev", data_dir):
        out += [getattr(ex, name) or "" for name in ("text_a", "text_b", "question", "context") if hasattr(ex, name)]
        out += list(getattr(ex, "words", ())) + list(getattr(ex, "endings", ()))
    return out


GOLD = {"cola": "glue/CoLA/dev.tsv", "stsb": "glue/STS-B/dev.tsv", "mrpc": "glue/MRPC/dev.tsv",
        "squad1": "squad/dev-v1.1.json", "squad2": "squad/dev-v2.0.json", "conll2003": "conll2003/eng.testa",
        "swag": "swag/val.csv"}


# ---- first-piece tagging ---------------------------------------------------------------------
class FakeTokenizer:
    pad_id, unk_id, cls_id, sep_id = 0, 1, 2, 3
    pieces = {"John": [10], "Smithson": [11, 12], "lives": [13], "in": [14], "Berlin": [15, 16, 17], "x": []}

    def tokenize_words(self, words):
        return [self.pieces[w] for w in words]


def test_tagging_labels_only_the_first_piece_of_each_word():
    tokens, labels, kept = tagging_row(FakeTokenizer(), [[10], [11, 12], [13]], [1, 2, 0], max_seq_length=8)
    assert tokens == [2, 10, 11, 12, 13, 3]
    assert labels == [-1, 1, 2, -1, 0, -1]
    assert kept == 3


def test_tagging_truncation_and_document_context():
    tok = FakeTokenizer()
    tokens, labels, kept = tagging_row(tok, [[10], [11, 12], [13]], [1, 2, 0], max_seq_length=5)
    assert (tokens, labels, kept) == ([2, 10, 11, 12, 3], [-1, 1, 2, -1, -1], 2)  # "lives" cut
    tokens, labels, _ = tagging_row(tok, [[13]], [0], max_seq_length=7, left=[40, 41, 42], right=[50, 51])
    assert tokens == [2, 41, 42, 13, 50, 51, 3]  # 4 free slots: 2 right, 2 nearest left pieces
    assert labels == [-1, -1, -1, 0, -1, -1, -1]  # context pieces carry no labels


def test_encode_tagging_and_predictions_map_back_to_words():
    spec = get_task("conll2003")
    examples = [TaggingExample("a", ("John", "Smithson", "lives"), ("B-PER", "I-PER", "O"), 0),
                TaggingExample("b", ("in", "Berlin", "x"), ("O", "B-LOC", "O"), 0)]
    enc = encode_tagging(spec, examples, FakeTokenizer(), max_seq_length=8, document_context=True)
    assert enc.inputs["token_ids"][0].tolist() == [2, 10, 11, 12, 13, 14, 15, 3]  # + right context
    assert enc.targets[0].tolist() == [-1, 1, 2, -1, 0, -1, -1, -1]
    assert enc.targets[1].tolist()[:7] == [-1, -1, 0, 5, -1, -1, 0]  # left context 12, 13; "x" -> [UNK]
    logits = np.zeros((2, 8, len(spec.labels)))
    logits[0, 1, spec.labels.index("B-PER")] = logits[0, 2, spec.labels.index("I-PER")] = 1
    logits[0, 3, spec.labels.index("B-LOC")] = 5  # a non-first piece: must be ignored
    logits[1, 3, spec.labels.index("B-LOC")] = 1
    assert tagging.predict(spec, examples, enc, logits, None) == [["B-PER", "I-PER", "O"], ["O", "B-LOC", "O"]]
    cut = encode_tagging(spec, examples[:1], FakeTokenizer(), max_seq_length=4)
    assert cut.meta["kept_words"].tolist() == [1]
    assert tagging.predict(spec, examples[:1], cut, np.zeros((1, 4, 9)), None) == [["O", "O", "O"]]


def test_squad2_threshold_is_chosen_for_best_f1_on_score_diffs():
    from bertbench.evaluation.metrics import squad_v2

    diffs = {"a": -2.0, "b": 0.5, "c": 0.5, "d": 3.0}  # null score - best non-null score
    probs = rank_probabilities(diffs)
    assert probs == {"a": 0.2, "b": 0.6, "c": 0.6, "d": 0.8}
    golds = {"a": ["Paris"], "b": [], "c": [], "d": ["Rome"]}
    answers = {"a": "Paris", "b": "x", "c": "y", "d": "Milan"}  # best non-null answers
    sweep = squad_v2(golds, answers, na_probs=probs)
    assert sweep["best_f1"] == 75.0  # answer only "a": a, b, c right, d wrong
    assert diff_threshold(diffs, probs, sweep["best_f1_thresh"]) == -2.0
    assert diff_threshold(diffs, probs, 0.0) == float("-inf")  # "answer nothing"
    # All negative diffs and nothing worth answering: the official 0.0 start would answer everything.
    diffs = {"b": -1.0, "c": -0.5}
    probs = rank_probabilities(diffs)
    sweep = squad_v2({"b": [], "c": []}, {"b": "x", "c": "y"}, na_probs=probs)
    assert sweep["best_f1"] == 100.0 and diff_threshold(diffs, probs, sweep["best_f1_thresh"]) == float("-inf")


# ---- initialisation from checkpoints -----------------------------------------------------------
def save_tiny_checkpoint(out, vocab_path, seed=3, num_layers=1):
    import keras

    from bertbench.model.checkpoint import save_encoder
    from bertbench.model.encoder import build_encoder

    n = sum(1 for _ in open(vocab_path, encoding="utf-8"))
    cfg = ModelConfig(vocabulary_size=n, num_layers=num_layers, hidden_dim=16, num_heads=2, max_sequence_length=64)
    keras.utils.set_random_seed(seed)
    encoder = build_encoder(cfg)
    save_encoder(encoder, cfg, out, vocab_path, lowercase=True)
    return encoder


def test_init_loads_every_encoder_weight(tmp_path):
    from bertbench.model.strategy import get_strategy

    vocab = make_vocab(tmp_path / "vocab.txt", ["a small test of words"])
    saved = save_tiny_checkpoint(tmp_path / "ckpt", vocab)
    init = prepare_init(str(tmp_path / "ckpt"))
    assert init.record["num_weights"] == len(saved.weights)
    assert init.record["source"] == "bertbench" and init.tokenizer.vocab_path == str(tmp_path / "ckpt" / "vocab.txt")
    spec = get_task("mrpc")
    model = loop.build_model(spec, kind_of(spec), init, FinetuneConfig(task="mrpc"), 10, get_strategy("default"))
    encoder = next(layer for layer in model.layers if isinstance(layer, BertEncoder))
    assert len(encoder.weights) == len(saved.weights)
    for a, b in zip(saved.get_weights(), encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert encoder.dropout == 0.1  # the fine-tuning dropout, whatever the checkpoint had


def test_mismatched_checkpoint_fails_with_one_line(tmp_path):
    vocab = make_vocab(tmp_path / "vocab.txt", ["a small test of words"])
    save_tiny_checkpoint(tmp_path / "ckpt", vocab)
    meta_path = tmp_path / "ckpt" / "bertbench_encoder.json"
    meta = json.loads(meta_path.read_text())
    meta["model"]["num_layers"] = 2  # the weights hold one layer
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BertbenchError) as err:
        prepare_init(str(tmp_path / "ckpt"))
    assert "\n" not in str(err.value) and "ckpt" in str(err.value)
    with pytest.raises(BertbenchError, match="not found"):
        prepare_init(str(tmp_path / "nowhere"))


def test_checkpoint_with_weights_the_encoder_lacks_fails_with_one_line(tmp_path):
    """Keras' load_weights ignores weights it has no place for: the explicit check catches them."""
    from bertbench.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE
    from bertbench.model.strategy import get_strategy

    vocab = make_vocab(tmp_path / "vocab.txt", ["a small test of words"])
    save_tiny_checkpoint(tmp_path / "ckpt", vocab)  # a 1-layer encoder's config...
    save_tiny_checkpoint(tmp_path / "two", vocab, num_layers=2)
    shutil.copyfile(tmp_path / "two" / WEIGHTS_FILE, tmp_path / "ckpt" / WEIGHTS_FILE)  # ...2 layers' weights
    meta_path = tmp_path / "ckpt" / CONFIG_FILE  # as a checkpoint from before weights_sha256 (else the
    meta = json.loads(meta_path.read_text())     # checksum refuses the swapped file first)
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "weights_sha256"}))
    init = prepare_init(str(tmp_path / "ckpt"))
    spec = get_task("mrpc")
    with pytest.raises(BertbenchError) as err:
        loop.build_model(spec, kind_of(spec), init, FinetuneConfig(task="mrpc"), 10, get_strategy("default"))
    assert "\n" not in str(err.value) and "holds 39 weight arrays" in str(err.value)


def test_converted_checkpoint_is_copied_by_variable_path(tmp_path):
    """A Hugging Face / google-research encoder (converted on the host) is copied by `v.path` into
    the encoder built in the scope; different variable sets are a one-line error."""
    from bertbench.finetuning.init import Init, copy_by_path, restore_encoder
    from bertbench.model.encoder import build_encoder

    vocab = make_vocab(tmp_path / "vocab.txt", ["a small test of words"])
    host = save_tiny_checkpoint(tmp_path / "ckpt", vocab, seed=7)
    setup = prepare_init(str(tmp_path / "ckpt"))
    converted = Init(setup.model_cfg, setup.tokenizer, setup.record, tmp_path / "ckpt", host=host)
    encoder = restore_encoder(converted, dropout=0.1, seed=0)
    for a, b in zip(host.weights, encoder.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = build_encoder(dataclasses.replace(setup.model_cfg, num_layers=2))
    with pytest.raises(BertbenchError, match="do not match the encoder's by name"):
        copy_by_path(host, other, tmp_path / "ckpt")


def test_random_init_is_seeded_and_shared_with_the_runner(tmp_path):
    """finetune's random init and the runner's no-pretraining baseline are the same function."""
    from bertbench.backend import Backend
    from bertbench.config import PretrainConfig
    from bertbench.finetuning.init import restore_encoder
    from bertbench.model.checkpoint import load_encoder

    vocab = make_vocab(tmp_path / "vocab.txt", ["a small test of words"])
    model_cfg = ModelConfig(num_layers=1, hidden_dim=16, num_heads=2, max_sequence_length=32)
    Backend().random_init(model_cfg, PretrainConfig(vocab=vocab, seed=4), tmp_path / "baseline")
    saved = load_encoder(tmp_path / "baseline" / "encoder").encoder
    setup = prepare_init(None, model_cfg, vocab)
    assert setup.model_cfg.vocabulary_size == saved.vocabulary_size
    again = restore_encoder(setup, dropout=0.1, seed=4)
    for a, b in zip(saved.weights, again.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other_seed = restore_encoder(setup, dropout=0.1, seed=5)
    assert not np.array_equal(np.asarray(other_seed.weights[0]), np.asarray(again.weights[0]))


def test_config_source_tfds_reads_tfds(tmp_path, monkeypatch):
    """Bug: FinetuneConfig.source was validated and part of run ids but never read."""
    from bertbench.tasks import tfds_source

    calls = []

    def fake_tfds(name, split, data_dir=None):
        calls.append((name, split, data_dir))
        raise BertbenchError("fake TFDS: stop here")

    monkeypatch.setattr(tfds_source, "load_records", fake_tfds)
    vocab = make_vocab(tmp_path / "vocab.txt", ["a few words"])
    cfg = FinetuneConfig(task="mrpc", source="tfds", epochs=0.1, max_train_examples=8, max_eval_examples=8,
                         max_seq_length=32)
    with pytest.raises(BertbenchError, match="fake TFDS"):
        loop.finetune(cfg, None, tmp_path / "out", data_dir=str(tmp_path / "tfds"), model_cfg=TINY, vocab=vocab)
    assert calls == [("glue/mrpc", "train", str(tmp_path / "tfds"))]


# ---- end to end, official prediction files ----------------------------------------------------------
def run_tiny(tmp_path, task, seed=0, out="out", **cfg_fields):
    root = small_data(tmp_path / "data", task)
    spec = get_task(task)
    vocab = make_vocab(tmp_path / "vocab.txt", texts_of(task, root), lowercase=spec.lowercase)
    fields = dict(task=task, learning_rate=1e-3, batch_size=16, epochs=1.0, max_seq_length=64,
                  lowercase=spec.lowercase, seed=seed)
    fields.update(cfg_fields)
    return loop.finetune(FinetuneConfig(**fields), None, tmp_path / out, data_dir=str(root), model_cfg=TINY,
                       vocab=vocab), root


@pytest.mark.slow
@pytest.mark.parametrize("task", ["cola", "stsb", "mrpc", "squad1", "squad2", "conll2003", "swag"])
def test_end_to_end_writes_official_predictions(tmp_path, task):
    from bertbench.evaluation.score import score_files

    extra = {"max_seq_length": 128, "doc_stride": 64} if task.startswith("squad") else {}
    record, root = run_tiny(tmp_path, task, **extra)
    path = Path(record["predictions_path"])
    assert path.is_file() and path.parent == tmp_path / "out"
    assert (tmp_path / "out" / "record.json").is_file()
    rescored = score_files(task, str(root / GOLD[task]), str(path))
    assert rescored.pop("missing", 0) == 0  # SQuAD: every question answered
    for name, value in rescored.items():
        assert record["metrics"][name] == pytest.approx(value), name
    if task == "squad2":  # threshold chosen on dev: the file's F1 is the best F1 over thresholds
        null_odds = tmp_path / "out" / "null_odds.json"
        swept = score_files(task, str(root / GOLD[task]), str(path), na_prob=str(null_odds))
        assert record["metrics"]["f1"] == pytest.approx(record["metrics"]["best_f1"])
        assert swept["best_f1"] == pytest.approx(record["metrics"]["best_f1"])
        assert {"HasAns_f1", "NoAns_f1"} <= set(record["metrics"])
    spec = get_task(task)
    assert record["main_metric"] == spec.main_metric and record["steps"] >= 1
    assert record["num_eval_examples"] == len(spec.load("dev", str(root)))
    # the per-example rows recompute every metric they can, exactly (dev-set bootstrap of the tables)
    form, rows = record["example_rows"]["form"], np.asarray(record["example_rows"]["rows"])
    recomputed = [m for m in spec.metrics if per_example.has_rows(form, m)]
    assert spec.main_metric in recomputed
    for name in recomputed:
        assert per_example.value(form, name, rows) == pytest.approx(record["metrics"][name], abs=1e-6), name
    assert isinstance(record["single_prediction"], bool)
    assert spec.main_metric in record["majority_baseline"]


@pytest.mark.slow
def test_same_seed_same_result_and_idempotent(tmp_path, monkeypatch):
    first, _ = run_tiny(tmp_path, "mrpc", seed=5, out="a")
    second, _ = run_tiny(tmp_path, "mrpc", seed=5, out="b")
    assert first["metrics"] == second["metrics"] and first["final_train_loss"] == second["final_train_loss"]
    assert Path(first["predictions_path"]).read_text() == Path(second["predictions_path"]).read_text()
    monkeypatch.setattr(loop, "build_model", lambda *a, **k: pytest.fail("rebuilt a finished run"))
    again, _ = run_tiny(tmp_path, "mrpc", seed=5, out="a")
    assert again == json.loads((tmp_path / "a" / "record.json").read_text())


@pytest.mark.slow
def test_evidence_tiny_encoder_beats_majority_on_real_sst2(sst2_float32_run):
    """Real SST-2 (bundled sample: 2,000 train / 400 dev sentences), random-init tiny encoder (L2 H32,
    4 epochs; the run is conftest's sst2_float32_run, shared with test_finetune_precision)."""
    spec = get_task("sst2")
    train, dev = spec.load("train"), spec.load("dev")
    majority = 100.0 * max(collections.Counter(ex.label for ex in dev).values()) / len(dev)
    _, _, record = sst2_float32_run
    assert record["num_train_examples"] == len(train) == 2000 and record["init"]["source"] == "random"
    assert record["num_eval_examples"] == len(dev) == 400
    assert record["metrics"]["accuracy"] >= majority + 8.0, (record["metrics"], majority)
    train_majority = collections.Counter(ex.label for ex in train).most_common(1)[0][0]
    expected = 100.0 * sum(ex.label == train_majority for ex in dev) / len(dev)  # by hand
    assert record["majority_baseline"]["accuracy"] == pytest.approx(expected)
    assert record["single_prediction"] is False


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    from bertbench.model.strategy import split_cpu
    split_cpu(2)
    import numpy as np
    from bertbench.config import FinetuneConfig
    from bertbench.finetuning.init import prepare_init, restore_encoder
    from bertbench.finetuning.loop import finetune
    from bertbench.model.checkpoint import load_encoder
    from bertbench.model.strategy import get_strategy
    ckpt, data, out = sys.argv[1:]
    cfg = FinetuneConfig(task="mrpc", learning_rate=1e-3, batch_size=8, epochs=1.0, max_seq_length=32)
    records = {s: finetune(cfg, ckpt, f"{out}/{s}", data_dir=data, strategy=s) for s in ("default", "mirrored")}
    host = load_encoder(ckpt).encoder  # as a converted (Hugging Face) checkpoint would come
    setup = prepare_init(ckpt)
    setup.host = host
    with get_strategy("mirrored").scope():
        copied = restore_encoder(setup, 0.1, 0)
    same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(host.weights, copied.weights, strict=True))
    print(json.dumps({"records": {k: [r["strategy"], r["num_replicas"], r["final_train_loss"]]
                                  for k, r in records.items()}, "copied": same}))
""")


@pytest.mark.slow
def test_mirrored_fine_tuning_restores_the_encoder_in_its_scope(tmp_path):
    """Two logical CPUs: the checkpoint is loaded (and a converted one copied) into mirrored variables."""
    root = small_data(tmp_path / "data", "mrpc", n_train=32, n_dev=16)
    save_tiny_checkpoint(tmp_path / "ckpt", make_vocab(tmp_path / "vocab.txt", texts_of("mrpc", root)))
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path / "ckpt"), str(root),
                           str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["copied"] is True
    (one, one_n, one_loss), (two, two_n, two_loss) = result["records"]["default"], result["records"]["mirrored"]
    assert (one_n, two, two_n) == (1, "MirroredStrategy", 2)
    assert two_loss == pytest.approx(one_loss, rel=1e-2)


# ---- grid selection ---------------------------------------------------------------------------
def test_grid_picks_best_mean_over_seeds(tmp_path, monkeypatch):
    table = {(1e-3, 0): 60.0, (1e-3, 1): 70.0, (2e-3, 0): 64.0, (2e-3, 1): 64.0}
    calls = []

    def fake(cfg, init, out_dir, **kwargs):
        calls.append((cfg.learning_rate, cfg.seed, Path(out_dir).relative_to(tmp_path).as_posix()))
        value = table[(cfg.learning_rate, cfg.seed)]
        return {"main_value": value, "metrics": {"accuracy": value}}

    monkeypatch.setattr(loop, "finetune", fake)
    summary = grid.finetune_grid(FinetuneConfig(task="sst2"), None, tmp_path, grid={"learning_rate": [1e-3, 2e-3]},
                               seeds=[0, 1])
    assert len(calls) == 4 and calls[0] == (1e-3, 0, "learning_rate0.001/seed0")
    best = summary["best"]
    assert best["point"] == {"learning_rate": 1e-3} and best["mean"] == 65.0
    assert best["std"] == pytest.approx(np.std([60.0, 70.0], ddof=1))
    assert summary["points"][1]["std"] == 0.0
    assert json.loads((tmp_path / "grid.json").read_text())["best"]["point"] == {"learning_rate": 1e-3}
    with pytest.raises(BertbenchError, match="grid key"):
        grid.finetune_grid(FinetuneConfig(task="sst2"), None, tmp_path, grid={"lr": [1e-3]})


# ---- CLI ------------------------------------------------------------------------------------------
def test_cli_errors_are_one_line(tmp_path, capsys):
    from bertbench.cli import main

    assert main(["finetune", "--task", "mrcp", "--random-init"]) == 2
    assert main(["finetune", "--task", "mrpc", "--init", str(tmp_path / "missing")]) == 2
    assert main(["finetune", "--task", "mrpc", "--random-init", "--data-dir", str(tmp_path / "no")]) == 2
    assert main(["finetune", "--task", "mrpc", "--random-init", "--set", "finetune.learning_rat=1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("bertbench finetune: error:") for line in lines)
    assert "did you mean 'mrpc'" in lines[0] and "missing" in lines[1] and "no" in lines[2]
    assert "learning_rate" in lines[3]


@pytest.mark.slow
def test_cli_runs_and_prints_metrics(tmp_path, capsys):
    from bertbench.cli import main

    root = small_data(tmp_path / "data", "mrpc", n_train=32, n_dev=16)
    vocab = make_vocab(tmp_path / "vocab.txt", texts_of("mrpc", root))
    args = ["finetune", "--task", "mrpc", "--random-init", "--model", "tiny", "--vocab", vocab,
            "--data-dir", str(root), "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "16",
            "--max-seq-length", "32", "--set", "finetune.learning_rate=1e-3", "--set", "model.num_layers=1",
            "--set", "model.hidden_dim=16"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert printed["f1"] == record["metrics"]["f1"] and record["config"]["learning_rate"] == 1e-3
    assert record["init"]["source"] == "random" and record["init"]["model"]["num_layers"] == 1
    assert record["init"]["model"]["num_heads"] == 2  # the tiny preset's, kept under the overrides


# ---- progress and TensorBoard --------------------------------------------------------------------
def scalar_events(logdir):
    """{tag: [(step, value)]} of the scalar summaries in a TensorBoard folder, in file order."""
    import tensorflow as tf

    out = {}
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    out.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return out


def test_train_loss_is_the_mean_of_the_last_steps(tmp_path):
    """Keras reports running means; the logged points are the means of each window, by hand."""
    from bertbench.finetuning.logs import TrainMonitor

    class FakeModel:
        class optimizer:  # noqa: N801
            learning_rate = 0.5

    monitor = TrainMonitor(6, tmp_path / "logs", verbose=False, every=2)
    monitor.set_model(FakeModel())
    losses = [4.0, 2.0, 6.0, 2.0, 1.0, 5.0]
    for step in range(6):
        monitor.on_train_batch_end(step, {"loss": float(np.mean(losses[:step + 1]))})
    monitor.on_train_end()
    events = scalar_events(tmp_path / "logs")
    assert events["train/loss"] == [(2, pytest.approx(3.0)), (4, pytest.approx(4.0)), (6, pytest.approx(3.0))]
    assert events["train/learning_rate"] == [(2, 0.5), (4, 0.5), (6, 0.5)]


def test_write_hparams_for_the_hparams_dashboard(tmp_path):
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    from bertbench.finetuning.logs import write_hparams

    hparams = {"variant": "no_nsp", "task": "sst2", "seed": 1, "learning_rate": 2e-5, "frozen": False,
               "overrides": {"pretrain.objective": "mlm"}}
    write_hparams(tmp_path / "run", hparams, {"accuracy": 91.25, "f1": 88.0, "note": "not a number"})
    assert scalar_events(tmp_path / "run") == {"accuracy": [(0, 91.25)], "f1": [(0, 88.0)]}
    found = {}
    for path in (tmp_path / "run").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    found = dict(data.session_start_info.hparams)
    assert found["variant"].string_value == "no_nsp" and found["seed"].number_value == 1
    assert found["learning_rate"].number_value == pytest.approx(2e-5) and found["frozen"].bool_value is False
    assert found["overrides"].string_value == "{'pretrain.objective': 'mlm'}"


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.slow
def test_cli_shows_progress_and_logs_to_tensorboard(tmp_path, monkeypatch, capsys):
    from bertbench.cli import main

    root = small_data(tmp_path / "data", "mrpc", n_train=40, n_dev=16)
    vocab = make_vocab(tmp_path / "vocab.txt", texts_of("mrpc", root))
    args = ["finetune", "--task", "mrpc", "--random-init", "--vocab", vocab, "--data-dir", str(root),
            "--epochs", "2", "--batch-size", "8", "--max-seq-length", "32", "--set", "model.num_layers=1",
            "--set", "model.hidden_dim=16"]
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", "200")  # the bar is cut at the terminal's width (pytest-xdist workers: 80)
    assert main(args + ["--out", str(tmp_path / "run")]) == 0
    shown = terminal.getvalue().split("\r")
    assert any(line.startswith("finetune mrpc  10/10 100% [") and re.search(r" (step/s|s/step) ", line)
               and "ETA 0:00" in line and "loss=" in line for line in shown), shown[-3:]
    assert any(line.startswith("predict mrpc dev  1/1 100%") for line in shown)
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    events = scalar_events(tmp_path / "run" / "logs")
    assert [step for step, _ in events["train/loss"]] == list(range(1, 11))  # 10 steps: every step
    assert np.mean([v for _, v in events["train/loss"]]) == pytest.approx(record["final_train_loss"], rel=1e-4)
    assert events["dev/f1"] == [(10, pytest.approx(record["metrics"]["f1"]))]
    terminal.seek(0)
    terminal.truncate()
    assert main(args + ["--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert "\r" not in terminal.getvalue() and "finetune mrpc" not in terminal.getvalue()  # no bar
    capsys.readouterr()
