"""Official metrics of prediction files (the `score` command's work; CLI: bertbench.commands.score).

Formats (the official ones, written by fine-tuning and read back by the task's kind):
  SQuAD (squad1, squad1_devsplit, squad2): GOLD is the dataset JSON, PRED a JSON object
    {question id: answer text} ("" = no answer, v2.0); --na-prob a JSON object {id: float}.
    As evaluate-v1.1.py, PRED may answer only part of the questions: the others score 0 and still
    count; the result's `missing` is their number (evaluate-v2.0.py itself stops on such a file;
    squad2 follows v1.1's rule). An id the gold file lacks is an error.
  GLUE and SWAG: GOLD is the task's dev file (e.g. glue/MRPC/dev.tsv, swag/val.csv), PRED a TSV with
    header `index<TAB>prediction`, one row per gold example; labels as in the data ("1",
    "entailment", a float for STS-B, 0-3 for SWAG).
  CoNLL-2003: PRED is conlleval input (`word ... gold pred` per line, blank line between
    sentences; -DOCSTART- lines are boundaries); with --data, its words and gold chunks must match
    that CoNLL file.
Otherwise, ids or counts that do not match are a one-line error.
"""

from pathlib import Path

from bertbench.errors import BertbenchError
from bertbench.files import read_text_utf8
from bertbench.finetuning.kinds import kind_of
from bertbench.tasks import get_task


def score_files(task, data, predictions, na_prob=None, na_prob_thresh=1.0):
    """Metrics (percentages) of a prediction file against a gold file, as `bertbench score` prints them."""
    spec = get_task(task)
    for path, what, flag in ((predictions, "prediction file", "--predictions"), (data, "gold file", "--data"),
                             (na_prob, "no-answer probability file", "--na-prob")):
        if path is not None:  # every file is there and is UTF-8 text before any is parsed
            if not Path(path).is_file():
                raise BertbenchError(f"{what} not found: {path}; check the {flag} path")
            read_text_utf8(path)
    kind = kind_of(spec)
    examples, preds = kind.read_predictions(spec, predictions, data, na_prob=na_prob,
                                            na_prob_thresh=na_prob_thresh)
    return kind.score(spec, examples, preds)
