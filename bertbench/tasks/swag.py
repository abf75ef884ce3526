"""SWAG: the CSV files of rowanz/swagaf (`<root>/swag/{train,val,test}.csv`).

Header (the files were written by pandas, so the first column is an unnamed index):
`,video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label`
(test.csv has no `label`). Columns are found by name, so a file without the index column reads too.
As in the paper (and the Hugging Face `run_swag.py` port of it), segment A is `sent1` and each of
the four candidates is `sent2 + " " + ending_i`. There is no TFDS SWAG dataset.
"""

import csv

from bertbench.errors import BertbenchError
from bertbench.resources import resolve_data_dir
from bertbench.tasks.base import ChoiceExample, data_error, require_file

FILES = {"train": "train.csv", "dev": "val.csv", "test": "test.csv"}
NUM_CHOICES = 4
REQUIRED = ("fold-ind", "sent1", "sent2") + tuple(f"ending{i}" for i in range(NUM_CHOICES))


def read_swag_file(path, split="train"):
    """ChoiceExamples of a swagaf CSV; label None when the file has no `label` column (test)."""
    require_file(path, f"SWAG {split} file", tfds=False)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise data_error(path, 1, "file is empty", "expected the swagaf CSV header")
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            raise data_error(path, 1, f"header lacks column(s) {', '.join(missing)}",
                             "expected ',video-id,fold-ind,startphrase,sent1,sent2,gold-source,"
                             "ending0,ending1,ending2,ending3,label'")
        col = {name: header.index(name) for name in header}
        examples = []
        for row in reader:
            if not row:
                continue
            line = reader.line_num
            if len(row) != len(header):
                raise data_error(path, line, f"expected {len(header)} comma-separated columns, found "
                                 f"{len(row)}", "quote fields that contain commas")
            label = None
            if "label" in col:
                value = row[col["label"]]
                if value not in {str(i) for i in range(NUM_CHOICES)}:
                    raise data_error(path, line, f"label {value!r} is not one of 0, 1, 2, 3")
                label = int(value)
            start = row[col["sent2"]]
            endings = tuple(f"{start} {row[col[f'ending{i}']]}".strip() for i in range(NUM_CHOICES))
            guid = f"{split}-{row[col['fold-ind']]}"
            examples.append(ChoiceExample(guid, row[col["sent1"]], endings, label))
    return examples


def load(name, split, data_dir=None, source="files"):
    if source == "tfds":
        raise BertbenchError("SWAG is not available in TensorFlow Datasets; use source='files' with "
                             "rowanz/swagaf's train.csv/val.csv under <data-dir>/swag/")
    return read_swag_file(resolve_data_dir(data_dir) / "swag" / FILES[split], split)


def read_gold(name, path):
    """The examples of a swagaf CSV gold file (for `bertbench score`)."""
    return read_swag_file(path, "dev")
