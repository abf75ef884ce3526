"""`bertbench score TASK --data GOLD --predictions PRED [--na-prob FILE]`: official metrics of files.

Prints one JSON object of metrics (percentages); formats: bertbench.evaluation.score. A SQuAD file
may answer only part of the questions: as evaluate-v1.1.py, the others score 0 and still count;
their number is `missing` in the output and a note on stderr says so.
"""

import json
import sys

from bertbench.evaluation.score import score_files


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
    if result.get("missing"):
        print(f"bertbench: note: {args.predictions} has no answer for {result['missing']} question(s) of "
              f"{args.data}; they score 0 (as in evaluate-v1.1.py)", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0
