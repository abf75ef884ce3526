"""Sharding a plan over machines: whole pretraining groups per shard, balanced by estimated cost.

A group is one pretraining run and every fine-tuning run that starts from it, so a shard never waits
for another shard's checkpoint. The split is deterministic (a function of the plan alone): shards
started independently, on different machines, agree on who owns what, and their union is the plan.
"""

import dataclasses

from bertbench.errors import BertbenchError
from bertbench.pretraining.accounting import pretrain_tokens


def parse_shard(text):
    """'I/N' (0-based: 0/4 .. 3/4) -> (I, N)."""
    try:
        index, count = (int(x) for x in str(text).split("/"))
    except ValueError:
        index, count = -1, 0
    if count < 1 or not 0 <= index < count:
        raise BertbenchError(f"--shard '{text}' must be I/N with 0 <= I < N (0-based, e.g. 0/4 ... 3/4)")
    return index, count


def group_cost(pre, finetunes):
    """Estimated cost of pretraining `pre` and its fine-tuning runs, in FLOPs up to a constant."""
    width = pre.model.num_layers * pre.model.hidden_dim ** 2  # FLOPs per token, up to a constant
    cost = pretrain_tokens(pre.pretrain) * width if pre.kind == "pretrain" else 0
    for f in finetunes:
        examples = f.finetune.max_train_examples or 100_000
        cost += examples * f.finetune.epochs * f.finetune.max_seq_length * width
    return cost


def shard_plan(plan, index, count):
    """The part of `plan` shard `index` of `count` owns: whole pretraining groups, greedily balanced
    (largest first onto the least-loaded shard; ties by id), so the union over shards is the plan."""
    groups = {p.id: [f for f in plan.finetunes if f.pretrain_id == p.id] for p in plan.pretrains}
    by_cost = sorted(plan.pretrains, key=lambda p: (-group_cost(p, groups[p.id]), p.id))
    load, owner = [0] * count, {}
    for pre in by_cost:
        target = min(range(count), key=lambda i: (load[i], i))
        owner[pre.id] = target
        load[target] += group_cost(pre, groups[pre.id]) + 1
    return dataclasses.replace(plan, pretrains=tuple(p for p in plan.pretrains if owner[p.id] == index),
                               finetunes=tuple(f for f in plan.finetunes if owner[f.pretrain_id] == index))
