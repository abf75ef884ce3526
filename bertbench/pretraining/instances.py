"""Pretraining instances from tokenized documents, as google-research/bert `create_pretraining_data.py`.

Input: documents as lists of sentences, each sentence a sequence of WordPiece ids (no specials).
Output: `Instances`, unmasked, as padded numpy arrays (masking is `bertbench.pretraining.masking`).

- Segment pairs (pretrain.input_format "segment_pairs", and "auto" with "mlm+nsp"): the original
  `create_instances_from_document`, step for step: a target
  length (max_seq_length - 3, or with probability short_seq_prob a uniform one in [2, max], drawn
  once per document and pass, as the original does); chunks of
  contiguous sentences; segment A = the chunk's first a_end sentences; B = the rest of the chunk
  (IsNext, label 0) or, with probability 1/2 and always when the chunk holds one sentence, a
  stretch of a random OTHER document (NotNext, label 1) whose unused chunk sentences are put back;
  then `truncate_seq_pair` removes tokens from the longer segment, front or back at random.
  Because one-sentence chunks always get a random B, the IsNext share is a little under 1/2 (as in
  the original); among chunks that had the choice it is 1/2. With objective "mlm" the same pairs
  are built and their labels go unused: the paper's "No NSP" (the loss removed, the input kept).
- DOC-SENTENCES ("doc_sentences", and "auto" with "mlm" / "ltr"): RoBERTa's packing within one
  document (its FULL-SENTENCES packs across documents): whole contiguous sentences of one document,
  greedily, up to max_seq_length - 2 tokens as ONE segment, [CLS] s_i s_i+1 ... [SEP], segment ids
  0, no labels. An instance never crosses a document boundary, so a document's last one may be
  short (padded like every instance: the batch shape stays fixed where RoBERTa grows the batch);
  no short_seq_prob (RoBERTa trains on full-length sequences only); a sentence longer than the
  limit is cut into full-length pieces, nothing dropped, its remainder opening the next instance.
"""

import dataclasses
import random

import numpy as np

from bertbench.errors import BertbenchError

# sources columns: document of A, first and end sentence of A, document of B, first and end
# sentence of B (end exclusive; -1 without B), 1 if B was forced random (one-sentence chunk).
SOURCE_COLUMNS = ("doc", "a_start", "a_end", "b_doc", "b_start", "b_end", "forced_random")


