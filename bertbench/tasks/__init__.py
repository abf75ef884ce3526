"""Downstream tasks as data: `TASKS` maps a name to a `TaskSpec`; one loader module per family.

    spec = get_task("mrpc")
    train = spec.load("train", data_dir=None, source="files")   # list of PairExample
    dev = spec.load("dev")                                      # first of spec.eval_splits

Data comes from the standard layouts under `bertbench.resources.resolve_data_dir(data_dir)`
(--data-dir > $BERTBENCH_DATA > the bundled `ci` sample), or from a prepared TensorFlow Datasets
copy with `source="tfds"` (then `data_dir` is TFDS's data dir; nothing is ever downloaded).

MNLI is one task with two evaluation splits, `eval_splits = ("dev_matched", "dev_mismatched")`;
a run scores both and reports them as MNLI-m and MNLI-mm (`bertbench.evaluation.metrics.glue_average` takes
them as "mnli_m" and "mnli_mm"). Proxies for data that is not available here are separate names,
so a record says what was really run: `squad1_devsplit` (article-level 80/20 split of SQuAD v1.1
dev) and `qnli_devsplit` (question-level 80/20 split of QNLI dev). MNLI's proxy is simply `rte`.
Metric values are percentages (0-100), as in the paper's tables; their direction comes from
`bertbench.evaluation.metrics.higher_is_better`. How each task KIND is fine-tuned and scored:
`bertbench.finetuning.kinds.KINDS`.
"""

from bertbench.errors import unknown_name
from bertbench.tasks import conll, glue, squad, swag
from bertbench.tasks.base import (ChoiceExample, PairExample, SquadExample, TaggingExample,  # noqa: F401
                                  TaskSpec)

_ACC = ("accuracy",)
_F1_ACC = ("f1", "accuracy")
_SQUAD = ("f1", "exact")


def _glue(name, metrics, main, description, kind="classification", eval_splits=("dev",)):
    labels = glue.FORMATS["qnli" if name == "qnli_devsplit" else name].labels
    return TaskSpec(name, kind, labels, metrics, main, True, glue.load, eval_splits, description, glue.read_gold)


def _squad(name, description):
    return TaskSpec(name, "span", (), _SQUAD, "f1", True, squad.load, description=description,
                    gold_reader=squad.read_gold)


TASKS = {
    "cola": _glue("cola", ("mcc", "accuracy"), "mcc", "CoLA acceptability (Matthews corr.)"),
    "sst2": _glue("sst2", _ACC, "accuracy", "SST-2 sentiment"),
    "mrpc": _glue("mrpc", _F1_ACC, "f1", "MRPC paraphrase (F1)"),
    "stsb": _glue("stsb", ("spearman", "pearson"), "spearman", "STS-B similarity (Spearman)",
                  kind="regression"),
    "qqp": _glue("qqp", _F1_ACC, "f1", "QQP duplicate questions (F1)"),
    "mnli": _glue("mnli", _ACC, "accuracy", "MNLI entailment; scored on matched and mismatched dev",
                  eval_splits=("dev_matched", "dev_mismatched")),
    "qnli": _glue("qnli", _ACC, "accuracy", "QNLI question/sentence entailment"),
    "rte": _glue("rte", _ACC, "accuracy", "RTE entailment (also the proxy for MNLI)"),
    "wnli": _glue("wnli", _ACC, "accuracy", "WNLI (excluded from the GLUE average, as in the paper)"),
    "qnli_devsplit": _glue("qnli_devsplit", _ACC, "accuracy",
                           "PROXY: QNLI dev split 80/20 by question (QNLI train.tsv unavailable)"),
    "squad1": _squad("squad1", "SQuAD v1.1 (official EM/F1)"),
    "squad2": _squad("squad2", "SQuAD v2.0 (official EM/F1, HasAns/NoAns, best threshold)"),
    "squad1_devsplit": _squad("squad1_devsplit", "PROXY: SQuAD v1.1 dev split 80/20 by article "
                                                 "(train-v1.1.json unavailable)"),
    "conll2003": TaskSpec("conll2003", "tagging", conll.TAGS, ("f1", "precision", "recall"), "f1",
                          False, conll.load, description="CoNLL-2003 NER (conlleval entity F1), cased",
                          gold_reader=conll.read_gold),
    "swag": TaskSpec("swag", "multiple_choice", ("0", "1", "2", "3"), _ACC, "accuracy", True, swag.load,
                     description="SWAG grounded commonsense (4-way choice)", gold_reader=swag.read_gold),
}


def get_task(name):
    """The TaskSpec called `name`; an unknown name gives the one-line did-you-mean error."""
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return TASKS[name]
