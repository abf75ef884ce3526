"""The task kinds (bertbench.finetuning.kinds): one registry, one protocol, and each kind's official
prediction file written, read back by `bertbench score`'s path and scored to the same numbers
(no model: predictions are made up from the gold data)."""

import dataclasses

import numpy as np
import pytest

from bertbench.errors import BertbenchError
from bertbench.evaluation.score import score_files
from bertbench.finetuning import span
from bertbench.finetuning.kinds import KINDS, PROTOCOL, kind_of
from bertbench.resources import SAMPLE_DIR
from bertbench.tasks import TASKS, get_task
from conftest import TEST_DATA


def test_every_task_kind_is_registered_and_every_kind_implements_the_protocol():
    assert {spec.kind for spec in TASKS.values()} == set(KINDS)
    for name, module in KINDS.items():
        missing = [attr for attr in PROTOCOL if not hasattr(module, attr)]
        assert not missing, (name, missing)
        assert all(callable(getattr(module, attr)) for attr in PROTOCOL if attr not in ("FEATURE_BASED", "ROW_FORM"))
        assert isinstance(module.FEATURE_BASED, bool)
    assert [k for k, m in KINDS.items() if m.FEATURE_BASED] == ["tagging"]
    with pytest.raises(BertbenchError, match="unknown kind of task rte 'ranking'"):
        kind_of(dataclasses.replace(get_task("rte"), kind="ranking"))


def _flip(values, every, other):
    return [other(v) if i % every == 0 else v for i, v in enumerate(values)]


def _made_up(task, examples):
    """Predictions derived from the gold data, wrong every few examples."""
    spec = get_task(task)
    if spec.kind == "classification":
        return _flip([ex.label for ex in examples], 3, lambda v: spec.labels[1 - spec.labels.index(v)])
    if spec.kind == "regression":
        return [ex.label + 0.1 * (i % 7) - 0.3 for i, ex in enumerate(examples)]
    if spec.kind == "multiple_choice":
        return _flip([ex.label for ex in examples], 2, lambda v: (v + 1) % 4)
    if spec.kind == "tagging":
        return _flip([list(ex.tags) for ex in examples], 4, lambda tags: ["O"] * len(tags))
    texts = {ex.qid: (ex.answers[0][0] if ex.answers else "") for ex in examples}
    return span.Answers(dict(_flip(list(texts.items()), 3, lambda item: (item[0], "no idea"))))


@pytest.mark.parametrize("task, gold", [
    ("mrpc", SAMPLE_DIR / "glue" / "MRPC" / "dev.tsv"), ("stsb", SAMPLE_DIR / "glue" / "STS-B" / "dev.tsv"),
    ("swag", TEST_DATA / "tasks" / "swag" / "val.csv"), ("conll2003", SAMPLE_DIR / "conll2003" / "eng.testa"),
    ("squad1", SAMPLE_DIR / "squad" / "dev-v1.1.json"), ("squad2", SAMPLE_DIR / "squad" / "dev-v2.0.json")])
def test_prediction_files_round_trip_to_the_same_metrics(tmp_path, task, gold):
    spec = get_task(task)
    kind = kind_of(spec)
    examples = spec.read_gold(gold)
    predictions = _made_up(task, examples)
    expected = kind.score(spec, examples, predictions)
    path = kind.write_predictions(tmp_path / "predictions", examples, range(len(examples)), predictions)
    scored = score_files(task, str(gold), str(path))
    assert scored.pop("missing", 0) == 0  # SQuAD files report unanswered questions (none here)
    assert scored == expected
    assert 0.0 <= expected[spec.main_metric] < 100.0  # the made-up errors count


def test_squad2_fine_tuning_results_travel_with_the_answers(tmp_path):
    """v2.0 fine-tuning writes null_odds.json beside the answers; its tuned values are reported."""
    spec = get_task("squad2")
    gold = SAMPLE_DIR / "squad" / "dev-v2.0.json"
    examples = spec.read_gold(gold)
    texts = {ex.qid: (ex.answers[0][0] if ex.answers else "") for ex in examples}
    odds = {ex.qid: float(np.sin(i)) for i, ex in enumerate(examples)}
    answers = span.Answers(texts, tuned={"null_score_diff_threshold": 0.5}, null_odds=odds)
    path = span.write_predictions(tmp_path / "predictions", examples, None, answers)
    result = span.score(spec, examples, answers)
    assert result["exact"] == 100.0 and result["null_score_diff_threshold"] == 0.5
    swept = score_files("squad2", str(gold), str(path), na_prob=str(tmp_path / "null_odds.json"))
    assert swept["exact"] == 100.0 and "best_f1" in swept and "null_score_diff_threshold" not in swept
