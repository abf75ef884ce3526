"""The pretraining loop's inputs: corpus -> tokenized documents (cached) -> train / held-out datasets.

Tokenizing and sentence-splitting a large corpus takes minutes, so the tokenized documents are
cached under a hash of what determines them (corpus files with sizes and mtimes, vocabulary content,
casing, held-out split), cramming-style: every run on the same corpus and vocabulary reuses them.
"""

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from bertbench.resources import sample_path

CACHE_ENV = "BERTBENCH_CACHE"
CACHE_VERSION = 1  # bump when corpus reading or tokenization changes


def corpus_path(corpus):
    return sample_path("corpus") if corpus == "sample" else Path(corpus)


def default_cache_dir():
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "bertbench"))


class PretrainingCorpus:
    """Tokenized train / held-out documents of a PretrainConfig's corpus, and their datasets."""

    def __init__(self, cfg, tokenizer, cache_dir=None):
        from bertbench.text.corpus import corpus_files

        self.cfg, self.tokenizer = cfg, tokenizer
        path = corpus_path(cfg.corpus)
        files = corpus_files(path)
        key = _cache_key(files, tokenizer, cfg)
        cache = Path(cache_dir or default_cache_dir()) / "corpus" / f"{key}.npz"
        if cache.exists():
            self.train_docs, self.heldout_docs, self._stats = _load(cache)
        else:
            self.train_docs, self.heldout_docs, self._stats = _tokenize(path, tokenizer, cfg)
            _save(cache, self.train_docs, self.heldout_docs, self._stats)
        self._stats["cache"] = str(cache)

    def train_dataset(self, seq_length, batch_size):
        from bertbench.pretraining.tfrecords import pretraining_dataset

        return pretraining_dataset(self.cfg, self.tokenizer, documents=self.train_docs, batch_size=batch_size,
                                   seq_length=seq_length, seed=self.cfg.seed, repeat=True)

    def heldout_dataset(self, seq_length, batch_size):
        """One fixed pass over the held-out documents: fixed masks (seeded), no shuffling."""
        from bertbench.pretraining.tfrecords import pretraining_dataset

        return pretraining_dataset(self.cfg, self.tokenizer, documents=self.heldout_docs,
                                   batch_size=batch_size, seq_length=seq_length, seed=self.cfg.seed + 1,
                                   repeat=False, shuffle=False, drop_remainder=False)

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

    def stats(self):
        return dict(self._stats, train_documents=len(self.train_docs), heldout_documents=len(self.heldout_docs))


def _counts(docs, vocab_size, special):
    counts = np.zeros(vocab_size, dtype=np.float64)
    for doc in docs:
        for sentence in doc:
            counts += np.bincount(sentence, minlength=vocab_size)
    counts[special] = 0.0
    return counts


def _cache_key(files, tokenizer, cfg):
    parts = {"version": CACHE_VERSION, "lowercase": tokenizer.lowercase,
             "vocab": hashlib.sha256(Path(tokenizer.vocab_path).read_bytes()).hexdigest(),
             "heldout_fraction": cfg.heldout_fraction, "seed": cfg.seed,
             "files": [(str(Path(f).resolve()), os.path.getsize(f), int(os.path.getmtime(f))) for f in files]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _tokenize(path, tokenizer, cfg):
    from bertbench.text.corpus import DocumentReader, split_heldout
    from bertbench.pretraining.instances import tokenize_documents

    reader = DocumentReader(path)
    documents = list(reader)
    train, heldout = split_heldout(documents, cfg.heldout_fraction, cfg.seed)
    stats = dict(reader.stats.as_dict())
    train_docs = tokenize_documents(tokenizer, train, stats=stats)
    heldout_docs = tokenize_documents(tokenizer, heldout, stats=stats)
    stats["tokens"] = int(sum(len(s) for d in train_docs + heldout_docs for s in d))
    return train_docs, heldout_docs, stats


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


def _save(path, train, heldout, stats):
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, docs in (("train", train), ("heldout", heldout)):
        arrays[f"{name}_ids"], arrays[f"{name}_lengths"], arrays[f"{name}_docs"] = _pack(docs)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, stats=json.dumps(stats), **arrays)
    os.replace(tmp, path)


def _load(path):
    with np.load(path) as data:
        docs = [_unpack(data[f"{n}_ids"], data[f"{n}_lengths"], data[f"{n}_docs"]) for n in ("train", "heldout")]
        return docs[0], docs[1], json.loads(str(data["stats"]))
