"""`bertbench score TASK --data GOLD --predictions PRED [--na-prob FILE]`: official metrics of files.

Formats (the official ones):
  SQuAD (squad1, squad1_devsplit, squad2): GOLD is the dataset JSON, PRED a JSON object
    {question id: answer text} ("" = no answer, v2.0); --na-prob a JSON object {id: float}.
  GLUE and SWAG: GOLD is the task's dev file (e.g. glue/MRPC/dev.tsv, swag/val.csv), PRED a TSV with
    header `index<TAB>prediction`, one row per gold example; labels as in the data ("1",
    "entailment", a float for STS-B, 0-3 for SWAG).
  CoNLL-2003: PRED is conlleval input (`word ... gold pred` per line, blank line between
    sentences; -DOCSTART- lines are boundaries); with --data, its words and gold chunks must match
    that CoNLL file.
Prints one JSON object of metrics (percentages). Ids or counts that do not match are a one-line error.
"""

import json
from pathlib import Path

from bertbench.evaluation import metrics
from bertbench.errors import BertbenchError
from bertbench.tasks import conll, get_task, glue, squad, swag
from bertbench.tasks.base import data_error, read_tsv, require_file


def add_arguments(parser):
    parser.add_argument("task", help="task name, e.g. mrpc, squad1, squad2, conll2003")
    parser.add_argument("--data", help="gold file in the task's official format (optional for CoNLL)")
    parser.add_argument("--predictions", required=True,
                        help="SQuAD: JSON {id: answer}; GLUE/SWAG: TSV 'index<TAB>prediction'; "
                             "CoNLL: conlleval input 'word ... gold pred'")
    parser.add_argument("--na-prob", help="SQuAD v2.0: JSON {id: no-answer probability or score}")
    parser.add_argument("--na-prob-thresh", type=float, default=1.0,
                        help="SQuAD v2.0: answer '' when the na-prob exceeds this (official default 1.0)")


def main(args):
    result = score_files(args.task, args.data, args.predictions, args.na_prob, args.na_prob_thresh)
    print(json.dumps(result, indent=2))
    return 0


def score_files(task, data, predictions, na_prob=None, na_prob_thresh=1.0):
    """Metrics of a prediction file against a gold file, as the `score` command prints them."""
    spec = get_task(task)
    require_file(predictions, "prediction file", tfds=False)
    if spec.kind == "tagging":
        golds, preds = read_conll_predictions(predictions, data)
        return metrics.ner_metrics(golds, preds)
    if not data:
        raise BertbenchError(f"score {task} needs --data GOLD (the task's dev file in its official format)")
    require_file(data, "gold file", tfds=False)
    if spec.kind == "span":
        examples = [ex for _, exs in squad.read_squad_articles(data) for ex in exs]
        preds = _read_json_map(predictions, str, "an answer string")
        _check_ids({ex.qid for ex in examples}, preds, predictions)
        probs = None
        if na_prob:
            probs = _read_json_map(require_file(na_prob, "na-prob file", tfds=False), float, "a number")
            _check_ids({ex.qid for ex in examples}, probs, na_prob)
        return score_examples(task, examples, preds, probs, na_prob_thresh)
    if spec.kind == "multiple_choice":
        examples = swag.read_swag_file(data, "dev")
    else:
        examples = glue.read_glue_file("qnli" if task == "qnli_devsplit" else task, "dev", Path(data))
    preds = read_index_predictions(predictions, len(examples), spec)
    return score_examples(task, examples, preds)


def score_examples(task, examples, predictions, na_probs=None, na_prob_thresh=1.0):
    """Metrics of in-memory predictions: a list in example order (labels, floats, tag sequences,
    choice indices) or, for SQuAD, {qid: text}."""
    spec = get_task(task)
    if spec.kind == "span":
        golds = squad.gold_answers(examples)
        if task == "squad2":
            return metrics.squad_v2(golds, predictions, na_probs, na_prob_thresh)
        return metrics.squad_v1(golds, predictions)
    if spec.kind == "tagging":
        return metrics.ner_metrics([ex.tags for ex in examples], list(predictions))
    golds = [ex.label for ex in examples]
    if any(g is None for g in golds):
        raise BertbenchError(f"{task}: the gold examples have no labels (a test split?); score a dev split")
    if spec.kind == "multiple_choice":
        return {"accuracy": metrics.accuracy(golds, [int(p) for p in predictions])}
    return metrics.glue_metrics(spec.metrics, golds, list(predictions))


