"""SQuAD: reading the official JSON and TFDS records, the dev-split proxy, gold answers
(windows and answers: test_squad_windows.py)."""

import json

import numpy as np
import pytest

from bertbench.errors import BertbenchError
from bertbench.tasks import get_task, squad
from bertbench.tasks.base import SquadExample
from conftest import TEST_DATA

TASK_DATA = TEST_DATA / "tasks"


# ---- reading ------------------------------------------------------------------------------------
def test_official_train_and_v2_layouts():
    train = get_task("squad1").load("train", TASK_DATA)
    assert [ex.qid for ex in train] == ["t1q1", "t1q2", "t2q1"]
    assert train[0].answers == (("Warsaw", 24),) and train[0].title == "Marie_Curie"
    v2 = get_task("squad2").load("dev", TASK_DATA)
    assert [ex.is_impossible for ex in v2] == [False, True, False, True]
    assert v2[1].answers == ()  # plausible_answers are not answers
    assert squad.gold_answers(v2) == {"dv2q1": ["Warsaw"], "dv2q2": [], "dv2q3": ["water"], "dv2q4": []}


def test_tfds_record_conversion():
    record = {"id": b"q1", "title": b"T", "context": b"Paris is in France.", "question": b"Where?",
              "answers": {"text": [b"France"], "answer_start": np.array([12], np.int32)}}
    assert squad.tfds_to_example(record) == SquadExample("q1", "Where?", "Paris is in France.",
                                                         (("France", 12),), False, "T")
    record.update(is_impossible=True, answers={"text": [], "answer_start": []})
    assert squad.tfds_to_example(record).answers == ()


@pytest.mark.parametrize("text, message", [
    ('{"version": "1.1", "data": [\n  {"title": "x",\n "paragraphs": [}]}', r"line 3: invalid JSON"),
    ('{"version": "1.1"}', "no top-level 'data' list"),
    ('{"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}',
     r"data\[0\]\.paragraphs\[0\]\.context must be a string, got missing"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "abc", "qas": [{"id": "q", "question": "?", '
     '"answers": [{"text": "bc", "answer_start": 5}]}]}]}]}', "question q: answer_start 5 is outside"),
])
def test_broken_files(tmp_path, text, message):
    (tmp_path / "squad").mkdir()
    (tmp_path / "squad" / "dev-v1.1.json").write_text(text, encoding="utf-8")
    with pytest.raises(BertbenchError, match=message):
        get_task("squad1").load("dev", tmp_path)


def test_missing_file_lists_accepted_names(tmp_path):
    with pytest.raises(BertbenchError, match=r"dev-v2\.0\.json or .*dev-v2\.0\.reconstructed\.json"):
        get_task("squad2").load("dev", tmp_path)


def test_devsplit_is_article_level_and_deterministic():
    articles = [(f"T{i}", [SquadExample(f"{i}-{k}", "q", "c", (("c", 0),), False, f"T{i}")
                           for k in range(3)]) for i in range(10)]
    train, held = squad.split_articles(articles)
    assert squad.split_articles(articles) == (train, held)
    assert len({ex.title for ex in train}) == 8 and len({ex.title for ex in held}) == 2
    assert not {ex.title for ex in train} & {ex.title for ex in held}
    assert squad.split_articles(articles[:2]) != ([], [])  # two articles: one each side
    assert all(squad.split_articles(articles[:2]))


def test_real_dev_sets_and_devsplit(shared_data):
    v1 = get_task("squad1").load("dev", shared_data)
    v2 = get_task("squad2").load("dev", shared_data)
    assert len(v1) == 10570 and sum(len(ex.answers) for ex in v1) == 34726
    assert len(v2) == 11873 and sum(ex.is_impossible for ex in v2) == 5945
    train = get_task("squad1_devsplit").load("train", shared_data)
    held = get_task("squad1_devsplit").load("dev", shared_data)
    assert len(train) + len(held) == 10570
    assert (len({ex.title for ex in train}), len({ex.title for ex in held})) == (38, 10)
    assert not {ex.title for ex in train} & {ex.title for ex in held}


def test_reconstructed_names_are_accepted(tmp_path):
    (tmp_path / "squad").mkdir()
    data = {"version": "2.0", "data": [{"title": "T", "paragraphs": [{"context": "abc", "qas": [
        {"id": "q", "question": "?", "answers": [], "is_impossible": True}]}]}]}
    (tmp_path / "squad" / "dev-v2.0.reconstructed.json").write_text(json.dumps(data), encoding="utf-8")
    assert get_task("squad2").load("dev", tmp_path)[0].is_impossible
