"""Metrics against hand-computed values, the paper's own numbers, and seqeval's conlleval mode.

(During development the SQuAD functions were also compared with the official evaluate-v1.1.py /
evaluate-v2.0.py, and `conlleval` with the perl script, on the real dev sets with random
predictions: identical. Those scripts are not copied into this repository.)
"""

import math
import random
import warnings

import pytest

from bertbench.evaluation import metrics
from bertbench.errors import BertbenchError


# ---- GLUE ---------------------------------------------------------------------------------------
def test_classification_metrics_by_hand():
    golds = ["1", "1", "1", "0", "0", "0"]
    preds = ["1", "1", "0", "0", "0", "1"]  # TP=2 TN=2 FP=1 FN=1
    assert metrics.accuracy(golds, preds) == pytest.approx(100 * 4 / 6)
    assert metrics.f1_positive(golds, preds) == pytest.approx(100 * 2 / 3)
    assert metrics.matthews(golds, preds) == pytest.approx(100 * (2 * 2 - 1 * 1) / math.sqrt(3 ** 4))
    # MRPC-like: F1 of class "1" only; all-"0" predictions give F1 0 but accuracy 50
    assert metrics.f1_positive(["1", "0"], ["0", "0"]) == 0.0
    assert metrics.glue_metrics(("f1", "accuracy"), ["1", "0"], ["0", "0"]) == {"f1": 0.0, "accuracy": 50.0}


def test_correlations_by_hand():
    # x = 1..4, y = 1,2,3,5: sum dxdy = 6.5, sum dx^2 = 5, sum dy^2 = 8.75
    result = metrics.correlations([1, 2, 3, 4], [1, 2, 3, 5])
    assert result["pearson"] == pytest.approx(100 * 6.5 / math.sqrt(5 * 8.75))
    assert result["spearman"] == pytest.approx(100.0)  # same ranks
    assert metrics.correlations([1, 2, 3, 4], [4, 3, 2, 1.5])["spearman"] == pytest.approx(-100.0)


def test_glue_average_reproduces_the_paper_table1():
    # BERT-base / BERT-large rows of Table 1: MNLI-m/mm, QQP, QNLI, SST-2, CoLA, STS-B, MRPC, RTE.
    base = {"mnli_m": 84.6, "mnli_mm": 83.4, "qqp": 71.2, "qnli": 90.5, "sst2": 93.5, "cola": 52.1,
            "stsb": 85.8, "mrpc": 88.9, "rte": 66.4, "wnli": 65.1}
    large = {"mnli_m": 86.7, "mnli_mm": 85.9, "qqp": 72.1, "qnli": 92.7, "sst2": 94.9, "cola": 60.5,
             "stsb": 86.5, "mrpc": 89.3, "rte": 70.1}
    assert round(metrics.glue_average(base), 1) == 79.6  # the paper's "Average" column
    assert round(metrics.glue_average(large), 1) == 82.1
    # metric dicts pick F1 for QQP/MRPC, Spearman for STS-B, MCC for CoLA
    dicts = {"qqp": {"f1": 70.0, "accuracy": 90.0}, "stsb": {"pearson": 10.0, "spearman": 80.0},
             "cola": {"mcc": 50.0, "accuracy": 99.0}}
    assert metrics.glue_average(dicts) == pytest.approx(200.0 / 3)
    with pytest.raises(BertbenchError, match="did you mean|unknown column"):
        metrics.glue_average({"mnli": 80.0})


def test_glue_errors_are_one_line():
    with pytest.raises(BertbenchError, match="2 predictions for 3 gold"):
        metrics.accuracy(["1", "0", "1"], ["1", "0"])
    with pytest.raises(BertbenchError, match="empty"):
        metrics.accuracy([], [])


def test_every_metric_declares_its_direction():
    for name in ("accuracy", "f1", "mcc", "spearman", "pearson", "exact", "HasAns_f1", "NoAns_exact",
                 "best_f1", "best_f1_thresh", "f1_PER", "f1_MISC", "precision", "recall",
                 "dev_mismatched_accuracy", "lm_accuracy", "nsp_accuracy", "heldout.lm_accuracy",
                 "glue_average", "tokens_per_s"):
        assert metrics.higher_is_better(name) is True, name
    for name in ("lm_perplexity", "heldout.lm_perplexity", "initial_heldout.lm_loss", "lm_loss", "nsp_loss",
                 "loss", "unigram_baseline.perplexity", "train_wall_time_s"):
        assert metrics.higher_is_better(name) is False, name
    with pytest.raises(BertbenchError) as err:
        metrics.higher_is_better("loss_of_nerve")
    assert "\n" not in str(err.value) and "unknown metric 'loss_of_nerve'" in str(err.value)
    assert not hasattr(metrics, "HIGHER_IS_BETTER")  # one source: METRICS


