"""`bench pretrain`: runs end to end on a minuscule config and writes every figure; bad arguments
give one-line errors. No timing is asserted (timings never go in tests): only that the figures are
present, positive and consistent with one another (sequences/s = batch / step time, ...)."""

import json
import math

import pytest

from bertbench import cli
from bertbench.bench.machine import matmul_shapes, time_matmul
from bertbench.bench.pretrain import PretrainBench, peer_encoder
from bertbench.config import model_preset
from bertbench.errors import BertbenchError

WORDS = ("the cat sat on a mat while dogs ran in parks and birds sang over green hills near old towns "
         "people read books about rivers stars ships kings music war science art history").split()


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """A 12-document corpus (plain text, blank line between documents) and a vocabulary of its words."""
    monkeypatch.setenv("BERTBENCH_CACHE", str(tmp_path / "cache"))
    docs = []
    for d in range(12):
        sentences = [" ".join(WORDS[(d * 7 + s * 3 + w) % len(WORDS)] for w in range(6 + s % 4)) + "."
                     for s in range(6)]
        docs.append("\n".join(sentences))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(docs) + "\n")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + sorted(set(WORDS))) + "\n")
    return corpus, vocab


MINUSCULE = ["--model", "tiny", "--set", "model.num_layers=1", "--set", "model.hidden_dim=16",
             "--set", "model.num_heads=2", "--set", "model.intermediate_dim=32", "--seq-length", "16",
             "--batch-size", "2", "--steps", "2", "--warmup", "1", "--rounds", "2", "--matmul-size", "32",
             "--matmul-repeats", "1", "--pipeline-batches", "2"]


@pytest.mark.slow  # builds and traces two tiny models
@pytest.mark.parametrize("extra", [[], ["--vocab-size", "300", "--precision", "mixed_bfloat16"]])
def test_bench_pretrain_end_to_end(tiny_data, tmp_path, capsys, extra):
    corpus, vocab = tiny_data
    out = tmp_path / "bench.json"
    argv = ["bench", "pretrain", *MINUSCULE, "--corpus", str(corpus), "--vocab", str(vocab), "--json", str(out), *extra]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "ours/peer throughput ratio" in printed and "input pipeline" in printed
    result = json.loads(out.read_text())
    assert {"options", "machine", "model", "matmul", "models", "ratio_ours_over_peer", "input_pipeline",
            "round_ratios_ours_over_peer", "ratio_of_medians_ours_over_peer", "ids"} <= set(result)
    assert {"cpu_model", "cpu_cores", "tensorflow", "avx512_bf16"} <= set(result["machine"])
    mixed = "--precision" in extra
    assert set(result["matmul"]) == ({"float32", "bfloat16"} if mixed else {"float32"})
    assert result["model"]["vocabulary_size"] == (300 if mixed else 6 + len(set(WORDS)))
    assert result["model"]["num_layers"] == 1 and result["model"]["hidden_dim"] == 16
    ours, peer = result["models"]["ours"], result["models"]["peer"]
    assert ours["encoder"] == "BertEncoder" and peer["encoder"] == "BertBackbone"
    assert ours["parameters"] == peer["parameters"]  # equal size: same tables, blocks, pooler and heads
    for r in (ours, peer):
        assert r["timed_steps"] == 2 and len(r["round_step_s"]) == 2 and len(r["warmup_step_s"]) == 1
        assert math.isclose(r["sequences_per_s"], 2 / r["median_step_s"])
        assert math.isclose(r["tokens_per_s"], 2 * 16 / r["median_step_s"])
        assert math.isclose(r["achieved_flops_per_s"] * r["median_step_s"], r["model_flops_per_step"])
        assert 0 < r["mfu"] and 0 < r["mfu_vs_fp32_peak"]
    assert math.isclose(result["ratio_of_medians_ours_over_peer"], ours["sequences_per_s"] / peer["sequences_per_s"])
    rounds = sorted(result["round_ratios_ours_over_peer"])
    assert math.isclose(result["ratio_ours_over_peer"], (rounds[0] + rounds[1]) / 2)  # median of two rounds
    pipeline = result["input_pipeline"]
    assert math.isclose(pipeline["ratio"], pipeline["batches_per_s"] / pipeline["train_steps_per_s"])


def test_matmul_shapes_follow_the_model():
    cfg = model_preset("mini", vocabulary_size=1000)  # H=256, I=1024
    shapes = {name.split()[0]: (m, k, n) for name, m, k, n in matmul_shapes(cfg, 32, 128, 20, 2048)}
    assert shapes["ffn_in"] == (4096, 256, 1024) and shapes["ffn_out"] == (4096, 1024, 256)
    assert shapes["proj"] == (4096, 256, 256) and shapes["mlm_out"] == (640, 256, 1000)
    assert shapes["square"] == (2048, 2048, 2048)
    median, best = time_matmul(8, 8, 8, "float32", repeats=3, min_time=0.0)
    assert 0 < median <= best


def test_peer_has_the_same_size_as_ours():
    from bertbench.model.encoder import build_encoder

    cfg = model_preset("tiny", vocabulary_size=50, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=24,
                       max_sequence_length=32, num_segments=3)
    peer, ours = peer_encoder(cfg), build_encoder(cfg)
    assert peer.count_params() == ours.count_params()
    assert peer.token_embedding.input_dim == 50 and peer.max_sequence_length == 32 and peer.num_segments == 3


@pytest.mark.parametrize("fields, message", [
    (dict(steps=0), "--steps must be a positive integer"),
    (dict(seq_length=4), "--seq-length must be at least 8"),
    (dict(rounds=5, steps=4), "--rounds (5) must not exceed --steps (4)"),
    (dict(vocab_size=-1), "--vocab-size must be positive"),
])
def test_bad_options(fields, message):
    with pytest.raises(BertbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PretrainBench(**fields).check()


@pytest.mark.parametrize("argv, message", [
    (["bench", "pretrain", "--steps", "0"], "--steps must be a positive integer, got 0"),
    (["bench", "pretrain", "--model", "tinny"], "unknown model preset 'tinny' (did you mean 'tiny'?)"),
    (["bench", "pretrain", "--set", "pretrain.batch_size=2"], "must start with one of: model."),
    (["bench", "pretrain", "--set", "model.hiden_dim=2"], "unknown setting 'model.hiden_dim'"),
    (["bench", "pretrain", "--seq-length", "1024"], "exceeds model.max_sequence_length=512"),
    (["bench", "finetune"], "invalid choice: 'finetune'"),
    (["bench", "pretrain", "--precision", "fp16"], "invalid choice: 'fp16'"),
])
def test_bad_arguments_give_one_line_errors(argv, message, capsys, tiny_data):
    corpus, vocab = tiny_data
    try:
        code = cli.main([*argv, "--corpus", str(corpus), "--vocab", str(vocab)])
    except SystemExit as stop:  # argparse usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert code != 0 and message in err
    assert len(err.strip().splitlines()) == 1
