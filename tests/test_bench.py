"""`bench pretrain` and `bench finetune`: each runs end to end on a minuscule config and writes every
figure; bad arguments give one-line errors. No timing is asserted (timings never go in tests): only
that the figures are present, positive and consistent with one another (sequences/s = batch / step
time, ...)."""

import json
import math

import pytest

from bertbench import cli
from bertbench.bench.finetune import FinetuneBench, peer_classifier
from bertbench.bench.machine import matmul_shapes, time_matmul
from bertbench.bench.ops import breakdown, op_group
from bertbench.bench.plot import plot_sizes, size_series
from bertbench.bench.pretrain import PretrainBench, contenders, peer_encoder
from bertbench.config import FinetuneConfig, model_preset
from bertbench.errors import BertbenchError
from bertbench.finetuning import classification
from bertbench.tasks import get_task

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


@pytest.mark.slow  # builds and traces two (three) tiny models
@pytest.mark.parametrize("extra", [["--precision", "float32", "--peer-precision", "same"],
                                   ["--vocab-size", "300", "--precision", "mixed_bfloat16"]])
def test_bench_pretrain_end_to_end(tiny_data, tmp_path, capsys, extra):
    corpus, vocab = tiny_data
    out = tmp_path / "bench.json"
    argv = ["bench", "pretrain", *MINUSCULE, "--corpus", str(corpus), "--vocab", str(vocab), "--json", str(out), *extra]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "ours/peer throughput ratio" in printed and "input pipeline" in printed
    assert "where the time goes" in printed
    result = json.loads(out.read_text())
    assert {"options", "machine", "model", "matmul", "models", "ratio_ours_over_peer", "input_pipeline",
            "round_ratios_ours_over_peer", "ratio_of_medians_ours_over_peer", "ids", "precision"} <= set(result)
    assert {"cpu_model", "cpu_cores", "tensorflow", "avx512_bf16"} <= set(result["machine"])
    mixed = "mixed_bfloat16" in extra
    assert set(result["matmul"]) == ({"float32", "bfloat16"} if mixed else {"float32"})
    assert result["model"]["vocabulary_size"] == (300 if mixed else 6 + len(set(WORDS)))
    assert result["model"]["num_layers"] == 1 and result["model"]["hidden_dim"] == 16
    # mixed: the peer at its fastest of float32 / mixed_bfloat16 (both measured); else the peer in ours' policy
    expected = {"ours_mixed_bfloat16", "peer_float32", "peer_mixed_bfloat16"} if mixed else {"ours_float32",
                                                                                          "peer_float32"}
    assert set(result["models"]) == expected and result["ours"] == ("ours_mixed_bfloat16" if mixed else "ours_float32")
    peers = [n for n in expected if n.startswith("peer")]
    assert result["peer"] == min(peers, key=lambda n: result["models"][n]["median_step_s"])
    ours, peer = result["models"][result["ours"]], result["models"][result["peer"]]
    assert ours["encoder"] == "BertEncoder" and peer["encoder"] == "BertBackbone"
    assert ours["parameters"] == peer["parameters"]  # equal size: same tables, blocks, pooler and heads
    for name, r in result["models"].items():
        peak = result["matmul"]["bfloat16" if r["precision"] == "mixed_bfloat16" else "float32"]["peak_flops_per_s"]
        assert math.isclose(r["mfu"] * peak, r["achieved_flops_per_s"])  # MFU vs the peak of its own precision
        groups = r["breakdown"]["groups"]
        assert set(groups) == {"matmul", "elementwise", "casts", "softmax+layernorm", "optimizer", "other"}
        assert groups["matmul"]["seconds_per_step"] > 0 and groups["optimizer"]["seconds_per_step"] > 0
        assert math.isclose(sum(g["share"] for g in groups.values()), 1.0)
        assert groups["casts"]["seconds_per_step"] > 0 or r["precision"] == "float32"  # bf16 <-> fp32 casts
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
    (dict(peer_precision="fp16"), "--peer-precision must be one of fastest, same"),
    (dict(profile_steps=-1), "--profile-steps must be 0"),
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
    (["bench", "pretraining"], "invalid choice: 'pretraining'"),
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


