"""GLUE loaders: the registry, the bundled sample, official-format MNLI/QQP files, real data, errors."""

import shutil

import pytest

from bertbench.errors import BertbenchError
from bertbench.resources import SAMPLE_DIR
from bertbench.tasks import TASKS, get_task, glue
from bertbench.tasks.base import PairExample
from conftest import TEST_DATA

TASK_DATA = TEST_DATA / "tasks"


def test_registry_shape():
    for name in ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "squad1", "squad2",
                 "conll2003", "swag", "squad1_devsplit", "qnli_devsplit"):
        spec = TASKS[name]
        assert spec.name == name and spec.main_metric in spec.metrics and spec.higher_is_better
    assert TASKS["conll2003"].lowercase is False and TASKS["mrpc"].lowercase is True
    assert TASKS["stsb"].kind == "regression" and TASKS["stsb"].labels == ()
    assert TASKS["mnli"].eval_splits == ("dev_matched", "dev_mismatched")
    with pytest.raises(BertbenchError, match=r"unknown task 'mrcp' \(did you mean 'mrpc'\?\)"):
        get_task("mrcp")
    with pytest.raises(BertbenchError, match="no split 'valid'"):
        get_task("rte").load("valid")
    with pytest.raises(BertbenchError, match="unknown data source"):
        get_task("rte").load("dev", source="hub")


def test_bundled_sample_loads_with_real_labels():
    assert SAMPLE_DIR.is_dir()
    expected = {"cola": (2000, 400), "sst2": (2000, 400), "mrpc": (800, 408), "stsb": (1500, 400),
                "rte": (800, 277), "wnli": (635, 71), "qnli": (800, 400)}
    for name, (n_train, n_dev) in expected.items():
        spec = get_task(name)
        train, dev = spec.load("train"), spec.load("dev")
        assert (len(train), len(dev)) == (n_train, n_dev), name
        labels = {ex.label for ex in train + dev}
        assert labels <= set(spec.labels) if spec.labels else all(0 <= v <= 5 for v in labels)
    mrpc = get_task("mrpc").load("train")[0]  # header with a UTF-8 BOM is skipped, not read as data
    assert mrpc == PairExample("train-0", 'Amrozi accused his brother , whom he called " the witness " , '
                               'of deliberately distorting his evidence .', mrpc.text_b, "1")
    cola = get_task("cola").load("train")[0]  # no header: the first row is data
    assert (cola.text_a, cola.text_b, cola.label) == (
        "Our friends won't buy this analysis, let alone the next one we propose.", None, "1")


def test_sample_qnli_train_and_dev_share_no_question():
    spec = get_task("qnli")
    train_q = {ex.text_a for ex in spec.load("train")}
    dev_q = {ex.text_a for ex in spec.load("dev")}
    assert train_q and dev_q and not train_q & dev_q


def test_official_format_mnli_and_qqp():
    mnli = get_task("mnli")
    train = mnli.load("train", TASK_DATA)
    assert [ex.label for ex in train] == ["entailment", "contradiction", "neutral", "contradiction"]
    assert train[0].text_a == "The committee approved the budget on Monday."  # column 8, not a parse
    matched = mnli.load("dev", TASK_DATA)  # "dev" = first eval split = dev_matched
    assert matched == mnli.load("dev_matched", TASK_DATA)
    assert [ex.label for ex in matched] == ["entailment", "contradiction", "neutral"]  # gold_label (last)
    mismatched = mnli.load("dev_mismatched", TASK_DATA)
    assert [ex.text_b for ex in mismatched] == ["The letter arrived on time.", "The beach was cleaned."]
    test = mnli.load("test", TASK_DATA)
    assert test[0].label is None and test[0].text_b == "The shop is open late on Sundays."
    qqp = get_task("qqp")
    train = qqp.load("train", TASK_DATA)
    assert [ex.label for ex in train] == ["1", "0", "0"]
    assert train[2].text_a == 'What is "machine learning"?'  # quotes are text (QUOTE_NONE)
    assert qqp.load("test", TASK_DATA)[0] == PairExample("test-0", "What is a good book?",
                                                         "Which books should I read?", None)


def test_qnli_devsplit_is_deterministic_and_disjoint_by_question():
    examples = [PairExample(f"dev-{i}", f"q{i % 7}", f"s{i}", "entailment") for i in range(40)]
    train, held = glue.split_by_question(examples)
    assert glue.split_by_question(examples) == (train, held)
    assert not {ex.text_a for ex in train} & {ex.text_a for ex in held}
    assert len(train) + len(held) == 40 and len({ex.text_a for ex in train}) == round(0.8 * 7)
    assert glue.split_by_question(examples, seed=1) != (train, held)  # the seed matters


