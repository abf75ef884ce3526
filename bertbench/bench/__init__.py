"""Benchmarks: speed measured side by side in one run (`bertbench bench ...`), never in unit tests.

    machine.py     the machine: CPU model and flags, library versions, measured matmul peaks
    pretrain.py    pretraining throughput and MFU of ours vs a keras-hub BertBackbone peer
"""
