"""`bertbench submission DIR --out glue.zip`: check a folder of GLUE test predictions and zip it.

DIR must hold the GLUE server's 11 files (CoLA.tsv ... AX.tsv, as `finetune --predict-test DIR`
writes them), each with the official number of rows and valid values; a missing one is a one-line
error (exit 2) naming the files and the command that writes them. Prints the zip's path and rows.
"""

import json

from bertbench.files import check_writable_file
from bertbench.finetuning.submission import zip_submission


def add_arguments(parser):
    parser.add_argument("folder", metavar="DIR", help="folder of GLUE test prediction files "
                                                      "(written by `finetune --predict-test DIR`)")
    parser.add_argument("--out", default="glue.zip", help="zip file to write (default: glue.zip)")


def main(args):
    check_writable_file(args.out, "--out")
    out, counts = zip_submission(args.folder, args.out)
    print(json.dumps({"zip": str(out), "files": counts}, indent=2))
    return 0
