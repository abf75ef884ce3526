"""The pretraining corpus, read once: corpus -> tokenized train / held-out documents (cached).

The one reader of pretraining text: the loop (`pretrain`), the benchmarks and the TFRecord writer
(`pretrain-data`) all take their documents from `PretrainingCorpus`. Tokenizing and
sentence-splitting a large corpus takes minutes, so the tokenized documents are cached under a hash
of what determines them (corpus files with sizes and mtimes, vocabulary content, casing, held-out
split, document limit), cramming-style: every run on the same corpus and vocabulary reuses them.
"""

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from bertbench.pretraining.instances import tokenize_documents
from bertbench.text.corpus import DocumentReader, corpus_files, split_heldout

CACHE_ENV = "BERTBENCH_CACHE"
CACHE_VERSION = 2  # bump when corpus reading, tokenization or the cached layout changes


def default_cache_dir():
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "bertbench"))


class PretrainingCorpus:
    """Tokenized documents of a corpus: `train_docs` and `heldout_docs`, each a list of documents,
    a document a list of sentences, a sentence an int32 array of WordPiece ids (no specials).

    corpus: a file, a folder or "sample"; heldout_fraction/seed: the seeded document-level split
    (0 = every document trains); max_documents: read at most this many documents.
    """

    def __init__(self, corpus, tokenizer, heldout_fraction=0.0, seed=0, max_documents=None, cache_dir=None):
        self.tokenizer = tokenizer
        files = corpus_files(corpus)
        key = _cache_key(files, tokenizer, heldout_fraction, seed, max_documents)
        cache = Path(cache_dir or default_cache_dir()) / "corpus" / f"{key}.npz"
        if cache.exists():
            self.train_docs, self.heldout_docs, self._counts = _load(cache)
        else:
            reader = DocumentReader(corpus, max_documents=max_documents)
            self.train_docs, self.heldout_docs, self._counts = _tokenize(reader, tokenizer, heldout_fraction, seed)
            _save(cache, self.train_docs, self.heldout_docs, self._counts)
        self.cache_path = str(cache)

    @property
    def reading(self):
        """CorpusStats counts of the reading pass (files, lines, documents, sentences, skipped ...)."""
        return dict(self._counts["reading"])

    @property
    def tokenization(self):
        """Sentences and documents that tokenized to nothing (dropped)."""
        return dict(self._counts["tokenization"])

    def stats(self):
        """The pretraining summary's corpus figures: reading counts, tokenization drops (documents
        dropped by either pass summed), tokens, cache file, train / held-out document counts."""
        reading, dropped = self.reading, self.tokenization
        return dict(reading, skipped_documents=reading["skipped_documents"] + dropped["skipped_documents"],
                    skipped_sentences=dropped["skipped_sentences"], tokens=self._counts["tokens"],
                    cache=self.cache_path, train_documents=len(self.train_docs),
                    heldout_documents=len(self.heldout_docs))

    def unigram_baseline(self):
        """Accuracy and perplexity of a unigram model (train token frequencies, add-one smoothed)
        on held-out tokens: what an LM head that ignores the context would reach."""
        special = np.array(sorted(self.tokenizer.special_ids), dtype=np.int64)
        train = _counts(self.train_docs, self.tokenizer.vocabulary_size, special)
        held = _counts(self.heldout_docs, self.tokenizer.vocabulary_size, special)
        if held.sum() == 0:
            return {}
        probs = (train + 1.0) / (train.sum() + np.count_nonzero(self._content_mask(special)))
        probs[special] = 0.0
        nll = -(held * np.log(np.where(held > 0, probs, 1.0))).sum() / held.sum()
        return {"accuracy": float(held[int(np.argmax(train))] / held.sum()),
                "perplexity": float(math.exp(nll))}

    def _content_mask(self, special):
        mask = np.ones(self.tokenizer.vocabulary_size, dtype=bool)
        mask[special] = False
        return mask


def _counts(docs, vocab_size, special):
    counts = np.zeros(vocab_size, dtype=np.float64)
    for doc in docs:
        for sentence in doc:
            counts += np.bincount(sentence, minlength=vocab_size)
    counts[special] = 0.0
    return counts


def _cache_key(files, tokenizer, heldout_fraction, seed, max_documents):
    parts = {"version": CACHE_VERSION, "lowercase": tokenizer.lowercase,
             "vocab": hashlib.sha256(Path(tokenizer.vocab_path).read_bytes()).hexdigest(),
             "heldout_fraction": heldout_fraction, "seed": seed, "max_documents": max_documents,
             "files": [(str(Path(f).resolve()), os.path.getsize(f), int(os.path.getmtime(f))) for f in files]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _tokenize(reader, tokenizer, heldout_fraction, seed):
    """(train_docs, heldout_docs, counts) of a DocumentReader; without a held-out split the documents
    stream through the tokenizer (the text is never all in memory)."""
    if heldout_fraction:
        train, heldout = split_heldout(list(reader), heldout_fraction, seed)
    else:
        train, heldout = reader, []
    dropped = {}
    train_docs = tokenize_documents(tokenizer, train, stats=dropped)
    heldout_docs = tokenize_documents(tokenizer, heldout, stats=dropped)
    counts = {"reading": reader.stats.as_dict(), "tokenization": dropped,
              "tokens": int(sum(len(s) for d in train_docs + heldout_docs for s in d))}
    return train_docs, heldout_docs, counts


def _pack(docs):
    """Documents of sentences -> (flat ids, sentence lengths, sentences per document)."""
    sentences = [s for d in docs for s in d]
    flat = np.concatenate(sentences) if sentences else np.zeros(0, np.int32)
    return flat.astype(np.int32), np.array([len(s) for s in sentences], np.int64), \
        np.array([len(d) for d in docs], np.int64)


def _unpack(flat, sentence_lengths, doc_sizes):
    sentences = np.split(flat, np.cumsum(sentence_lengths)[:-1]) if len(sentence_lengths) else []
    bounds = np.concatenate([[0], np.cumsum(doc_sizes)])
    return [sentences[bounds[i]:bounds[i + 1]] for i in range(len(doc_sizes))]


def _save(path, train, heldout, counts):
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, docs in (("train", train), ("heldout", heldout)):
        arrays[f"{name}_ids"], arrays[f"{name}_lengths"], arrays[f"{name}_docs"] = _pack(docs)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, counts=json.dumps(counts), **arrays)
    os.replace(tmp, path)


def _load(path):
    with np.load(path) as data:
        docs = [_unpack(data[f"{n}_ids"], data[f"{n}_lengths"], data[f"{n}_docs"]) for n in ("train", "heldout")]
        return docs[0], docs[1], json.loads(str(data["counts"]))
