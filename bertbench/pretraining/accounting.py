"""What a pretraining run costs, from its configs alone: phases, token positions, FLOPs.

The one home of these counts: the loop's summary, the runner's dry-run plan and shard balancing,
and the benchmarks all read them from here.

    phases(cfg)              [(seq_length, first_step, end_step)], the paper's 128 -> 512 schedule
    step_tokens(b, seq)      token positions of one training step (progress lines, benchmarks)
    phase_tokens(plan, b, s) token positions trained from step s to the end
    pretrain_tokens(cfg)     token positions of the whole run
    estimate_flops(m, cfg)   training FLOPs of the whole run (matmuls; forward + backward = 3x forward)
"""


def phases(cfg):
    """[(seq_length, first_step, end_step)]: two phases when phase2_fraction > 0, else one."""
    if cfg.phase2_fraction <= 0:
        return [(cfg.max_seq_length, 0, cfg.num_steps)]
    switch = int(round(cfg.num_steps * (1.0 - cfg.phase2_fraction)))
    return [(cfg.max_seq_length, 0, switch), (cfg.phase2_max_seq_length, switch, cfg.num_steps)]


def step_tokens(batch_size, seq_length):
    """Token positions of one training step: every position of every sequence, padding included."""
    return batch_size * seq_length


def phase_tokens(plan, batch_size, from_step=0):
    """Token positions processed from `from_step` to the end of `plan`, each phase at its length."""
    return sum(max(0, end - max(first, from_step)) * step_tokens(batch_size, seq) for seq, first, end in plan)


def pretrain_tokens(cfg):
    """Token positions a whole pretraining run processes (both phases)."""
    return phase_tokens(phases(cfg), cfg.batch_size)


def estimate_flops(model_cfg, cfg):
    """Training FLOPs (forward + backward = 3x forward) over the whole run, matmuls only."""
    h, inter, layers = model_cfg.hidden_dim, model_cfg.intermediate_dim, model_cfg.num_layers
    vocab = model_cfg.vocabulary_size
    total = 0.0
    for seq, first, end in phases(cfg):
        tokens = (end - first) * cfg.batch_size * seq
        per_token = layers * (2 * 4 * h * h + 2 * 2 * h * inter + 2 * 2 * seq * h)  # proj, FFN, attention
        predictions = seq if cfg.objective == "ltr" else cfg.predictions_per_seq(seq)
        head = (2 * h * h + 2 * h * vocab) * predictions / seq  # LM transform + tied output
        total += 3 * tokens * (per_token + head)
    return total