# ---- prediction files ----------------------------------------------------------------------
def read_index_predictions(path, num_examples, spec):
    """A GLUE-submission TSV (`index<TAB>prediction`) -> predictions in index order."""
    rows = [(line, row) for line, row in read_tsv(path) if row]
    if not rows or [c.strip() for c in rows[0][1]] != ["index", "prediction"]:
        raise data_error(path, 1, "header must be 'index<TAB>prediction'", "one row per gold example")
    by_index = {}
    for line, row in rows[1:]:
        if len(row) != 2 or not row[0].strip().isdigit():
            raise data_error(path, line, "expected '<index><TAB><prediction>' with an integer index")
        index = int(row[0])
        if index in by_index:
            raise data_error(path, line, f"index {index} appears twice")
        by_index[index] = _parse_prediction(row[1].strip(), spec, path, line)
    if sorted(by_index) != list(range(num_examples)):
        raise data_error(path, None, f"{len(by_index)} predictions with indices "
                         f"{_span(sorted(by_index))} for {num_examples} gold examples",
                         f"give exactly indices 0..{num_examples - 1}")
    return [by_index[i] for i in range(num_examples)]


def _parse_prediction(value, spec, path, line):
    if spec.kind == "regression":
        try:
            return float(value)
        except ValueError:
            raise data_error(path, line, f"prediction {value!r} is not a number") from None
    if value not in spec.labels:
        raise data_error(path, line, f"prediction {value!r} is not one of {', '.join(spec.labels)}")
    return int(value) if spec.kind == "multiple_choice" else value


def _span(indices):
    return f"{indices[0]}..{indices[-1]}" if indices else "(none)"


def _read_json_map(path, kind, what):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise data_error(path, err.lineno, f"invalid JSON ({err.msg})") from err
    if not isinstance(data, dict):
        raise data_error(path, None, "expected a JSON object {question id: value}")
    for qid, value in data.items():
        ok = isinstance(value, str) if kind is str else (isinstance(value, (int, float))
                                                        and not isinstance(value, bool))
        if not ok:
            shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
            raise data_error(path, None, f"value for {qid!r} is {shown}, expected {what}",
                             "the file must map each question id to its value")
    return {qid: kind(value) for qid, value in data.items()}


def _check_ids(gold_ids, found, path):
    missing = sorted(gold_ids - set(found))
    extra = sorted(set(found) - gold_ids)
    if missing or extra:
        parts = ([f"{len(missing)} gold question(s) missing, e.g. {missing[0]}"] if missing else []) + \
                ([f"{len(extra)} unknown id(s), e.g. {extra[0]}"] if extra else [])
        raise data_error(path, None, "; ".join(parts), "give one entry per question of the gold file")


def read_conll_predictions(path, data=None):
    """conlleval input -> (gold tag sequences, predicted tag sequences); checked against --data."""
    sentences, current = [], []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if current:
                    sentences.append(current)
                current = []
                continue
            if len(fields) < 3:
                raise data_error(path, line_number, f"expected 'word ... gold pred', found {line.strip()!r}")
            current.append((line_number, fields[0], fields[-2], fields[-1]))
    if current:
        sentences.append(current)
    if not sentences:
        raise data_error(path, None, "no tagged tokens found", "expected 'word ... gold pred' lines")
    golds = [[tok[2] for tok in sent] for sent in sentences]
    if data:
        reference = conll.read_conll_file(require_file(data, "CoNLL gold file", tfds=False), "dev")
        if len(reference) != len(sentences):
            raise data_error(path, None, f"{len(sentences)} sentences but {data} has {len(reference)}")
        for sent, ref in zip(sentences, reference):
            pred_gold = conll.iob1_to_iob2([tok[2] for tok in sent])
            if [tok[1] for tok in sent] != list(ref.words) or pred_gold != list(ref.tags):
                raise data_error(path, sent[0][0], f"sentence differs from {data} (words or gold tags)",
                                 "write predictions in the gold file's order")
    return golds, [[tok[3] for tok in sent] for sent in sentences]
