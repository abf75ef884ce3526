"""SQuAD v1.1 / v2.0: reading the official JSON (windows and answers: bertbench.finetuning.squad_windows).

Files live in `<root>/squad/`: `train-v1.1.json`, `dev-v1.1.json`, `train-v2.0.json`, `dev-v2.0.json`;
the reconstructed dev files of ../shared/data (`dev-v1.1.reconstructed.json`, ...) are accepted too.
TFDS: `squad/v1.1`, `squad/v2.0`.

Proxy: `squad1_devsplit` splits the articles of dev-v1.1 (train-v1.1.json is not available here)
with a fixed seed: 80% of the articles for training, 20% for evaluation.
"""

import json
import random

from bertbench.errors import BertbenchError
from bertbench.files import read_json_utf8
from bertbench.resources import resolve_data_dir
from bertbench.tasks import tfds_source
from bertbench.tasks.base import SquadExample, data_error, missing_file, require_file

FILES = {  # (version, split) -> accepted file names under <root>/squad/, first = standard name
    ("1.1", "train"): ("train-v1.1.json",),
    ("1.1", "dev"): ("dev-v1.1.json", "dev-v1.1.reconstructed.json"),
    ("2.0", "train"): ("train-v2.0.json",),
    ("2.0", "dev"): ("dev-v2.0.json", "dev-v2.0.reconstructed.json"),
}
DEVSPLIT_SEED = 0  # fixed: the proxy's split is part of its definition
DEVSPLIT_TRAIN_FRACTION = 0.8


# ---- reading --------------------------------------------------------------------------------
def squad_path(version, split, data_dir=None):
    folder = resolve_data_dir(data_dir) / "squad"
    names = FILES[(version, split)]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise missing_file(" or ".join(str(folder / n) for n in names), f"SQuAD v{version} {split} file")


def read_squad_articles(path):
    """[(title, [SquadExample, ...]), ...] per article of a SQuAD JSON file, in file order."""
    require_file(path, "SQuAD file")
    data = read_json_utf8(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise data_error(path, None, "no top-level 'data' list", "expected the official SQuAD JSON layout")
    articles = []
    for a, article in enumerate(data["data"]):
        where = f"data[{a}]"
        _need(path, where, article, dict)
        title = article.get("title", "")
        examples = []
        for p, paragraph in enumerate(_need(path, f"{where}.paragraphs", article.get("paragraphs"), list)):
            at = f"{where}.paragraphs[{p}]"
            _need(path, at, paragraph, dict)
            context = _need(path, f"{at}.context", paragraph.get("context"), str)
            for q, qa in enumerate(_need(path, f"{at}.qas", paragraph.get("qas"), list)):
                examples.append(_example(path, f"{at}.qas[{q}]", title, context, qa))
        articles.append((title, examples))
    return articles


_KINDS = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def _need(path, where, value, kind):
    """`value` if it is of type `kind`, else a one-line error naming the file and the JSON path."""
    if not isinstance(value, kind) or isinstance(value, bool):
        got = "missing" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"
        raise data_error(path, None, f"{where} must be {_KINDS[kind]}, got {got}",
                         "expected the official SQuAD JSON layout (data[].paragraphs[].qas[])")
    return value


def _example(path, where, title, context, qa):
    _need(path, where, qa, dict)
    qid = _need(path, f"{where}.id", qa.get("id"), str)
    question = _need(path, f"{where}.question", qa.get("question"), str)
    impossible = bool(qa.get("is_impossible", False))
    answers = []
    for i, answer in enumerate([] if impossible else _need(path, f"{where}.answers", qa.get("answers"), list)):
        _need(path, f"{where}.answers[{i}]", answer, dict)
        text = _need(path, f"{where}.answers[{i}].text", answer.get("text"), str)
        start = _need(path, f"{where}.answers[{i}].answer_start", answer.get("answer_start"), int)
        if not 0 <= start <= len(context) - len(text):
            raise data_error(path, None, f"question {qid}: answer_start {start!r} is outside "
                             f"its context", "answer_start is a character offset into the context")
        answers.append((text, start))
    return SquadExample(qid, question, context, tuple(answers), impossible, title)


def split_articles(articles, seed=DEVSPLIT_SEED, train_fraction=DEVSPLIT_TRAIN_FRACTION):
    """(train, eval) example lists from a seeded shuffle of whole articles."""
    order = list(range(len(articles)))
    random.Random(seed).shuffle(order)
    n_train = min(max(round(train_fraction * len(order)), 1), len(order) - 1)  # both halves non-empty
    pick = lambda idx: [ex for i in sorted(idx) for ex in articles[i][1]]  # noqa: E731
    return pick(order[:n_train]), pick(order[n_train:])


def tfds_to_example(record):
    """A SquadExample from one TFDS `squad/v1.1` or `squad/v2.0` record."""
    text = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)  # noqa: E731
    answers = record.get("answers", {"text": [], "answer_start": []})
    impossible = bool(record.get("is_impossible", False))
    pairs = () if impossible else tuple(
        (text(t), int(s)) for t, s in zip(answers["text"], answers["answer_start"]))
    return SquadExample(text(record["id"]), text(record["question"]), text(record["context"]),
                        pairs, impossible, text(record.get("title", "")))


def squad_version(name):
    """The SQuAD version a task name reads and is scored with: "2.0" (squad2) or "1.1"."""
    return "2.0" if name == "squad2" else "1.1"


def load(name, split, data_dir=None, source="files"):
    version = squad_version(name)
    if split == "test":
        raise BertbenchError(f"task {name} has no labelled test split (SQuAD's is hidden); use 'dev'")
    if name == "squad1_devsplit":
        if source == "tfds":
            records = tfds_source.load_records("squad/v1.1", "validation", data_dir)
            by_title = {}
            for ex in map(tfds_to_example, records):
                by_title.setdefault(ex.title, []).append(ex)
            articles = list(by_title.items())
        else:
            articles = read_squad_articles(squad_path("1.1", "dev", data_dir))
        train, held = split_articles(articles)
        return train if split == "train" else held
    if source == "tfds":
        tfds_split = "train" if split == "train" else "validation"
        return [tfds_to_example(r) for r in tfds_source.load_records(f"squad/v{version}", tfds_split,
                                                                     data_dir)]
    return [ex for _, exs in read_squad_articles(squad_path(version, split, data_dir)) for ex in exs]


def gold_answers(examples):
    """{qid: [answer texts]} for bertbench.evaluation.metrics (empty list for impossible questions)."""
    return {ex.qid: [text for text, _ in ex.answers] for ex in examples}


def read_gold(name, path):
    """The questions of a SQuAD JSON gold file, in file order (for `bertbench score`)."""
    return [ex for _, exs in read_squad_articles(path) for ex in exs]
