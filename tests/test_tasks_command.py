"""`bertbench tasks`: every task with its kind, metrics (main first, with direction) and where its data
comes from (files under a data root; present in the bundled sample, in --data-dir)."""

import subprocess
import sys
from pathlib import Path

import pytest

from bertbench.cli import main
from bertbench.commands.tasks import data_files, rows
from bertbench.tasks import TASKS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _table(capsys, *argv):
    assert main(["tasks", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    body = {line.split()[0]: line for line in lines[1:lines.index("")]}
    return header, body, "\n".join(lines)


def test_lists_every_task_with_kind_metrics_and_files(capsys, monkeypatch):
    monkeypatch.delenv("BERTBENCH_DATA", raising=False)
    header, body, text = _table(capsys)
    assert header[:5] == ["task", "kind", "metrics", "files", "sample"] and "data" not in header
    assert set(body) == set(TASKS)
    assert body["mrpc"].split()[1] == "classification" and "f1↑ (main), accuracy↑" in body["mrpc"]
    assert "glue/MRPC/{train,dev}.tsv" in body["mrpc"]
    sample = {row["task"]: row["sample"] for row in rows()[0]}
    assert sample["mrpc"] == sample["squad1_devsplit"] == sample["conll2003"] == "yes"
    assert "spearman↑ (main), pearson↑" in body["stsb"] and " regression " in body["stsb"]
    assert "squad/{train-v1.1,dev-v1.1}.json" in body["squad1"] and "conll2003/{eng.train,eng.testa}" in text
    assert "glue/MNLI/{train,dev_matched,dev_mismatched}.tsv" in body["mnli"]
    assert sample["mnli"] == sample["swag"] == "no"  # not in the bundled sample
    assert "PROXY" in body["qnli_devsplit"] and "glue/QNLI/dev.tsv" in body["qnli_devsplit"]
    assert "finetune --source tfds" in text


def test_availability_follows_the_data_root(tmp_path, capsys):
    (tmp_path / "glue" / "RTE").mkdir(parents=True)
    for split in ("train", "dev"):
        (tmp_path / "glue" / "RTE" / f"{split}.tsv").write_text("x\n")
    (tmp_path / "squad").mkdir()
    (tmp_path / "squad" / "dev-v1.1.reconstructed.json").write_text("{}")  # an accepted second name
    table = {row["task"]: row for row in rows(str(tmp_path))[0]}
    assert table["rte"]["data"] == "yes" and table["mrpc"]["data"] == "no"
    assert table["squad1"]["data"] == "partial" and table["squad1_devsplit"]["data"] == "yes"
    header, _, text = _table(capsys, "--data-dir", str(tmp_path))
    assert header[5] == "data" and f"data: present in {tmp_path}" in text


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not available")
def test_shared_data_root_has_the_glue_tasks(tmp_path):
    table = {row["task"]: row for row in rows(str(SHARED_DATA))[0]}
    assert all(table[t]["data"] == "yes" for t in ("cola", "sst2", "mrpc", "stsb", "rte", "wnli", "conll2003"))
    assert table["qnli"]["data"] == "partial"  # dev only: QNLI train.tsv is not there


def test_every_task_has_data_files_and_the_command_is_light():
    for name in TASKS:
        files = data_files(name)
        assert "train" in files and all(paths for paths in files.values()), name
    # `tasks` answers without loading TensorFlow
    code = "import sys; from bertbench.cli import main; main(['tasks']); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
