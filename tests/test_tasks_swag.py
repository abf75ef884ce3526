"""SWAG loader on files in rowanz/swagaf's exact CSV layout (no real SWAG data exists here)."""

import pytest

from bertbench.errors import BertbenchError
from bertbench.tasks import get_task
from bertbench.tasks.base import ChoiceExample
from conftest import TEST_DATA

TASK_DATA = TEST_DATA / "tasks"


def test_official_layout():
    spec = get_task("swag")
    train = spec.load("train", TASK_DATA)
    assert train[0] == ChoiceExample(
        "train-101", "A woman walks into the kitchen.",
        ("She opens the fridge, then takes out milk.", "She swims across the lake.",
         "She plays the drums loudly.", "She flies over the roof."), 0)
    assert [ex.label for ex in train] == [0, 2]
    assert spec.load("dev", TASK_DATA)[0].endings[1] == "He begins to play a tune."
    test = spec.load("test", TASK_DATA)  # test.csv has no label column
    assert test[0].label is None and len(test[0].endings) == 4


def test_header_without_index_column(tmp_path):
    (tmp_path / "swag").mkdir()
    (tmp_path / "swag" / "val.csv").write_text(
        "video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n"
        "v,7,A B,A,B,gold,e0,e1,e2,e3,3\n", encoding="utf-8")
    assert get_task("swag").load("dev", tmp_path) == [
        ChoiceExample("dev-7", "A", ("B e0", "B e1", "B e2", "B e3"), 3)]


@pytest.mark.parametrize("row, message", [
    ("0,v,7,A B,A,B,gold,e0,e1,e2,e3,4\n", r"val\.csv, line 2: label '4' is not one of 0, 1, 2, 3"),
    ("0,v,7,A B,A,B,gold,e0,e1,e2,3\n", r"val\.csv, line 2: expected 12 comma-separated columns, found 11"),
])
def test_malformed_rows(tmp_path, row, message):
    (tmp_path / "swag").mkdir()
    header = (TASK_DATA / "swag" / "val.csv").read_text(encoding="utf-8").splitlines()[0]
    (tmp_path / "swag" / "val.csv").write_text(header + "\n" + row, encoding="utf-8")
    with pytest.raises(BertbenchError, match=message):
        get_task("swag").load("dev", tmp_path)


def test_missing_column_and_missing_file(tmp_path):
    (tmp_path / "swag").mkdir()
    (tmp_path / "swag" / "val.csv").write_text("sent1,sent2,label\nA,B,0\n", encoding="utf-8")
    with pytest.raises(BertbenchError, match="header lacks column"):
        get_task("swag").load("dev", tmp_path)
    with pytest.raises(BertbenchError, match=r"swag/train\.csv.*--data-dir") as err:
        get_task("swag").load("train", tmp_path)
    assert "tfds" not in str(err.value)  # SWAG is not in TFDS: do not suggest it
    with pytest.raises(BertbenchError, match="not available in TensorFlow Datasets"):
        get_task("swag").load("train", tmp_path, source="tfds")
