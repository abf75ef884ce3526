"""Fine-tuning: an encoder + a task -> a trained task model -> dev predictions -> official metrics.

    init.py        where the encoder starts: a checkpoint restored by name, or random init
    data.py        capped splits, encoded features (`Encoded`), tf.data
    kinds.py       KINDS: the one dispatch on a task's kind; the protocol every kind implements
    classification.py, regression.py, span.py, tagging.py, multiple_choice.py   the kinds
    squad_windows.py     SQuAD sliding windows and n-best answers (span)
    prediction_files.py  the official prediction files the kinds share
    loop.py        finetune(): the run (the model is built in strategy.scope() there, once)
    logs.py        progress bars and TensorBoard (train loss, dev metrics, HParams) of a run
    submission.py  GLUE test predictions in the server's files; checking and zipping a set
    grid.py        the paper's grid x seeds, best point by mean over seeds
"""
