"""Where data comes from: an explicit --data-dir, $BERTBENCH_DATA, or the bundled `ci` sample.

`resolve_data_dir` is the only place that decides it; commands and the runner call it.
"""

import os
from pathlib import Path

from bertbench.errors import BertbenchError

SAMPLE_DIR = Path(__file__).parent / "data" / "sample"
DATA_ENV = "BERTBENCH_DATA"


def sample_path(name):
    """Path of a file or folder in the bundled real-data sample (`bertbench/data/sample/`)."""
    path = SAMPLE_DIR / name
    if not path.exists():
        raise BertbenchError(f"bundled sample file missing: {path}; reinstall bertbench (pip install -e .)")
    return path


def resolve_data_dir(data_dir=None, *, from_env=True, required_by=None):
    """The data root: `data_dir` if given, else $BERTBENCH_DATA, else the bundled sample.

    from_env=False skips $BERTBENCH_DATA (a `ci`-scale run reads the sample whatever the environment
    says); `required_by` (e.g. "scale 'small'") names who needs real data: then there is no sample
    fallback, and a missing root is a one-line error. The root holds the standard layouts:
    `glue/<TASK>/`, `squad/`, `conll2003/`, `swag/`, `corpus/`.
    """
    chosen = data_dir or (os.environ.get(DATA_ENV) if from_env else None)
    if not chosen and required_by:
        raise BertbenchError(f"{required_by} runs on real data: pass --data-dir DIR (e.g. ../shared/data) "
                             f"or set ${DATA_ENV}")
    if not chosen or chosen == "sample":
        return SAMPLE_DIR
    path = Path(chosen).expanduser()
    if not path.is_dir():
        source = "--data-dir" if data_dir else f"${DATA_ENV}"
        raise BertbenchError(f"data directory not found: {path} (from {source}); pass an existing "
                             f"folder with --data-dir, or omit it to use the bundled sample")
    return path