def test_task_direction_comes_from_the_registry():
    from bertbench.tasks import TASKS

    for spec in TASKS.values():
        assert spec.higher_is_better is metrics.higher_is_better(spec.main_metric)
        assert all(name in metrics.METRICS for name in spec.metrics), spec.name


def test_experiment_columns_agree_with_the_registry():
    """Every metric an experiment's table reads has a direction; a column that states one agrees."""
    import tomllib

    from conftest import REPO

    for path in sorted((REPO / "experiments").glob("*.toml")):
        for column in tomllib.loads(path.read_text(encoding="utf-8")).get("columns", []):
            if "metric" in column:
                direction = metrics.higher_is_better(column["metric"])
                assert column.get("higher_is_better", direction) == direction, (path.name, column)


def test_glue_metrics_go_through_the_registry():
    golds, preds = ["1", "0", "1", "1"], ["1", "1", "1", "0"]
    out = metrics.glue_metrics(("f1", "accuracy"), golds, preds)
    assert list(out) == ["f1", "accuracy"] and out["accuracy"] == 50.0
    assert list(metrics.glue_metrics(("spearman", "pearson"), [0.0, 1, 2], [0.0, 2, 1])) == ["pearson", "spearman"]
    with pytest.raises(BertbenchError, match="unknown GLUE metric 'exact'"):
        metrics.glue_metrics(("exact",), golds, preds)


# ---- SQuAD ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, normalized", [
    ("The  Quick, brown fox!", "quick brown fox"),
    ("theater", "theater"),  # 'the' only as a whole word
    ("An apple a day", "apple day"),
    ("THE END", "end"),  # lower-cased before articles go
    ("U.S.A.", "usa"),
    ("  Denver\tBroncos\n", "denver broncos"),
    ("rock-and-roll", "rockandroll"),  # punctuation is deleted, not replaced by space
])
def test_normalize_answer(text, normalized):
    assert metrics.normalize_answer(text) == normalized


def test_squad_v1_exact_and_f1_by_hand():
    golds = {"q1": ["the Denver Broncos"], "q2": ["Denver Broncos", "Broncos"], "q3": ["Carolina Panthers"],
             "q4": ["a cat"]}
    preds = {"q1": "Denver Broncos.",  # EM 1 (article, punctuation)
             "q2": "Broncos Broncos",  # EM 0; best F1 vs "Broncos": p=1/2, r=1 -> 2/3
             "q3": "Panthers",  # F1: p=1, r=1/2 -> 2/3
             "q4": "the"}  # normalizes to "" -> F1 0, EM 0
    result = metrics.squad_v1(golds, preds)
    assert result["exact"] == pytest.approx(100 * 1 / 4)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 2 / 3 + 0) / 4)


def test_squad_v1_missing_prediction_counts_zero_like_the_official_script():
    assert metrics.squad_v1({"a": ["x"], "b": ["y"]}, {"a": "x"}) == {"exact": 50.0, "f1": 50.0}


def test_squad_v2_no_answer_rules_and_breakdown():
    golds = {"q1": ["Paris"], "q2": [], "q3": ["the Loire river"]}
    perfect = metrics.squad_v2(golds, {"q1": "paris", "q2": "", "q3": "Loire River"})
    assert (perfect["exact"], perfect["f1"]) == (100, 100)
    assert (perfect["HasAns_total"], perfect["NoAns_total"]) == (2, 1)
    wrong = metrics.squad_v2(golds, {"q1": "", "q2": "Lyon", "q3": "the Loire"})
    assert wrong["exact"] == 0.0
    assert wrong["f1"] == pytest.approx(100 * (0 + 0 + 2 * (1 * 0.5) / 1.5) / 3)  # "loire" vs "loire river"
    assert wrong["NoAns_f1"] == 0.0 and "best_f1" not in wrong
    # gold answers that normalize to "" count as no-answer gold (official rule)
    assert metrics.squad_v2({"q": ["the"]}, {"q": ""})["exact"] == 100.0


def test_squad_v2_threshold_search_by_hand():
    golds = {"q1": ["Paris"], "q2": []}
    preds = {"q1": "Paris", "q2": "Lyon"}
    na = {"q1": 0.2, "q2": 0.9}
    # default threshold 1.0 answers both: q1 right, q2 wrong
    assert metrics.squad_v2(golds, preds, na)["exact"] == 50.0
    # threshold 0.5 turns q2 into "" -> right
    assert metrics.squad_v2(golds, preds, na, na_prob_thresh=0.5)["exact"] == 100.0
    # find_best_thresh: start at #no-answer = 1; q1 (0.2) adds 1 -> 2 (best, thresh 0.2); q2 adds -1
    best = metrics.squad_v2(golds, preds, na)
    assert (best["best_exact"], best["best_exact_thresh"]) == (100.0, 0.2)
    assert metrics.find_best_thresh(preds, {"q1": 0, "q2": 0}, na, {"q1": True, "q2": False}) == (50.0, 0.0)


