"""`bertbench score TASK --data GOLD --predictions PRED [--na-prob FILE]`: official metrics of files.

Prints one JSON object of metrics (percentages); formats: bertbench.evaluation.score.
"""

import json

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
    print(json.dumps(result, indent=2))
    return 0
