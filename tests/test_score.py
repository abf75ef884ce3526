"""`bertbench score`: official prediction formats in, known metric values out, one-line errors."""

import json

import pytest

from bertbench import cli
from bertbench.resources import SAMPLE_DIR
from conftest import TEST_DATA


def run_score(capsys, *args):
    code = cli.main(["score", *map(str, args)])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


CONTEXT = "in 1889 the Eiffel Tower, an iron lattice by Gustave Eiffel's company"
SQUAD_GOLD = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": [
    {"id": "q1", "question": "?", "answers": [{"text": "the Eiffel Tower", "answer_start": 0}]},
    {"id": "q2", "question": "?", "answers": [{"text": "1889", "answer_start": 0},
                                             {"text": "in 1889", "answer_start": 0}]},
    {"id": "q3", "question": "?", "answers": [{"text": "Gustave Eiffel's company", "answer_start": 0}]},
    {"id": "q4", "question": "?", "answers": [{"text": "an iron lattice", "answer_start": 0}]}]}]}]}


def test_squad_v1(tmp_path, capsys):
    gold = write(tmp_path / "dev.json", json.dumps(SQUAD_GOLD))
    preds = write(tmp_path / "pred.json", json.dumps({
        "q1": "Eiffel tower!",  # EM: articles, case and punctuation are normalized away
        "q2": "In 1889.",  # EM against the second gold answer
        "q3": "Gustave Eiffel",  # "gustave eiffels company" vs "gustave eiffel": no overlap on 'eiffels'
        "q4": "a lattice"}))  # "lattice" vs "iron lattice": p=1, r=1/2 -> F1 2/3
    code, result, _ = run_score(capsys, "squad1", "--data", gold, "--predictions", preds)
    assert code == 0
    assert result["exact"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(100 * (1 + 1 + 2 * (1 / 2 * 1 / 3) / (1 / 2 + 1 / 3) + 2 / 3) / 4)


def test_squad_v2_with_na_prob(tmp_path, capsys):
    gold = TEST_DATA / "tasks" / "squad" / "dev-v2.0.json"
    preds = write(tmp_path / "pred.json", json.dumps({"dv2q1": "Warsaw", "dv2q2": "1903", "dv2q3": "",
                                                       "dv2q4": ""}))
    na = write(tmp_path / "na.json", json.dumps({"dv2q1": 0.1, "dv2q2": 0.8, "dv2q3": 0.3, "dv2q4": 0.9}))
    code, result, _ = run_score(capsys, "squad2", "--data", gold, "--predictions", preds, "--na-prob", na)
    assert code == 0
    assert (result["exact"], result["HasAns_exact"], result["NoAns_exact"]) == (50.0, 50.0, 50.0)
    # find_best_thresh: start 2 (no-answer questions); q1 +1 -> 3 at 0.1; q3 +0; q2 -1; q4 +0
    assert (result["best_exact"], result["best_exact_thresh"]) == (75.0, 0.1)
    code, result, _ = run_score(capsys, "squad2", "--data", gold, "--predictions", preds, "--na-prob", na,
                                "--na-prob-thresh", "0.5")
    assert result["exact"] == 75.0  # q2 (0.8) and q4 (0.9) become no-answer


def test_squad_unknown_ids_are_one_line_errors(tmp_path, capsys):
    gold = write(tmp_path / "dev.json", json.dumps(SQUAD_GOLD))
    preds = write(tmp_path / "pred.json", json.dumps({"q1": "a", "q2": "b", "zzz": "c"}))
    code, _, err = run_score(capsys, "squad1", "--data", gold, "--predictions", preds)
    assert code == 2 and err.count("\n") == 1
    assert "1 unknown id(s), e.g. zzz" in err and "missing" not in err
    write(preds, '{"q1": 3}')
    err = run_score(capsys, "squad1", "--data", gold, "--predictions", preds)[2]
    assert "value for 'q1' is 3, expected an answer string" in err


def test_squad_v1_partial_predictions_score_missing_answers_0(tmp_path, capsys):
    """As evaluate-v1.1.py: an unanswered question scores 0 and still counts (a note on stderr)."""
    gold = write(tmp_path / "dev.json", json.dumps(SQUAD_GOLD))
    preds = write(tmp_path / "pred.json", json.dumps({"q1": "Eiffel tower!", "q4": "a lattice"}))
    code, result, err = run_score(capsys, "squad1", "--data", gold, "--predictions", preds)
    assert code == 0
    # by hand: q1 exact 1, f1 1; q4 exact 0, f1 2/3; q2, q3 missing: 0 -> over 4 questions
    assert result == {"exact": pytest.approx(25.0), "f1": pytest.approx(100 * (1 + 2 / 3) / 4), "missing": 2}
    assert err.count("\n") == 1 and "no answer for 2 question(s)" in err and "score 0" in err
    complete = write(tmp_path / "all.json", json.dumps({"q1": "x", "q2": "x", "q3": "x", "q4": "x"}))
    code, result, err = run_score(capsys, "squad1", "--data", gold, "--predictions", complete)
    assert result["missing"] == 0 and err == ""


def test_squad_v2_partial_predictions_score_missing_answers_0(tmp_path, capsys):
    """evaluate-v2.0.py stops (KeyError) on such a file; bertbench applies v1.1's rule to v2.0."""
    gold = TEST_DATA / "tasks" / "squad" / "dev-v2.0.json"  # dv2q1, dv2q3 answerable; dv2q2, dv2q4 not
    preds = write(tmp_path / "pred.json", json.dumps({"dv2q1": "Warsaw", "dv2q4": ""}))
    na = write(tmp_path / "na.json", json.dumps({"dv2q1": 0.1, "dv2q4": 0.9}))
    code, result, err = run_score(capsys, "squad2", "--data", gold, "--predictions", preds, "--na-prob", na)
    assert code == 0 and "no answer for 2 question(s)" in err
    # by hand: q1 right (1), q4 right no-answer (1), q2 and q3 missing (0): 2 of 4
    assert (result["exact"], result["f1"], result["total"], result["missing"]) == (50.0, 50.0, 4, 2)
    assert (result["HasAns_exact"], result["HasAns_total"]) == (50.0, 2)  # q1 1, q3 0
    assert (result["NoAns_exact"], result["NoAns_total"]) == (50.0, 2)  # q4 1, q2 0
    # sweep: start 1 (q4 answered ""), q1 at 0.1 -> 2, q4 at 0.9 -> +0: best 2 of 4 at 0.1
    assert (result["best_exact"], result["best_exact_thresh"]) == (50.0, 0.1)
    write(na, json.dumps({"dv2q4": 0.9}))  # an answered question without a na-prob: error
    code, _, err = run_score(capsys, "squad2", "--data", gold, "--predictions", preds, "--na-prob", na)
    assert code == 2 and "1 gold question(s) missing, e.g. dv2q1" in err


def test_glue_mrpc_on_the_sample_dev(tmp_path, capsys):
    gold = SAMPLE_DIR / "glue" / "MRPC" / "dev.tsv"  # 408 pairs, 279 labelled "1"
    preds = write(tmp_path / "MRPC.tsv", "index\tprediction\n" + "".join(f"{i}\t1\n" for i in range(408)))
    code, result, _ = run_score(capsys, "mrpc", "--data", gold, "--predictions", preds)
    assert code == 0
    assert result["accuracy"] == pytest.approx(100 * 279 / 408)
    assert result["f1"] == pytest.approx(100 * 2 * 279 / (408 + 279))


@pytest.fixture
def rte_gold(tmp_path):
    rows = ["index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\tentailment", "1\tC.\tD.\tnot_entailment",
            "2\tE.\tF.\tentailment", "3\tG.\tH.\tnot_entailment"]
    return write(tmp_path / "dev.tsv", "\n".join(rows) + "\n")


def test_glue_rows_in_any_order(tmp_path, capsys, rte_gold):
    preds = write(tmp_path / "RTE.tsv", "index\tprediction\n3\tnot_entailment\n0\tentailment\n"
                  "1\tentailment\n2\tentailment\n")
    code, result, _ = run_score(capsys, "rte", "--data", rte_gold, "--predictions", preds)
    assert (code, result) == (0, {"accuracy": 75.0})


@pytest.mark.parametrize("body, message", [
    ("id\tlabel\n0\tentailment\n", "header must be 'index<TAB>prediction'"),
    ("index\tprediction\n0\tentailment\n1\tentailment\n2\tentailment\n",
     "3 predictions with indices 0..2 for 4 gold examples"),
    ("index\tprediction\n0\tentailment\n1\tyes\n", "line 3: prediction 'yes' is not one of entailment"),
    ("index\tprediction\n0\tentailment\n0\tentailment\n", "line 3: index 0 appears twice"),
])
def test_glue_prediction_errors(tmp_path, capsys, rte_gold, body, message):
    preds = write(tmp_path / "RTE.tsv", body)
    code, _, err = run_score(capsys, "rte", "--data", rte_gold, "--predictions", preds)
    assert code == 2 and message in err and err.count("\n") == 1


def test_stsb_and_swag(tmp_path, capsys):
    gold = SAMPLE_DIR / "glue" / "STS-B" / "dev.tsv"
    scores = [line.rsplit("\t", 1)[1] for line in gold.read_text(encoding="utf-8").splitlines()[1:]]
    preds = write(tmp_path / "STS-B.tsv", "index\tprediction\n" +
                  "".join(f"{i}\t{float(s) * 0.5 + 1}\n" for i, s in enumerate(scores)))
    code, result, _ = run_score(capsys, "stsb", "--data", gold, "--predictions", preds)
    assert code == 0 and (result["pearson"], result["spearman"]) == pytest.approx((100.0, 100.0))
    swag_gold = TEST_DATA / "tasks" / "swag" / "val.csv"  # one example, label 1
    for guess, accuracy in (("1", 100.0), ("3", 0.0)):
        preds = write(tmp_path / "swag.tsv", f"index\tprediction\n0\t{guess}\n")
        result = run_score(capsys, "swag", "--data", swag_gold, "--predictions", preds)[1]
        assert result == {"accuracy": accuracy}


CONLL_PRED = """-DOCSTART- -X- O O O

U.N. NNP I-ORG B-ORG
official NN O O
Ekeus NNP I-PER B-PER
heads VBZ O O
for IN O O
Baghdad NNP I-LOC B-ORG
. . O O

Peter NNP I-PER B-PER
Blackburn NNP I-PER I-PER
"""


def test_conll_conlleval_input(tmp_path, capsys):
    preds = write(tmp_path / "pred.txt", CONLL_PRED)
    code, result, _ = run_score(capsys, "conll2003", "--predictions", preds)
    # gold (IOB1): ORG, PER, LOC, PER = 4; predicted: ORG, PER, ORG, PER = 4; 3 right
    assert code == 0
    assert (result["precision"], result["recall"]) == (75.0, 75.0)
    assert result["f1_LOC"] == 0.0 and result["f1_PER"] == 100.0
    # conlleval compares tags literally (I-ORG != B-ORG): 5 of 9 tokens; -DOCSTART- is a boundary
    assert result["accuracy"] == pytest.approx(100 * 5 / 9)


def test_conll_against_gold_file(tmp_path, capsys):
    gold = SAMPLE_DIR / "conll2003" / "eng.testb"
    lines = []
    for line in gold.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        boundary = not fields or fields[0] == "-DOCSTART-"
        lines.append("" if boundary else f"{fields[0]} {fields[-1]} {fields[-1]}")
    preds = write(tmp_path / "pred.txt", "\n".join(lines) + "\n")
    code, result, _ = run_score(capsys, "conll2003", "--data", gold, "--predictions", preds)
    assert code == 0 and result["f1"] == 100.0
    write(preds, "\n".join(lines).replace("SOCCER", "FOOTBALL", 1) + "\n")
    code, _, err = run_score(capsys, "conll2003", "--data", gold, "--predictions", preds)
    assert code == 2 and "sentence differs from" in err


def test_usage_errors(tmp_path, capsys):
    preds = write(tmp_path / "p.tsv", "index\tprediction\n")
    code, _, err = run_score(capsys, "mrcp", "--data", preds, "--predictions", preds)
    assert code == 2 and "did you mean 'mrpc'" in err
    code, _, err = run_score(capsys, "mrpc", "--predictions", preds)
    assert code == 2 and "needs --data GOLD" in err
    code, _, err = run_score(capsys, "mrpc", "--data", tmp_path / "nope.tsv", "--predictions", preds)
    assert code == 2 and "gold file not found" in err
