"""Every committed table (results/EXP/SCALE/table.{md,csv,tex}, the archive's too) is what `bertbench
table` rebuilds from the committed records beside it, byte for byte: no number in results/ is edited by
hand or left behind by a later change to the tables' code."""

import shutil
from pathlib import Path

import pytest

from bertbench.experiments.schema import load_experiment
from bertbench.results.tables import write_tables

REPO = Path(__file__).resolve().parents[1]
TABLES = sorted(p.parent for p in (REPO / "results").rglob("table.md"))


def _experiments_dir(folder):
    """The experiment files a table was built with: an archive keeps its own beside its results."""
    for parent in folder.parents:
        if (parent / "experiments").is_dir() and parent != REPO:
            return parent / "experiments"
    return None


def test_there_are_committed_tables():
    assert {f"{p.parent.name}/{p.name}" for p in TABLES} >= {"ablation_nsp/ci", "ablation_steps/small"}


@pytest.mark.parametrize("folder", TABLES, ids=[str(p.relative_to(REPO / "results")) for p in TABLES])
def test_committed_table_rebuilds_byte_for_byte(folder, tmp_path):
    experiment = load_experiment(folder.parent.name, _experiments_dir(folder))
    results = tmp_path / "results"
    shutil.copytree(folder / "records", results / experiment.name / folder.name / "records")
    write_tables(experiment, folder.name, results)
    for suffix in ("md", "csv", "tex"):
        rebuilt = (results / experiment.name / folder.name / f"table.{suffix}").read_text()
        assert rebuilt == (folder / f"table.{suffix}").read_text(), f"{folder}/table.{suffix} is stale"
