"""Text: raw corpora and task strings -> WordPiece ids, exactly as google-research/bert.

    corpus.py      corpus files (WikiExtractor, WikiText, plain; gzip) -> documents of sentences
    basic.py       the original BasicTokenizer (Unicode cleaning, accents, punctuation), as TF ops and Python
    tokenizer.py   WordPieceTokenizer: basic.py + tensorflow-text FastWordpiece, offsets, packing
    vocab.py       learning a WordPiece vocabulary (tensorflow-text's learner)
"""
