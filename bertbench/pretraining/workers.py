"""Who does what in a multi-worker pretraining run (tf.distribute.MultiWorkerMirroredStrategy, TPUs).

Only the chief writes the run's files (summary, metrics.jsonl, TensorBoard logs, encoders); every
worker takes part in each checkpoint save, as MWMS requires, the others into a temporary folder that
is removed right after. Every worker restores from the chief's checkpoint folder. Input comes from
`strategy.distribute_datasets_from_function`: each worker reads its own shard and builds only its
replicas' part of the global batch; distributed iterators are not checkpointable, so a worker's
stream is a function of (seed, worker, step) and a resumed run skips to the restored step.
"""

import dataclasses
import shutil
import tempfile

DISTRIBUTED_INPUT = ("multiworker", "tpu")  # strategies whose input comes per worker / host


@dataclasses.dataclass(frozen=True)
class Role:
    is_chief: bool = True  # writes the run's files
    index: int = 0  # this worker's task index
    count: int = 1  # workers in the cluster


def worker_role(strategy):
    """This process's Role under `strategy` (the chief of a one-process run)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or task_type is None:
        return Role()
    spec = resolver.cluster_spec().as_dict()
    workers = sum(len(spec.get(kind, [])) for kind in ("chief", "worker"))
    index = int(resolver.task_id or 0) + (1 if task_type == "worker" and "chief" in spec else 0)
    return Role(is_chief=bool(strategy.extended.should_checkpoint), index=index, count=max(workers, 1))


def save_checkpoint(checkpoint, manager, role, step):
    """The chief saves into the run's checkpoint folder; another worker saves the same state into a
    temporary folder (MWMS needs every worker in the save) and removes it."""
    if role.is_chief:
        return manager.save(checkpoint_number=step)
    import tensorflow as tf

    scratch = tempfile.mkdtemp(prefix=f"bertbench-ckpt-worker{role.index}-")
    try:
        return tf.train.CheckpointManager(checkpoint, scratch, max_to_keep=1).save(checkpoint_number=step)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def distributed_iterator(strategy, global_batch, dataset_fn):
    """An iterator over `strategy.distribute_datasets_from_function`: on each input pipeline (one per
    worker), `dataset_fn(per_replica_batch, shard, local_replicas)` with shard = (pipeline id, count)."""
    def per_worker(ctx):
        local = max(ctx.num_replicas_in_sync // ctx.num_input_pipelines, 1)
        return dataset_fn(ctx.get_per_replica_batch_size(global_batch),
                          (ctx.input_pipeline_id, ctx.num_input_pipelines), local)

    return iter(strategy.distribute_datasets_from_function(per_worker))
