"""Pretraining: a corpus -> instances -> masks -> encoder + objective heads -> an encoder checkpoint.

    inputs.py      the corpus read once: tokenized train / held-out documents, cached by content hash
    instances.py   segment pairs (google-research/bert create_pretraining_data) or RoBERTa's DOC-SENTENCES
    masking.py     the 80/10/10 (any MASK/SAME/RND) rule from plain arguments, numpy and TF
    tfrecords.py   static masking into TFRecords of the original layout (`pretrain-data`), and
                   TFRecords (ours or google-research/bert's) as input, found by content and checked
    dataset.py     the run's input (text corpus or TFRecords) and the one dataset builder (dynamic
                   masking inside tf.data)
    objectives.py  MLM (+ NSP) and left-to-right LM heads and losses (BertPretrainer)
    loop.py        the training loop: strategy, checkpoints and resume, held-out evaluation, export
    checkpoints.py a run folder between runs: its stored config (reruns with another one refused), the
                   newest intact and finite checkpoint, "good" only after a finite next loss, full disks
    workers.py     multi-worker roles: chief-only writes, every worker in a save, per-worker input
    accounting.py  phases, token positions and FLOPs of a run, from its configs alone
"""
