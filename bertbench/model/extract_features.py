"""Per-token hidden states as JSON lines, like google-research/bert's `extract_features.py` (the
`features` command's library part; the command is bertbench.commands.features).

Input: one example per line, `text_a` or `text_a ||| text_b` (the original's separator).
Output: one JSON object per input line, in the original layout:
    {"linex_index": i, "features": [{"token": "[CLS]", "layers": [{"index": -1, "values": [...]},
    ...]}, ...]}
for the real tokens ([CLS] A [SEP] (B [SEP]), no padding), values rounded to 6 decimals.
Layer indexes address `hidden_states` (L+1 entries): 0 = embedding output, k = output of block k,
-1 = last block (as the original's -1..-4). Note the original's 0 is the first block, not the
embeddings, which it does not expose.
"""

import json
import re
from pathlib import Path

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.files import write_lines_atomic
from bertbench.text.tokenizer import WordPieceTokenizer

_PAIR = re.compile(r"^(.*) \|\|\| (.*)$")  # the original's split of "text_a ||| text_b"


def check_layers(layers, num_layers):
    """Every index must address one of the L+1 hidden states."""
    for index in layers:
        if not -(num_layers + 1) <= index <= num_layers:
            raise BertbenchError(f"--layers index {index} is out of range for a {num_layers}-layer "
                                 f"encoder; use {-(num_layers + 1)}..{num_layers} "
                                 f"(0 = embeddings, -1 = last layer)")


def read_examples(path):
    """[(text_a, text_b or None)] of the input file, one per line (blank lines included, as the
    original)."""
    path = Path(path)
    if not path.is_file():
        raise BertbenchError(f"input file not found: {path}; pass a text file with one "
                             f"'text_a' or 'text_a ||| text_b' per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise BertbenchError(f"{path} is not UTF-8 text (byte {err.start}); re-encode it as UTF-8") from None
    if not lines:
        raise BertbenchError(f"{path} is empty; write one input per line")
    examples = []
    for line in lines:
        line = line.strip()
        match = _PAIR.match(line)
        examples.append((match.group(1), match.group(2)) if match else (line, None))
    return examples


def extract_features(loaded, examples, layers, max_seq_length=128, batch_size=8):
    """Yield the output dict of each example: {"linex_index", "features"} (original layout).

    loaded: a bertbench.model.checkpoint.LoadedEncoder; examples: [(text_a, text_b or None)].
    """
    check_layers(layers, loaded.model_cfg.num_layers)
    if max_seq_length > loaded.model_cfg.max_sequence_length:
        raise BertbenchError(f"--max-seq-length {max_seq_length} exceeds the encoder's "
                             f"{loaded.model_cfg.max_sequence_length} positions; lower it")
    if batch_size <= 0:
        raise BertbenchError(f"--batch-size must be positive, got {batch_size}")
    tokenizer = WordPieceTokenizer(loaded.vocab_path, lowercase=loaded.lowercase)
    ids_a = tokenizer.tokenize([a for a, _ in examples])
    pairs = [i for i, (_, b) in enumerate(examples) if b is not None]
    ids_b = dict(zip(pairs, tokenizer.tokenize([examples[i][1] for i in pairs]))) if pairs else {}
    for start in range(0, len(examples), batch_size):
        rows = range(start, min(start + batch_size, len(examples)))
        batch = tokenizer.pack_batch([ids_a[i] for i in rows], [ids_b.get(i) for i in rows],
                                     max_seq_length)
        lengths = batch["padding_mask"].sum(axis=1)  # real tokens per row
        width = int(lengths.max())  # trim common padding: it does not change real positions
        inputs = {k: v[:, :width] for k, v in batch.items()}
        states = loaded.encoder(inputs, training=False)["hidden_states"]
        chosen = [np.asarray(states[index]) for index in layers]  # each [b, width, H]
        for r, i in enumerate(rows):
            tokens = tokenizer.id_to_token(inputs["token_ids"][r, :lengths[r]].tolist())
            features = [{"token": token,
                         "layers": [{"index": index, "values": [round(float(x), 6) for x in out[r, t]]}
                                    for index, out in zip(layers, chosen)]}
                        for t, token in enumerate(tokens)]
            yield {"linex_index": i, "features": features}


def write_jsonl_atomic(records, out_path):
    """Write records as JSON lines to a temp file beside `out_path`, then rename it over (the file
    gets the usual umask-based mode, bertbench.files); returns the number of records."""
    return write_lines_atomic(out_path, (json.dumps(record) for record in records))