@dataclasses.dataclass
class Instances:
    """Unmasked instances: [CLS] A [SEP] (B [SEP]), padded with pad_id to seq_length."""

    token_ids: np.ndarray  # [N, S] int32
    segment_ids: np.ndarray  # [N, S] int8 (0 for [CLS] A [SEP], 1 for B [SEP])
    lengths: np.ndarray  # [N] int32 real tokens, specials included
    next_sentence_labels: np.ndarray  # [N] int32: 0 IsNext, 1 NotNext (0 when packed, without B)
    sources: np.ndarray  # [N, 7] int32, SOURCE_COLUMNS (provenance, for checks and debugging)

    def __len__(self):
        return len(self.lengths)

    def select(self, index):
        """The instances at `index` (an int array or slice), as a new Instances."""
        return Instances(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


def create_instances(documents, cfg, cls_id, sep_id, pad_id, seq_length=None, dupe_factor=1,
                     seed=None):
    """Instances of `dupe_factor` passes over `documents` (each pass pairs sentences anew).

    documents: list of documents, each a list of sentences (sequences of ids); empty sentences and
    documents must already be removed (`tokenize_documents` does). cfg: PretrainConfig (objective,
    input_format, max_seq_length, short_seq_prob, seed). Returns Instances in creation order (the
    TFRecord writer shuffles); same inputs and seed -> same instances.
    """
    seq_length = seq_length or cfg.max_seq_length
    seed = cfg.seed if seed is None else seed
    rng = random.Random(seed)
    docs = [[np.asarray(s, dtype=np.int32) for s in doc] for doc in documents]
    if not docs:
        raise BertbenchError("no documents to build pretraining instances from; check the corpus")
    if cfg.segment_pairs and len(docs) < 2:
        raise BertbenchError("segment pairs need at least 2 documents for their NotNext B segments; give a "
                             "larger corpus, or use objective 'mlm' with pretrain.input_format 'doc_sentences'")
    rows = []  # (tokens_a, tokens_b or None, label, source tuple)
    for _ in range(dupe_factor):
        for index in range(len(docs)):
            if cfg.segment_pairs:
                rows.extend(_pair_instances(docs, index, seq_length - 3, cfg.short_seq_prob, rng))
            else:
                rows.extend(_packed_instances(docs[index], index, seq_length - 2))
    return _to_arrays(rows, seq_length, cls_id, sep_id, pad_id)


def _pair_instances(docs, doc_index, max_num_tokens, short_seq_prob, rng):
    """The original `create_instances_from_document` (rows of `_to_arrays`)."""
    document = docs[doc_index]
    target = max_num_tokens
    if rng.random() < short_seq_prob:
        target = rng.randint(2, max_num_tokens)
    rows, chunk_start, chunk, length, i = [], 0, [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = np.concatenate(chunk[:a_end])
            forced = len(chunk) == 1
            if forced or rng.random() < 0.5:  # NotNext: B from a random other document
                other = rng.randrange(len(docs) - 1)
                other += other >= doc_index  # uniform over the other documents
                b_start = rng.randint(0, len(docs[other]) - 1)
                pieces, b_end, b_length = [], b_start, 0
                while b_end < len(docs[other]):
                    pieces.append(docs[other][b_end])
                    b_length += len(docs[other][b_end])
                    b_end += 1
                    if b_length >= target - len(tokens_a):
                        break
                tokens_b, label, source_b = np.concatenate(pieces), 1, (other, b_start, b_end)
                i -= len(chunk) - a_end  # put the unused segments back
            else:  # IsNext: B is the actual continuation
                tokens_b, label = np.concatenate(chunk[a_end:]), 0
                source_b = (doc_index, chunk_start + a_end, chunk_start + len(chunk))
            tokens_a, tokens_b = truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            rows.append((tokens_a, tokens_b, label,
                         (doc_index, chunk_start, chunk_start + a_end, *source_b, int(forced))))
            chunk, length, chunk_start = [], 0, i + 1
        i += 1
    return rows


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """The original's truncation: drop from the longer segment (B on ties), front or back at random.

    Returns the truncated (tokens_a, tokens_b) views; each keeps at least one token.
    """
    a_lo, a_hi, b_lo, b_hi = 0, len(tokens_a), 0, len(tokens_b)
    while (a_hi - a_lo) + (b_hi - b_lo) > max_num_tokens:
        front = rng.random() < 0.5
        if a_hi - a_lo > b_hi - b_lo:
            a_lo, a_hi = (a_lo + 1, a_hi) if front else (a_lo, a_hi - 1)
        else:
            b_lo, b_hi = (b_lo + 1, b_hi) if front else (b_lo, b_hi - 1)
    return tokens_a[a_lo:a_hi], tokens_b[b_lo:b_hi]


def _packed_instances(document, doc_index, max_num_tokens):
    """DOC-SENTENCES packing of one document (rows of `_to_arrays`, without B)."""
    rows, pieces, start, length = [], [], 0, 0

    def emit(end):
        rows.append((np.concatenate(pieces), None, 0, (doc_index, start, end, -1, -1, -1, -1)))

    for i, sentence in enumerate(document):
        if pieces and length + len(sentence) > max_num_tokens:
            emit(i)
            pieces, start, length = [], i, 0
        while len(sentence) > max_num_tokens:  # an overlong sentence: full-length cuts
            pieces = [sentence[:max_num_tokens]]
            emit(i + 1)
            pieces, sentence, start = [], sentence[max_num_tokens:], i
        if len(sentence):
            pieces.append(sentence)
            length += len(sentence)
    if pieces:
        emit(len(document))
    return rows


def _to_arrays(rows, seq_length, cls_id, sep_id, pad_id):
    n = len(rows)
    token_ids = np.full((n, seq_length), pad_id, dtype=np.int32)
    segment_ids = np.zeros((n, seq_length), dtype=np.int8)
    lengths = np.zeros(n, dtype=np.int32)
    labels = np.zeros(n, dtype=np.int32)
    sources = np.zeros((n, len(SOURCE_COLUMNS)), dtype=np.int32)
    for k, (tokens_a, tokens_b, label, source) in enumerate(rows):
        la = len(tokens_a)
        token_ids[k, 0], token_ids[k, 1:la + 1], token_ids[k, la + 1] = cls_id, tokens_a, sep_id
        end = la + 2
        if tokens_b is not None:
            lb = len(tokens_b)
            token_ids[k, end:end + lb], token_ids[k, end + lb] = tokens_b, sep_id
            segment_ids[k, end:end + lb + 1] = 1
            end += lb + 1
        lengths[k], labels[k], sources[k] = end, label, source
    return Instances(token_ids, segment_ids, lengths, labels, sources)


def tokenize_documents(tokenizer, documents, batch_sentences=8192, stats=None):
    """Text documents (lists of sentence strings) -> lists of int32 id arrays, streamed in batches.

    Sentences that tokenize to nothing are dropped, and documents left empty too; both are counted
    in `stats` (a dict, keys skipped_sentences / skipped_documents) when given.
    """
    stats = {} if stats is None else stats
    stats.setdefault("skipped_sentences", 0)
    stats.setdefault("skipped_documents", 0)
    out, pending, sizes = [], [], []

    def flush():
        ids = tokenizer.tokenize(pending) if pending else []
        pos = 0
        for size in sizes:
            doc = [np.asarray(s, dtype=np.int32) for s in ids[pos:pos + size] if len(s)]
            stats["skipped_sentences"] += size - len(doc)
            pos += size
            if doc:
                out.append(doc)
            else:
                stats["skipped_documents"] += 1
        pending.clear()
        sizes.clear()

    for document in documents:
        pending.extend(document)
        sizes.append(len(document))
        if len(pending) >= batch_sentences:
            flush()
    flush()
    return out
