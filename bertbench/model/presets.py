"""The model presets with L / H / A, feed-forward size and parameter count (the `models` command's
library part; the command is bertbench.commands.models).

Counts are analytic (no model is built), equal to BertEncoder.count_params(): the paper's
BERT-base is 110M (109,482,240 exactly) and BERT-large 340M (335,141,888) with vocab 30,522.
"""

from bertbench.config import MODEL_SIZES, model_preset


def count_parameters(model_cfg):
    """Trainable parameters of the encoder (embeddings, L blocks, pooler); no MLM/NSP heads."""
    h, i = model_cfg.hidden_dim, model_cfg.intermediate_dim
    embeddings = (model_cfg.vocabulary_size + model_cfg.max_sequence_length
                  + model_cfg.num_segments) * h + 2 * h  # token + position + segment tables, LayerNorm
    attention = 4 * (h * h + h)  # query, key, value, output projections with biases
    feed_forward = (h * i + i) + (i * h + h)  # H -> I -> H with biases
    block = attention + feed_forward + 2 * (2 * h)  # two LayerNorms (gamma, beta)
    pooler = h * h + h
    return embeddings + model_cfg.num_layers * block + pooler


def preset_rows(vocab_size=30522, max_seq_length=512):
    """One dict per preset: name, L, H, A, intermediate, parameters."""
    rows = []
    for name in MODEL_SIZES:
        cfg = model_preset(name, vocabulary_size=vocab_size, max_sequence_length=max_seq_length)
        rows.append({"name": name, "L": cfg.num_layers, "H": cfg.hidden_dim, "A": cfg.num_heads,
                     "intermediate": cfg.intermediate_dim, "parameters": count_parameters(cfg)})
    return rows


def format_table(rows):
    headers = ["name", "L", "H", "A", "intermediate", "parameters"]
    cells = [[r["name"], str(r["L"]), str(r["H"]), str(r["A"]), str(r["intermediate"]),
              f"{r['parameters']:,} ({r['parameters'] / 1e6:.1f}M)"] for r in rows]
    widths = [max(len(h), *(len(c[k]) for c in cells)) for k, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) if k == 0 else h.rjust(w) for k, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.ljust(w) if k == 0 else v.rjust(w) for k, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)
