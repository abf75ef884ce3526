"""GLUE benchmark submission: `finetune --predict-test DIR` writes the server's files (names, header,
rows, text labels), on the real GLUE test files and on small files in their exact formats (MNLI and
the AX diagnostic), and `bertbench submission DIR` zips a complete set or fails on one line."""

import csv
import json
import shutil
import zipfile

import pytest

from bertbench import cli
from bertbench.finetuning.submission import FILES, glue_test_sets, read_diagnostic
from bertbench.tasks import get_task

TINY = ["--random-init", "--model", "tiny", "--set", "model.num_layers=1", "--set", "model.hidden_dim=16",
        "--set", "model.max_sequence_length=64", "--max-seq-length", "64", "--epochs", "1", "--batch-size", "16",
        "--set", "finetune.max_train_examples=32", "--set", "finetune.max_eval_examples=16", "--quiet"]


def write_complete_set(folder, skip=()):
    """The 11 files with the official row counts and valid values (what a full run writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (_, rows, values) in FILES.items():
        if stem not in skip:
            column = [f"{(i % 50) / 10}" for i in range(rows)] if values is None else \
                [values[i % len(values)] for i in range(rows)]
            (folder / f"{stem}.tsv").write_text("index\tprediction\n" + "".join(
                f"{i}\t{v}\n" for i, v in enumerate(column)), encoding="utf-8")
    return folder


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---- the zip --------------------------------------------------------------------------------------
def test_a_complete_set_is_zipped_flat(tmp_path, capsys, complete_set):
    folder = tmp_path / "subm"
    shutil.copytree(complete_set, folder)
    (folder / "notes.txt").write_text("not part of the submission")
    code, out, _ = run(capsys, "submission", folder, "--out", tmp_path / "glue.zip")
    assert code == 0 and json.loads(out)["files"]["QQP.tsv"] == 390965
    with zipfile.ZipFile(tmp_path / "glue.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f"{stem}.tsv" for stem in FILES)  # top level, 11 files
        assert archive.read("AX.tsv") == (folder / "AX.tsv").read_bytes()


def test_a_missing_task_fails_on_one_line_with_exit_2(tmp_path, capsys):
    folder = write_complete_set(tmp_path / "subm", skip=("QQP", "AX"))
    code, _, err = run(capsys, "submission", folder, "--out", tmp_path / "glue.zip")
    assert code == 2 and err.count("\n") == 1
    assert "lacks QQP.tsv, AX.tsv (2 of 11 GLUE files)" in err and "--task mnli|qqp" in err
    assert not (tmp_path / "glue.zip").exists()


@pytest.fixture(scope="module")
def complete_set(tmp_path_factory):
    return write_complete_set(tmp_path_factory.mktemp("complete") / "subm")


@pytest.mark.parametrize("stem, body, message", [  # files checked before QQP's 390,965 rows: fast
    ("CoLA", "index\tprediction\n0\t1\n", "1 predictions, but the GLUE test set of CoLA has 1063"),
    ("CoLA", "index\tprediction\n" + "".join(f"{i}\tyes\n" for i in range(1063)), "prediction 'yes' is not one"),
    ("MRPC", "index\tprediction\n" + "".join(f"{i + 1}\t1\n" for i in range(1725)), "indices 1..1725"),
    ("STS-B", "index\tprediction\n" + "".join(f"{i}\tx\n" for i in range(1379)), "prediction 'x' is not a number"),
])
def test_a_malformed_file_fails_on_one_line(tmp_path, capsys, complete_set, stem, body, message):
    folder = tmp_path / "subm"
    shutil.copytree(complete_set, folder)
    (folder / f"{stem}.tsv").write_text(body, encoding="utf-8")
    code, _, err = run(capsys, "submission", folder, "--out", tmp_path / "glue.zip")
    assert code == 2 and err.count("\n") == 1 and message in err and f"{stem}.tsv" in err


# ---- test predictions ---------------------------------------------------------------------------------
def test_test_predictions_need_a_test_split_and_a_glue_task(tmp_path, capsys):
    """The bundled sample has no test split: the run stops before training, on one line."""
    code, _, err = run(capsys, "finetune", "--task", "rte", *TINY, "--out", tmp_path / "run",
                       "--predict-test", tmp_path / "subm")
    assert code == 2 and err.count("\n") == 1 and "GLUE RTE test file not found" in err
    assert not (tmp_path / "run").exists()
    code, _, err = run(capsys, "finetune", "--task", "squad1", *TINY, "--predict-test", tmp_path / "subm")
    assert code == 2 and "for GLUE tasks" in err and "not squad1" in err
    code, _, err = run(capsys, "finetune", "--task", "rte", *TINY, "--diagnostic", tmp_path / "d.tsv")
    assert code == 2 and "--predict-test" in err


def read_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def check_file(path, test_file, values):
    """Header, one row per test example with the test file's own index, and valid values."""
    rows, test_rows = read_rows(path), [r for r in read_rows(test_file) if r]
    assert rows[0] == ["index", "prediction"]
    assert [r[0] for r in rows[1:]] == [r[0] for r in test_rows[1:]]  # the test file's index column
    if values is None:
        [float(r[1]) for r in rows[1:]]
    else:
        assert {r[1] for r in rows[1:]} <= set(values)