FINETUNE_MINUSCULE = ["--model", "tiny", "--set", "model.num_layers=1", "--set", "model.hidden_dim=16",
                      "--set", "model.num_heads=2", "--set", "model.intermediate_dim=32", "--max-seq-length", "48",
                      "--batch-size", "4", "--train-examples", "32", "--eval-examples", "12", "--steps", "2",
                      "--warmup", "2", "--rounds", "2"]


@pytest.mark.slow  # builds and traces three tiny models
def test_bench_finetune_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "finetune", *FINETUNE_MINUSCULE, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train: ours/peer examples/s" in printed and "predict: ours/peer examples/s" in printed
    result = json.loads(out.read_text())
    assert result["task"] == "sst2" and result["train_rows"] == 32 and result["dev_rows"] == 12
    assert result["model"]["num_layers"] == 1 and result["model"]["hidden_dim"] == 16
    assert all(n % 8 == 0 and n <= 48 for n in result["dynamic_batch_lengths"])
    assert result["mean_real_tokens_train"] < result["mean_dynamic_batch_length"] <= 48
    for part, examples in (("train", 4), ("predict", 12)):
        p = result[part]
        assert set(p["models"]) == {"ours", "ours_full", "peer"}
        for r in p["models"].values():
            assert r["timed"] == 2 and len(r["round_s"]) == 2
            assert math.isclose(r["examples_per_s"], examples / r["median_step_s"])
        rounds = sorted(p["round_ratios_ours_over_peer"])
        assert math.isclose(p["ratio_ours_over_peer"], (rounds[0] + rounds[1]) / 2)  # median of two rounds


def test_finetune_bench_peer_is_a_keras_hub_classifier_of_our_size():
    from bertbench.model.encoder import build_encoder

    cfg = model_preset("tiny", vocabulary_size=50, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=24)
    peer = peer_classifier(cfg, FinetuneConfig(task="sst2"), 10)
    ours = classification.build_head(build_encoder(cfg), get_task("sst2"), FinetuneConfig(task="sst2"))
    assert type(peer).__name__ == "BertTextClassifier" and peer.count_params() == ours.count_params()


