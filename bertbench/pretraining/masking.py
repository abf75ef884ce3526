"""Masked-LM masking, as google-research/bert `create_masked_lm_predictions`, in numpy and in TF.

One algorithm, written twice over whole batches ([N, S] padded token ids): `mask_tokens` (numpy,
seeded Generator: static masking, the TFRecords) and `tf_mask_tokens` (stateless TF random ops with
an explicit seed: dynamic masking inside tf.data). For each sequence of `length` real tokens:

1. candidates are the real tokens that are not special ([CLS], [SEP], [PAD], ... never chosen);
   with whole-word masking a word is a piece plus the `##` pieces that follow it, else every
   candidate token is a word of its own;
2. num_to_predict = min(max_predictions, max(1, round(length * masked_lm_prob))) with `length`
   counting [CLS]/[SEP] as the original does (round half to even, like Python 3 `round`);
3. the words are visited in uniformly random order; a word is taken if it still fits in
   num_to_predict, else skipped (the original's `continue`), so whole words are never split;
4. each chosen position independently becomes [MASK] / stays / becomes a random token with the
   configured (MASK, SAME, RND) fractions. Random tokens are drawn uniformly from the vocabulary
   EXCLUDING the special tokens (the original draws from the whole vocabulary, specials included).

Outputs follow the TFRecord layout: positions sorted ascending, padded with 0 (weight 0.0).
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class MaskingSpec:
    """Everything masking needs: vocabulary facts + the masking settings (plain values)."""

    vocabulary_size: int
    mask_id: int
    special_ids: tuple  # never chosen for prediction, never used as a random replacement
    is_continuation: np.ndarray  # [V] bool: True for "##" pieces (whole-word masking)
    masked_lm_prob: float = 0.15
    max_predictions: int = 20
    fractions: tuple = (0.8, 0.1, 0.1)  # MASK / SAME / RND
    whole_word: bool = False

    @property
    def replace_ids(self):
        """[R] int32: the ids random replacements are drawn from (all but the specials)."""
        keep = np.ones(self.vocabulary_size, dtype=bool)
        keep[list(self.special_ids)] = False
        return np.flatnonzero(keep).astype(np.int32)

    @property
    def special_mask(self):
        """[V] bool lookup: True for special ids."""
        out = np.zeros(self.vocabulary_size, dtype=bool)
        out[list(self.special_ids)] = True
        return out


def masking_spec(tokens, special_ids, mask_id, masked_lm_prob=0.15, max_predictions=20,
                 fractions=(0.8, 0.1, 0.1), whole_word=False):
    """A MaskingSpec from a vocabulary (list of token strings, line i = id i) and masking settings."""
    return MaskingSpec(
        vocabulary_size=len(tokens), mask_id=int(mask_id),
        special_ids=tuple(sorted(int(i) for i in special_ids)),
        is_continuation=np.array([t.startswith("##") for t in tokens], dtype=bool),
        masked_lm_prob=masked_lm_prob, max_predictions=max_predictions,
        fractions=tuple(float(f) for f in fractions), whole_word=whole_word)


def spec_from_tokenizer(tokenizer, masked_lm_prob=0.15, max_predictions=20, fractions=(0.8, 0.1, 0.1),
                        whole_word=False):
    """A MaskingSpec for a bertbench WordPieceTokenizer (vocabulary, specials and [MASK] from it)."""
    return masking_spec(list(tokenizer.vocab), tokenizer.special_ids, tokenizer.mask_id, masked_lm_prob,
                        max_predictions, fractions, whole_word)


def num_to_predict(lengths, spec):
    """[N] int: how many positions each sequence predicts (float64 rounding, half to even)."""
    n = np.round(np.asarray(lengths, dtype=np.float64) * spec.masked_lm_prob).astype(np.int64)
    return np.clip(n, 1, spec.max_predictions)


def mask_tokens(token_ids, lengths, spec, rng):
    """Static masking of a batch. token_ids [N, S] (unmasked, padded), lengths [N].

    Returns a dict of numpy arrays: input_ids [N, S] int32 (masked), masked_lm_positions [N, P]
    int32, masked_lm_ids [N, P] int32 (original tokens), masked_lm_weights [N, P] float32.
    """
    token_ids = np.asarray(token_ids, dtype=np.int32)
    n_seq, seq = token_ids.shape
    rows = np.arange(n_seq)[:, None]
    candidate = ~spec.special_mask[token_ids] & (np.arange(seq)[None, :] < np.asarray(lengths)[:, None])
    word_id, word_len = _words(token_ids, candidate, spec)
    score = rng.random((n_seq, seq))  # one random key per word slot
    score[word_len == 0] = 2.0  # empty slots go last
    order = np.argsort(score, axis=1, kind="stable")  # [N, S] word ids in random order
    limit = num_to_predict(lengths, spec)
    chosen_word = np.zeros((n_seq, seq), dtype=bool)
    if spec.whole_word:
        total = np.zeros(n_seq, dtype=np.int64)
        for r in range(seq):  # greedy: take the next word if it still fits, else skip it
            w = order[:, r]
            size = word_len[rows[:, 0], w]
            take = (size > 0) & (total + size <= limit)
            chosen_word[rows[:, 0], w] = take
            total += np.where(take, size, 0)
    else:  # every word is one token: the first `limit` words of the random order
        ranks = np.empty_like(order)
        ranks[rows, order] = np.arange(seq)[None, :]
        chosen_word = (ranks < limit[:, None]) & (word_len > 0)
    chosen = candidate & np.take_along_axis(chosen_word, np.maximum(word_id, 0), axis=1)
    positions = np.argsort(~chosen, axis=1, kind="stable")[:, :spec.max_predictions]  # ascending
    weights = np.take_along_axis(chosen, positions, axis=1)
    positions = np.where(weights, positions, 0).astype(np.int32)
    originals = np.where(weights, np.take_along_axis(token_ids, positions, axis=1), 0).astype(np.int32)
    u = rng.random(positions.shape)
    replace_ids = spec.replace_ids
    random_ids = replace_ids[rng.integers(0, len(replace_ids), size=positions.shape)]
    new = _replacement(u, originals, random_ids, spec)
    input_ids = token_ids.copy()
    r_idx, p_idx = np.nonzero(weights)
    input_ids[r_idx, positions[r_idx, p_idx]] = new[r_idx, p_idx]
    return {"input_ids": input_ids, "masked_lm_positions": positions, "masked_lm_ids": originals,
            "masked_lm_weights": weights.astype(np.float32)}


def _words(token_ids, candidate, spec):
    """word_id [N, S] (-1 off candidates) and word_len [N, S] (length of word slot w)."""
    starts = candidate.copy()
    if spec.whole_word:  # a "##" piece continues the word before it, if that one is a candidate
        previous = np.pad(candidate[:, :-1], ((0, 0), (1, 0)))
        starts &= ~(spec.is_continuation[token_ids] & previous)
    word_id = np.where(candidate, np.cumsum(starts, axis=1) - 1, -1)
    n_seq, seq = token_ids.shape
    word_len = np.zeros((n_seq, seq + 1), dtype=np.int64)
    np.add.at(word_len, (np.arange(n_seq)[:, None], np.where(word_id >= 0, word_id, seq)), 1)
    return word_id, word_len[:, :seq]


def _replacement(u, originals, random_ids, spec):
    p_mask, p_same, _ = spec.fractions
    return np.where(u < p_mask, spec.mask_id,
                    np.where(u < p_mask + p_same, originals, random_ids)).astype(np.int32)


def tf_mask_tokens(token_ids, lengths, spec, seed):
    """Dynamic masking of a batch with stateless TF ops; the same algorithm as `mask_tokens`.

    token_ids [b, S] int32, lengths [b] int32, seed: int32/int64 tensor of shape [2] (e.g.
    [config seed, batch counter], so each batch of each epoch gets its own masks). Returns the
    same dict as `mask_tokens`, as tensors.
    """
    import tensorflow as tf

    token_ids = tf.cast(token_ids, tf.int32)
    lengths = tf.cast(lengths, tf.int32)
    seq = tf.shape(token_ids)[1]
    seed_order, seed_kind, seed_rnd = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    special = tf.constant(spec.special_mask)
    candidate = ~tf.gather(special, token_ids) & (tf.range(seq)[None, :] < lengths[:, None])
    starts = candidate
    if spec.whole_word:
        previous = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])
        starts &= ~(tf.gather(tf.constant(spec.is_continuation), token_ids) & previous)
    word_id = tf.where(candidate, tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1, -1)
    word_len = tf.reduce_sum(tf.one_hot(tf.where(word_id >= 0, word_id, seq), seq, dtype=tf.int32), axis=1)
    score = tf.random.stateless_uniform(tf.shape(token_ids), seed_order, dtype=tf.float64)
    score = tf.where(word_len == 0, tf.constant(2.0, tf.float64), score)
    order = tf.argsort(score, axis=1, stable=True)  # [b, S] word ids in random order
    limit = tf.clip_by_value(tf.cast(tf.round(tf.cast(lengths, tf.float64) * spec.masked_lm_prob), tf.int32),
                             1, spec.max_predictions)
    if spec.whole_word:
        chosen_word = _tf_greedy_words(order, word_len, limit)
    else:
        ranks = tf.argsort(order, axis=1, stable=True)  # inverse permutation
        chosen_word = (ranks < limit[:, None]) & (word_len > 0)
    chosen = candidate & tf.gather(chosen_word, tf.maximum(word_id, 0), batch_dims=1)
    positions = tf.argsort(tf.cast(~chosen, tf.int32), axis=1, stable=True)[:, :spec.max_predictions]
    weights = tf.gather(chosen, positions, batch_dims=1)
    positions = tf.where(weights, positions, 0)
    originals = tf.where(weights, tf.gather(token_ids, positions, batch_dims=1), 0)
    u = tf.random.stateless_uniform(tf.shape(positions), seed_kind, dtype=tf.float64)
    replace_ids = tf.constant(spec.replace_ids)
    pick = tf.random.stateless_uniform(tf.shape(positions), seed_rnd, minval=0,
                                       maxval=len(spec.replace_ids), dtype=tf.int32)
    p_mask, p_same, _ = spec.fractions
    new = tf.where(u < p_mask, spec.mask_id, tf.where(u < p_mask + p_same, originals,
                                                     tf.gather(replace_ids, pick)))
    slots = tf.where(weights)  # [k, 2] (row, slot) of the real predictions only
    rows = tf.cast(slots[:, 0], tf.int32)
    scatter_at = tf.stack([rows, tf.gather_nd(positions, slots)], axis=-1)
    input_ids = tf.tensor_scatter_nd_update(token_ids, scatter_at, tf.gather_nd(new, slots))
    return {"input_ids": input_ids, "masked_lm_positions": positions, "masked_lm_ids": originals,
            "masked_lm_weights": tf.cast(weights, tf.float32)}


def _tf_greedy_words(order, word_len, limit):
    """[b, S] bool: words taken by the greedy fit-or-skip pass over `order` (whole-word masking)."""
    import tensorflow as tf

    seq = tf.shape(order)[1]

    def step(r, total, chosen):
        w = order[:, r]
        size = tf.gather(word_len, w[:, None], batch_dims=1)[:, 0]
        take = (size > 0) & (total + size <= limit)
        chosen |= tf.equal(tf.range(seq)[None, :], w[:, None]) & take[:, None]
        return r + 1, total + tf.where(take, size, 0), chosen

    _, _, chosen = tf.while_loop(
        lambda r, total, chosen: r < seq, step,
        (tf.constant(0), tf.zeros_like(limit), tf.zeros_like(order, dtype=tf.bool)))
    return chosen
