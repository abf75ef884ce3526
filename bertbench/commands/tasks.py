"""`bertbench tasks`: the downstream tasks: kind, metrics with their direction, where the data comes from.

Each task's files are named as they lie under a data root (the standard layouts of bertbench.tasks),
and marked as present or not in the bundled sample and in the data root given by --data-dir or
$BERTBENCH_DATA (bertbench.resources.resolve_data_dir, the one place that decides it).
"""

import os
import sys

from bertbench.evaluation.metrics import higher_is_better
from bertbench.files import read_text_utf8
from bertbench.resources import DATA_ENV, SAMPLE_DIR, resolve_data_dir
from bertbench.tasks import TASKS, conll, glue, squad, swag
from bertbench.tasks.base import missing_file

_PROXIED = {"qnli_devsplit": "qnli", "squad1_devsplit": "squad1"}  # proxies: an 80/20 split of dev


def add_arguments(parser):
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"also mark which files this data root holds (default: ${DATA_ENV} when set)")


def data_files(name):
    """{split: [accepted paths relative to a data root]} of task `name`, train and its eval splits."""
    spec = TASKS[name]
    if name in _PROXIED:  # both splits come from the dev file of the real task
        dev = data_files(_PROXIED[name])["dev"]
        return {"train": dev, "dev": dev}
    splits = ("train",) + tuple(spec.eval_splits)
    if name in glue.FORMATS:
        fmt = glue.FORMATS[name]
        return {s: [f"glue/{fmt.folder}/{dict(fmt.files)[s]}"] for s in splits}
    if spec.kind == "span":
        version = squad.squad_version(name)
        return {s: [f"squad/{n}" for n in squad.FILES[(version, s)]] for s in splits}
    if name == "conll2003":
        return {s: [f"conll2003/{n}" for n in conll.FILES[s]] for s in splits}
    return {s: [f"swag/{swag.FILES[s]}"] for s in splits}


def check_task_files(name, data_dir=None, test=False):
    """Each file task `name` reads (train, eval splits; test too when `test`) exists under the data root
    and is UTF-8 text: a one-line error naming the first that is missing or undecodable."""
    root = resolve_data_dir(data_dir)
    files = data_files(name)
    if test and name in glue.FORMATS:
        files["test"] = [path.rsplit("/", 1)[0] + "/" + dict(glue.FORMATS[name].files)["test"]
                         for path in files["train"]]
    for split, paths in files.items():
        found = [root / path for path in paths if (root / path).is_file()]
        if not found:
            what = f"GLUE {glue.FORMATS[name].folder}" if name in glue.FORMATS else name
            raise missing_file(" or ".join(str(root / path) for path in paths), f"{what} {split} file")
        read_text_utf8(found[0])


def availability(files, root):
    """'yes' when every split has one of its files under `root`, 'partial' when some do, else 'no'."""
    found = [any((root / path).is_file() for path in paths) for paths in files.values()]
    return "yes" if all(found) else "partial" if any(found) else "no"


def files_text(files):
    """'glue/MRPC/{train,dev}.tsv': the standard name of each split's file, one folder factored out."""
    names = list(dict.fromkeys(paths[0] for paths in files.values()))
    folders = {name.rpartition("/")[0] for name in names}
    if len(names) == 1 or len(folders) > 1:
        return ", ".join(names)
    stems = [name.rpartition("/")[2] for name in names]
    suffixes = {stem.rpartition(".")[2] for stem in stems}
    if len(suffixes) == 1:
        return f"{folders.pop()}/{{{','.join(stem.rpartition('.')[0] for stem in stems)}}}.{suffixes.pop()}"
    return f"{folders.pop()}/{{{','.join(stems)}}}"


def metrics_text(spec, up="↑", down="↓"):
    """'f1↑ (main), accuracy↑': the main metric first, each with its direction."""
    names = [spec.main_metric] + [m for m in spec.metrics if m != spec.main_metric]
    return ", ".join(f"{m}{up if higher_is_better(m) else down}" + (" (main)" if m == spec.main_metric else "")
                     for m in names)


def rows(data_dir=None, arrows=("↑", "↓")):
    """One dict per task: name, kind, metrics, files, sample (and data, when a data root is given)."""
    root = resolve_data_dir(data_dir) if data_dir or os.environ.get(DATA_ENV) else None
    out = []
    for name, spec in TASKS.items():
        files = data_files(name)
        row = {"task": name, "kind": spec.kind, "metrics": metrics_text(spec, *arrows),
               "files": files_text(files), "sample": availability(files, SAMPLE_DIR)}
        if root is not None:
            row["data"] = availability(files, root)
        row["description"] = spec.description
        out.append(row)
    return out, root


def main(args):
    arrows = ("↑", "↓") if "utf" in (sys.stdout.encoding or "").lower() else ("^", "v")
    table, root = rows(args.data_dir, arrows)
    columns = list(table[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in table)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in table:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())
    print(f"\nfiles: train and dev files under a data root (--data-dir or ${DATA_ENV}; the standard layouts, "
          f"see bertbench/tasks/); sample: present in the bundled ci sample; "
          + (f"data: present in {root}; " if root else "")
          + f"{arrows[0]} higher is better, {arrows[1]} lower. PROXY tasks stand in for data that is not "
            "available here (an 80/20 split of the dev file). A prepared TensorFlow Datasets copy works too: "
            "finetune --source tfds.")
    return 0
