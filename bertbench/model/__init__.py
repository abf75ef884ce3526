"""Model: the BERT encoder and what every loop shares around it.

    layers.py           the one activation mapping; the causal attention mask
    encoder.py          BertEncoder from keras-hub layers (token/segment/position embeddings, post-LN)
    heads.py            layers the fine-tuning heads share (pooling, BiLSTMs, feature mixes)
    checkpoint.py       bertbench's encoder checkpoint directory (save, load)
    convert.py          keras-hub transfer both ways; keras-hub preset, Hugging Face and google-research TF1 imports
    export.py           encoders out to keras-hub preset and Hugging Face folders (`export`)
    optimization.py     AdamW with warmup + linear decay (google-research/bert optimization.py)
    strategy.py         tf.distribute strategies by name, one per name per process
    precision.py        the dtype policy: pretrain.precision, "auto" resolved per device (TPU, GPU, CPU flags)
    presets.py          the model presets' sizes and parameter counts (`models`)
    extract_features.py per-token hidden states as JSON lines (`features`)
"""
