"""Reading task data from an already prepared TensorFlow Datasets copy; never downloads.

`data_dir` is TFDS's own data folder (None: TFDS's default, `$TFDS_DATA_DIR` or
`~/tensorflow_datasets`). Prepare a dataset elsewhere with `tfds build glue/mrpc` (or
`tfds.builder(name).download_and_prepare()`) and copy the folder here. The per-family
`tfds_to_example` functions (glue.py, squad.py, conll.py) turn the records into examples.
"""

from bertbench.errors import BertbenchError


def load_records(name, split, data_dir=None):
    """All records of a prepared TFDS split as numpy dicts (text features are bytes)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # DatasetNotFoundError and friends: report on one line
        raise BertbenchError(f"TFDS dataset '{name}' is not available: {str(err).splitlines()[0]}; "
                             f"use source='files' with the standard layout instead") from err
    if not builder.is_prepared():
        raise BertbenchError(
            f"TFDS dataset '{name}' is not prepared in {builder.data_dir}; bertbench never downloads: "
            f"prepare it elsewhere (`tfds build {name}`) and copy it under the TFDS data dir "
            f"(pass it as data_dir / --data-dir), or use the standard files with --data-dir")
    if split not in builder.info.splits:
        raise BertbenchError(f"TFDS dataset '{name}' has no split '{split}'; it has: "
                             f"{', '.join(sorted(builder.info.splits))}")
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    return list(tfds.as_numpy(dataset))