# One task per layout and value kind (headerless train + 0/1, floats, text labels, a small one); the
# others (SST-2, MRPC, QNLI via qnli_devsplit) take the same path, at ~15 s each on 2 cores.
REAL = {"cola": "CoLA", "stsb": "STS-B", "rte": "RTE", "wnli": "WNLI"}


@pytest.mark.slow
def test_real_glue_test_files_predicted_in_the_server_format(tmp_path, capsys, shared_data):
    """GLUE tasks with a test split in ../shared/data, tiny model, whole test sets."""
    folder = tmp_path / "subm"
    for task, stem in REAL.items():
        if not (shared_data / "glue" / stem / "test.tsv").is_file():
            continue
        code, out, err = run(capsys, "finetune", "--task", task, *TINY, "--data-dir", shared_data,
                             "--out", tmp_path / task, "--predict-test", folder)
        assert code == 0, err
        assert json.loads(out)["test_predictions"] == {f"{stem}.tsv": str(folder / f"{stem}.tsv")}
        check_file(folder / f"{stem}.tsv", shared_data / "glue" / stem / "test.tsv", FILES[stem][2])
        assert len(read_rows(folder / f"{stem}.tsv")) - 1 == FILES[stem][1]  # the official size
    code, _, err = run(capsys, "submission", folder, "--out", tmp_path / "glue.zip")
    assert code == 2 and "lacks SST-2.tsv, MRPC.tsv, QQP.tsv, MNLI-m.tsv, MNLI-mm.tsv, QNLI.tsv, AX.tsv" in err


MNLI_TRAIN = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
              "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n")
MNLI_DEV = MNLI_TRAIN.replace("label1\tgold_label", "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")
MNLI_TEST = MNLI_TRAIN.replace("\tlabel1\tgold_label", "")
PAIRS = [("The cat sat on the mat.", "A cat sat.", "entailment"), ("The cat sat on the mat.", "No cat sat.",
         "contradiction"), ("A man plays a guitar.", "The man is famous.", "neutral")]


def write_mnli(root, n_train=24, n_test=(7, 5)):
    """Small MNLI files in the exact GLUE layout (12 / 16 / 10 columns)."""
    folder = root / "glue" / "MNLI"
    folder.mkdir(parents=True)

    def rows(n, labels):
        out = []
        for i in range(n):
            a, b, label = PAIRS[i % 3]
            out.append("\t".join([str(i), str(100 + i), f"{100 + i}e", "fiction", "(x)", "(y)", "(ROOT x)", "(ROOT y)",
                                  a, b] + ([label] * labels)) + "\n")
        return "".join(out)

    (folder / "train.tsv").write_text(MNLI_TRAIN + rows(n_train, 2), encoding="utf-8")
    for split in ("dev_matched", "dev_mismatched"):
        (folder / f"{split}.tsv").write_text(MNLI_DEV + rows(6, 6), encoding="utf-8")
    for split, n in zip(("test_matched", "test_mismatched"), n_test, strict=True):
        (folder / f"{split}.tsv").write_text(MNLI_TEST + rows(n, 0), encoding="utf-8")
    return root