def _copy_task(tmp_path, task_folder, source=SAMPLE_DIR / "glue"):
    shutil.copytree(source / task_folder, tmp_path / "glue" / task_folder)
    return tmp_path / "glue" / task_folder


@pytest.mark.parametrize("folder, task, edit, message", [
    ("RTE", "rte", lambda rows: rows[:3] + [rows[3].replace("\t", " ", 1)] + rows[4:],
     r"dev\.tsv, line 4: expected 4 tab-separated columns, found 3"),
    ("RTE", "rte", lambda rows: rows[:2] + [rows[2].rsplit("\t", 1)[0] + "\tmaybe\n"] + rows[3:],
     r"dev\.tsv, line 3: label 'maybe' is not one of entailment, not_entailment"),
    ("STS-B", "stsb", lambda rows: rows[:5] + [rows[5].rsplit("\t", 1)[0] + "\t7.5\n"] + rows[6:],
     r"dev\.tsv, line 6: STS-B score '7\.5' is not a number in \[0, 5\]"),
    ("CoLA", "cola", lambda rows: rows[:1] + ["gj04\t2\t\tBad label row.\n"] + rows[1:],
     r"dev\.tsv, line 2: label '2' is not one of 0, 1"),
])
def test_malformed_rows_name_file_and_line(tmp_path, folder, task, edit, message):
    path = _copy_task(tmp_path, folder) / "dev.tsv"
    rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(edit(rows)), encoding="utf-8")
    with pytest.raises(BertbenchError, match=message) as err:
        get_task(task).load("dev", tmp_path)
    assert "\n" not in str(err.value)


def test_missing_file_names_path_and_ways_to_provide_it(tmp_path):
    with pytest.raises(BertbenchError) as err:
        get_task("qqp").load("dev", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "glue" / "QQP" / "dev.tsv") in message
    assert "--data-dir" in message and "BERTBENCH_DATA" in message and "tfds" in message


def test_tfds_record_conversion():
    # records as tfds.as_numpy yields them: bytes text, ClassLabel ints, -1 for unlabeled test rows
    mnli = glue.tfds_to_example("mnli", {"premise": b"A man sleeps.", "hypothesis": b"A man is awake.",
                                         "label": 2, "idx": 0}, "dev_matched-0")
    assert mnli == PairExample("dev_matched-0", "A man sleeps.", "A man is awake.", "contradiction")
    entailed = glue.tfds_to_example("mnli", {"premise": b"a", "hypothesis": b"b", "label": 0}, "g")
    assert entailed.label == "entailment"
    assert glue.tfds_to_example("mrpc", {"sentence1": b"a", "sentence2": b"b", "label": 1}, "g").label == "1"
    assert glue.tfds_to_example("wnli", {"sentence1": b"a", "sentence2": b"b", "label": 1}, "g").label == "1"
    assert glue.tfds_to_example("qnli", {"question": b"q?", "sentence": b"s.", "label": 1},
                                "g").label == "not_entailment"
    cola = glue.tfds_to_example("cola", {"sentence": b"Bill whistled.", "label": -1, "idx": 3}, "test-3")
    assert cola == PairExample("test-3", "Bill whistled.", None, None)
    stsb = glue.tfds_to_example("stsb", {"sentence1": b"a", "sentence2": b"b", "label": 3.8}, "g")
    assert stsb.label == pytest.approx(3.8)


def test_tfds_source_never_downloads(tmp_path):
    with pytest.raises(BertbenchError, match="not prepared .* never downloads"):
        get_task("mrpc").load("dev", tmp_path / "tfds", source="tfds")


def test_real_glue_sizes_equal_the_official_ones(shared_data):
    sizes = {"cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "stsb": (5749, 1500),
             "rte": (2490, 277), "wnli": (635, 71)}
    for name, (n_train, n_dev) in sizes.items():
        spec = get_task(name)
        assert (len(spec.load("train", shared_data)), len(spec.load("dev", shared_data))) == (n_train, n_dev)
    qnli_dev = get_task("qnli").load("dev", shared_data)
    assert len(qnli_dev) == 5463
    train, held = (get_task("qnli_devsplit").load(s, shared_data) for s in ("train", "dev"))
    assert len(train) + len(held) == 5463 and not {e.text_a for e in train} & {e.text_a for e in held}
    assert 0.75 < len(train) / 5463 < 0.85
