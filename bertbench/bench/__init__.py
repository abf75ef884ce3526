"""Benchmarks: speed measured side by side in one run (`bertbench bench ...`), never in unit tests.

    machine.py     the machine: CPU model and flags, library versions, measured matmul peaks
    pretrain.py    pretraining throughput and MFU of ours vs a keras-hub BertBackbone peer
    ops.py         where a training step's time goes: profiler op time grouped by kind
    plot.py        tokens/s vs model size (ours, peer; float32, mixed_bfloat16) from bench JSON files
    finetune.py    SST-2 fine-tuning examples/s (train, predict) of ours vs a keras-hub BertTextClassifier
    tokenize.py    tokenizer MB/s and exactness of ours vs FastBertTokenizer and HF tokenizers
"""