def write_diagnostic(path, shared=None, n=9):
    """The AX file's exact format: `index<TAB>sentence1<TAB>sentence2` (real rows when available)."""
    real = shared / "glue" / "diagnostic" / "diagnostic.tsv" if shared else None
    if real is not None and real.is_file():
        lines = real.read_text(encoding="utf-8").splitlines(keepends=True)[:n + 1]
    else:
        lines = ["index\tsentence1\tsentence2\n"] + [f"{i}\t{a}\t{b}\n" for i, (a, b, _) in
                                                      enumerate(PAIRS * n)][:n]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.mark.slow
def test_mnli_writes_matched_mismatched_and_ax(tmp_path, capsys):
    from conftest import SHARED_DATA

    root = write_mnli(tmp_path / "data")
    diagnostic = write_diagnostic(tmp_path / "diagnostic.tsv", SHARED_DATA)
    assert len(read_diagnostic(diagnostic)) == 9
    code, out, err = run(capsys, "finetune", "--task", "mnli", *TINY, "--data-dir", root, "--out", tmp_path / "a",
                         "--predict-test", tmp_path / "subm", "--diagnostic", diagnostic)
    assert code == 0, err
    assert sorted(json.loads(out)["test_predictions"]) == ["AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv"]
    for stem, source in (("MNLI-m", root / "glue/MNLI/test_matched.tsv"),
                         ("MNLI-mm", root / "glue/MNLI/test_mismatched.tsv"), ("AX", diagnostic)):
        check_file(tmp_path / "subm" / f"{stem}.tsv", source, ("entailment", "neutral", "contradiction"))
    # no diagnostic file in the data root and none given: MNLI's files, and a note about AX
    code, out, err = run(capsys, "finetune", "--task", "mnli", *TINY, "--data-dir", root, "--out", tmp_path / "b",
                         "--predict-test", tmp_path / "subm2")
    assert code == 0 and sorted(json.loads(out)["test_predictions"]) == ["MNLI-m.tsv", "MNLI-mm.tsv"]
    assert "AX.tsv not written" in err and "--diagnostic" in err
    # a finished run is reused as it is (its files copied again); one finished without them is not
    code, _, _ = run(capsys, "finetune", "--task", "mnli", *TINY, "--data-dir", root, "--out", tmp_path / "b",
                     "--predict-test", tmp_path / "subm3")
    assert code == 0 and (tmp_path / "subm3" / "MNLI-mm.tsv").is_file()
    (tmp_path / "b" / "record.json").write_text(json.dumps({"metrics": {}}))  # as a run without them
    code, _, err = run(capsys, "finetune", "--task", "mnli", *TINY, "--data-dir", root, "--out", tmp_path / "b",
                       "--predict-test", tmp_path / "subm3")
    assert code == 2 and "finished without test predictions" in err
    # the diagnostic file in its standard place is found without --diagnostic
    write_diagnostic(root / "glue" / "diagnostic" / "diagnostic.tsv")
    sets, notes = glue_test_sets(get_task("mnli"), root)
    assert [stem for stem, _ in sets] == ["MNLI-m", "MNLI-mm", "AX"] and notes == []
    assert [len(examples) for _, examples in sets] == [7, 5, 9]


def test_the_diagnostic_file_format_is_checked(tmp_path):
    from bertbench.errors import BertbenchError

    bad = tmp_path / "diagnostic.tsv"
    bad.write_text("index\tpremise\thypothesis\n0\ta\tb\n", encoding="utf-8")
    with pytest.raises(BertbenchError, match="header must be 'index<TAB>sentence1<TAB>sentence2'"):
        read_diagnostic(bad)
    bad.write_text("index\tsentence1\tsentence2\n0\ta\tb\tc\n", encoding="utf-8")
    with pytest.raises(BertbenchError, match="line 2: expected 3 tab-separated columns"):
        read_diagnostic(bad)


def test_grid_test_predictions_come_from_the_best_seed_of_the_best_point():
    from bertbench.commands.finetune import best_run

    summary = {"higher_is_better": True, "best": {"values": [70.0, 75.0, 72.0],
                                                  "records": ["p/seed0/record.json", "p/seed1/record.json",
                                                              "p/seed2/record.json"]}}
    assert best_run(summary).as_posix() == "p/seed1/record.json"
    summary["higher_is_better"] = False
    assert best_run(summary).as_posix() == "p/seed0/record.json"