def test_squad_errors():
    with pytest.raises(BertbenchError, match="no prediction for question q2"):
        metrics.squad_v2({"q1": ["a"], "q2": []}, {"q1": "a"})
    with pytest.raises(BertbenchError, match="squad2"):
        metrics.squad_v1({"q1": []}, {"q1": ""})


# ---- CoNLL (conlleval) ----------------------------------------------------------------------------
def _entity_counts(gold, pred):
    result = metrics.conlleval([list(zip(g, p, strict=True)) for g, p in zip(gold, pred, strict=True)])
    return result["found_gold"], result["found_pred"], result["correct"]


@pytest.mark.parametrize("gold, pred, counts", [
    # IOB1: B- only between two adjacent entities of one type -> 2 entities; IOB2 prediction matches
    ([["I-PER", "I-PER", "B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "B-PER", "I-PER", "O"]], (2, 2, 2)),
    # merging the two adjacent entities finds neither
    ([["I-PER", "I-PER", "B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "I-PER", "I-PER", "O"]], (2, 1, 0)),
    # a type change I-PER I-LOC starts a new entity
    ([["I-PER", "I-LOC"]], [["B-PER", "B-LOC"]], (2, 2, 2)),
    # IOB1 I- after O starts an entity
    ([["O", "I-ORG", "I-ORG", "O"]], [["O", "B-ORG", "I-ORG", "O"]], (1, 1, 1)),
    # nested-looking: an I-ORG after a LOC is a new ORG entity, nothing nests
    ([["B-ORG", "I-ORG", "I-ORG"]], [["B-ORG", "B-LOC", "I-ORG"]], (1, 3, 0)),
    # boundaries must match exactly: a shorter span is wrong
    ([["B-LOC", "I-LOC", "O"]], [["B-LOC", "O", "O"]], (1, 1, 0)),
    # sentence breaks end entities: two sentences, each with one PER
    ([["I-PER"], ["I-PER"]], [["B-PER"], ["B-PER"]], (2, 2, 2)),
])
def test_conlleval_hand_cases(gold, pred, counts):
    assert _entity_counts(gold, pred) == counts


def test_conlleval_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "B-PER"]]  # 5 entities
    pred = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "B-LOC", "O", "O"]]  # 4 found, 3 right
    result = metrics.ner_metrics(gold, pred)
    assert result["precision"] == pytest.approx(75.0)
    assert result["recall"] == pytest.approx(60.0)
    assert result["f1"] == pytest.approx(2 * 75 * 60 / 135)
    assert result["accuracy"] == pytest.approx(100 * 5 / 8)  # tags equal on 4 + 1 tokens
    assert result["f1_PER"] == pytest.approx(2 * 100 * 50 / 150) and result["f1_MISC"] == 0.0


def test_conlleval_agrees_with_seqeval_default_mode():
    from seqeval.metrics import f1_score, precision_score, recall_score

    rng = random.Random(0)
    tags = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "B-MISC"]
    for _ in range(300):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 9))] for _ in range(rng.randint(1, 4))]
        pred = [[rng.choice(tags) for _ in sent] for sent in gold]
        ours = metrics.ner_metrics(gold, pred)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = (f1_score(gold, pred), precision_score(gold, pred), recall_score(gold, pred))
        assert (ours["f1"], ours["precision"], ours["recall"]) == pytest.approx([100 * v for v in theirs])


def test_ner_metrics_length_errors():
    with pytest.raises(BertbenchError, match="sentence 0: 1 predicted tags for 2 words"):
        metrics.ner_metrics([["O", "O"]], [["O"]])


def test_grid_point_is_chosen_by_its_mean_over_seeds_not_by_per_seed_maxima():
    from bertbench.evaluation.selection import best_point

    # point 0: mean 79.8; point 1: mean 79.0 but the single best seed (81.0)
    assert best_point([[80.1, 79.5], [81.0, 77.0]]) == 0
    assert best_point([[80.1, 79.5], [81.0, 77.0]], higher_is_better=False) == 1
    assert best_point([[1.0], [1.0]]) == 0  # ties: grid order
    assert best_point([[None], [70.0, float("nan")]]) == 1  # a point without values is never chosen
