"""Rebuild the task part of the bundled `ci` sample (bertbench/data/sample/{glue,squad,conll2003}/)
from the real data in ../shared/data. Deterministic: rerunning gives byte-identical files.

    /work/venv/bin/python tests/data/tasks/make_task_sample.py [SHARED_DATA] [SAMPLE_DIR]

GLUE rows and CoNLL lines are copied verbatim (byte for byte, header/BOM included); SQuAD articles
are copied whole, re-serialised with json.dumps(ensure_ascii=False).
"""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from bertbench.tasks import glue  # noqa: E402

# task folder -> (train rows, dev rows); header lines are extra. None = all rows.
GLUE_ROWS = {"SST-2": (2000, 400), "CoLA": (2000, 400), "STS-B": (1500, 400), "MRPC": (800, None),
             "RTE": (800, None), "WNLI": (None, None)}
QNLI_ROWS = (800, 400)  # train and dev both drawn from QNLI dev.tsv, split by question
SQUAD = {"1.1": (4, 2), "2.0": (4, 2)}  # (train articles, dev articles): the smallest articles
CONLL = {"eng.train": 1500, "eng.testa": 400, "eng.testb": 400}  # sentences, cut at a document end


def lines(path):
    return path.read_bytes().splitlines(keepends=True)


def take(rows, n):
    return rows if n is None else rows[:n]


def make_glue(src, dst):
    for task, (n_train, n_dev) in GLUE_ROWS.items():
        (dst / task).mkdir(parents=True, exist_ok=True)
        header = 0 if task == "CoLA" else 1
        for split, n in (("train", n_train), ("dev", n_dev)):
            rows = lines(src / task / f"{split}.tsv")
            (dst / task / f"{split}.tsv").write_bytes(b"".join(rows[:header] + take(rows[header:], n)))
    rows = lines(src / "QNLI" / "dev.tsv")
    examples = glue.read_glue_file("qnli", "dev", src / "QNLI" / "dev.tsv")
    train, held = glue.split_by_question(examples)  # same split as the qnli_devsplit proxy
    train_ids = {int(ex.guid.split("-")[1]) for ex in train}
    held_ids = {int(ex.guid.split("-")[1]) for ex in held}
    (dst / "QNLI").mkdir(parents=True, exist_ok=True)
    for split, ids, n in (("train", train_ids, QNLI_ROWS[0]), ("dev", held_ids, QNLI_ROWS[1])):
        body = [row for i, row in enumerate(rows[1:]) if i in ids][:n]
        (dst / "QNLI" / f"{split}.tsv").write_bytes(b"".join(rows[:1] + body))


def make_squad(src, dst):
    """Whole articles, smallest first; no title is in a dev file and a train file of either version."""
    dst.mkdir(parents=True, exist_ok=True)
    data = {v: json.loads((src / f"dev-v{v}.reconstructed.json").read_text(encoding="utf-8"))["data"]
            for v in SQUAD}
    size = lambda a: len(json.dumps(a, ensure_ascii=False))  # noqa: E731
    order = {v: sorted(range(len(arts)), key=lambda i: (size(arts[i]), i)) for v, arts in data.items()}
    dev_titles = [data["1.1"][i]["title"] for i in order["1.1"][:SQUAD["1.1"][1]]]
    picks = {}
    for version, (n_train, n_dev) in SQUAD.items():
        arts = data[version]
        dev = [i for i in order[version] if arts[i]["title"] in dev_titles]
        dev += [i for i in order[version] if i not in dev][:n_dev - len(dev)]
        dev_titles += [arts[i]["title"] for i in dev if arts[i]["title"] not in dev_titles]
        picks[version] = dev[:n_dev]
    for version, (n_train, n_dev) in SQUAD.items():
        arts = data[version]
        train = [i for i in order[version] if arts[i]["title"] not in dev_titles][:n_train]
        for split, picked in (("train", train), ("dev", picks[version])):
            chosen = [arts[i] for i in sorted(picked)]
            text = json.dumps({"version": version, "data": chosen}, ensure_ascii=False)
            (dst / f"{split}-v{version}.json").write_text(text + "\n", encoding="utf-8")
            print(f"squad v{version} {split}: articles {sorted(picked)} "
                  f"({', '.join(a['title'] for a in chosen)})")


def make_conll(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for name, n_sentences in CONLL.items():
        rows, out, sentences, in_sentence = lines(src / name), [], 0, False
        for row in rows:
            out.append(row)
            if row.startswith(b"-DOCSTART-"):
                if sentences >= n_sentences:  # this variant puts -DOCSTART- at each document's end
                    break
                continue
            blank = not row.strip()
            sentences += int(blank and in_sentence)
            in_sentence = not blank
        (dst / name).write_bytes(b"".join(out))
        print(f"conll {name}: {sentences} sentences, {len(out)} lines")


if __name__ == "__main__":
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data"
    sample = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "bertbench" / "data" / "sample"
    make_glue(shared / "glue", sample / "glue")
    make_squad(shared / "squad", sample / "squad")
    make_conll(shared / "conll2003", sample / "conll2003")