@pytest.mark.parametrize("fields, message", [
    (dict(steps=0), "--steps must be a positive integer"),
    (dict(eval_examples=-1), "--eval-examples must be 0 (all) or positive"),
    (dict(rounds=5, steps=4), "--rounds (5) must not exceed --steps (4)"),
])
def test_bad_finetune_bench_options(fields, message):
    with pytest.raises(BertbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FinetuneBench(**fields).check()


@pytest.mark.slow  # loads tensorflow-text (and Hugging Face tokenizers when installed)
def test_bench_tokenize_end_to_end(tiny_data, tmp_path, capsys):
    from bertbench.text.corpus import read_documents

    corpus, vocab = tiny_data
    out = tmp_path / "tokenize.json"
    argv = ["bench", "tokenize", "--corpus", str(corpus), "--vocab", str(vocab), "--repeats", "3", "--json", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "ours/FastBertTokenizer speed ratio" in printed
    result = json.loads(out.read_text())
    sentences = [s for d in read_documents(corpus) for s in d]
    assert result["corpus"]["sentences"] == len(sentences) > 50
    assert math.isclose(result["corpus"]["megabytes"], sum(len(s.encode()) for s in sentences) / 1e6)
    assert {"ours", "fast_bert"} <= set(result["tokenizers"]) and result["vocabulary"]["size"] == 6 + len(set(WORDS))
    for name, t in result["tokenizers"].items():
        assert len(t["seconds"]) == len(t["cpu_seconds"]) == 3
        assert math.isclose(t["median_mb_per_s"], result["corpus"]["megabytes"] / sorted(t["seconds"])[1])
    ours, fast = result["tokenizers"]["ours"]["seconds"], result["tokenizers"]["fast_bert"]["seconds"]
    assert math.isclose(result["ratio_ours_over_fast_bert"], sorted(f / o for o, f in zip(ours, fast))[1])
    assert result["tokenizers"]["ours"]["lines_differing_from_ours"] == 0
    assert result["reference"] == {"checked": True, "lines": len(sentences),
                                   "lines_differing": {name: 0 for name in result["tokenizers"]}}
    assert f"differs from the google-research reference on 0 of {len(sentences)} lines" in printed


def test_bench_tokenize_bad_options(tmp_path):
    from bertbench.bench.tokenize import TokenizeBench, corpus_sentences

    with pytest.raises(BertbenchError, match="--repeats must be a positive integer"):
        TokenizeBench(repeats=0).check()
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(BertbenchError, match="no sentences"):
        corpus_sentences(tmp_path / "empty.txt")


@pytest.mark.parametrize("node, op_type, group", [
    ("StatefulPartitionedCall/bert_pretrainer/lm_head/token_embedding/MatMul", "_MklMatMul", "matmul"),
    ("StatefulPartitionedCall/gradient_tape/x/self_attention_layer/MatMul/ArithmeticOptimizer/"
     "FoldTransposeIntoMatMul_MatMul", "_MklBatchMatMulV2", "matmul"),  # Grappler's name is not the optimizer
    ("adam_w/Sqrt_12", "Sqrt", "optimizer"),
    ("StatefulPartitionedCall/x/feedforward_layer_norm/Cast", "Cast", "casts"),
    ("StatefulPartitionedCall/x/feedforward_layer_norm/Mul", "Mul", "softmax+layernorm"),
    ("StatefulPartitionedCall/SparseSoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits",
     "softmax+layernorm"),
    ("StatefulPartitionedCall/x/feedforward_dropout/stateless_random_uniform", "StatelessRandomUniformV2",
     "elementwise"),
    ("StatefulPartitionedCall/x/Erfc", "Erfc", "elementwise"),
    ("StatefulPartitionedCall/x/transpose", "_MklTranspose", "other"),
])
def test_op_groups(node, op_type, group):
    assert op_group(node, op_type) == group


def test_breakdown_shares_and_per_step_times():
    events = [("a/MatMul", "_MklMatMul", 0.6), ("adam_w/Mul", "Mul", 0.2), ("a/Cast", "Cast", 0.1),
              ("a/Sum", "Sum", 0.1)]
    result = breakdown(events, steps=2, wall_s=0.8)
    groups = result["groups"]
    assert math.isclose(groups["matmul"]["seconds_per_step"], 0.3) and math.isclose(groups["matmul"]["share"], 0.6)
    assert math.isclose(groups["optimizer"]["share"], 0.2) and groups["elementwise"]["share"] == 0
    assert math.isclose(result["op_seconds_per_step"], 0.5) and math.isclose(result["wall_seconds_per_step"], 0.4)
    assert result["top_ops"][0] == {"op": "matmul: _MklMatMul", "seconds_per_step": 0.3}


def test_contenders_ours_in_its_precision_peer_at_its_fastest():
    assert contenders(PretrainBench(), "mixed_bfloat16") == [
        ("ours_mixed_bfloat16", "mixed_bfloat16"), ("peer_float32", "float32"),
        ("peer_mixed_bfloat16", "mixed_bfloat16")]
    assert contenders(PretrainBench(peer_precision="same"), "float32") == [("ours_float32", "float32"),
                                                                          ("peer_float32", "float32")]
    both = contenders(PretrainBench(both_precisions=True), "float32")
    assert [name for name, _ in both] == ["ours_float32", "ours_mixed_bfloat16", "peer_float32", "peer_mixed_bfloat16"]


def test_size_plot_has_a_series_per_model_and_precision(tmp_path):
    def result(preset, params, rate):
        models = {f"{who}_{p}": {"parameters": params, "tokens_per_s": rate * (2 if p == "mixed_bfloat16" else 1)}
                  for who in ("ours", "peer") for p in ("float32", "mixed_bfloat16")}
        return {"options": {"model": preset}, "models": models, "machine": {"cpu_model": "cpu", "cpu_cores": 2}}

    results = [result("mini", 11e6, 5000.0), result("tiny", 4e6, 20000.0)]
    series = size_series(results)
    assert set(series) == {"ours_float32", "ours_mixed_bfloat16", "peer_float32", "peer_mixed_bfloat16"}
    assert series["ours_mixed_bfloat16"] == [(4.0, 40000.0, "tiny"), (11.0, 10000.0, "mini")]  # by size
    plot_sizes(results, tmp_path / "sizes.png")
    assert (tmp_path / "sizes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
