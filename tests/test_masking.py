"""Statistical tests of MLM masking (numpy static and TF dynamic) on real Wikipedia text.

Expectations come from google-research/bert's definitions (num_to_predict formula, 80/10/10 rule,
whole words), not from this code; tests use chi-square/binomial tests at p > 1e-4 with samples
large enough to catch a wrong rate of a percent or two.
"""

import numpy as np
import pytest
from helpers import P_MIN, real_documents, real_tokenizer
from scipy import stats

from bertbench.config import PretrainConfig
from bertbench.pretraining.instances import create_instances, tokenize_documents
from bertbench.pretraining.masking import mask_tokens, spec_from_tokenizer, tf_mask_tokens


@pytest.fixture(scope="module")
def real():
    tokenizer = real_tokenizer()
    docs = tokenize_documents(tokenizer, real_documents(6))
    inst = create_instances(docs, PretrainConfig(), tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    return tokenizer, inst


def _spec(tokenizer, **kw):
    """Masking settings as plain arguments (masking knows no config); the defaults are the paper's."""
    return spec_from_tokenizer(tokenizer, max_predictions=20, **kw)


def _mask(tokenizer, inst, seed, engine="numpy", copies=1, **kw):
    spec = _spec(tokenizer, **kw)
    ids, lengths = np.tile(inst.token_ids, (copies, 1)), np.tile(inst.lengths, copies)
    if engine == "numpy":
        out = mask_tokens(ids, lengths, spec, np.random.default_rng(seed))
    else:
        import tensorflow as tf

        out = {k: v.numpy() for k, v in tf_mask_tokens(tf.constant(ids), tf.constant(lengths), spec,
                                                      tf.constant([seed, 7], tf.int64)).items()}
    return spec, ids, lengths, out


def _kinds(spec, ids, out):
    """Counts of (MASK, SAME, RND) replacements and the random ids drawn."""
    rows, slots = np.nonzero(out["masked_lm_weights"])
    now = out["input_ids"][rows, out["masked_lm_positions"][rows, slots]]
    before = ids[rows, out["masked_lm_positions"][rows, slots]]
    assert np.array_equal(before, out["masked_lm_ids"][rows, slots])
    is_mask, is_same = now == spec.mask_id, now == before
    return np.array([is_mask.sum(), is_same.sum(), (~is_mask & ~is_same).sum()]), now[~is_mask & ~is_same]


def _expected_counts(lengths, spec):
    """The original's num_to_predict: min(max_pred, max(1, int(round(len(tokens) * prob))))."""
    return np.array([min(spec.max_predictions, max(1, int(round(n * spec.masked_lm_prob)))) for n in lengths])


@pytest.mark.parametrize("engine", ["numpy", "tf"])
def test_selection_count_rate_and_specials(real, engine):
    tokenizer, inst = real
    spec, ids, lengths, out = _mask(tokenizer, inst, 1, engine)
    weights = out["masked_lm_weights"] > 0
    assert np.array_equal(weights.sum(1), _expected_counts(lengths, spec))
    chosen = np.take_along_axis(ids, out["masked_lm_positions"], 1)[weights]
    assert not np.isin(chosen, list(tokenizer.special_ids)).any()  # [CLS]/[SEP]/[PAD]... never chosen
    positions = np.where(weights, out["masked_lm_positions"], -1)
    assert all(np.all(np.diff(p[p >= 0]) > 0) for p in positions)  # sorted, no repeats
    assert np.all(out["masked_lm_positions"][~weights] == 0) and np.all(out["masked_lm_ids"][~weights] == 0)
    candidates = (~spec.special_mask[ids] & (np.arange(ids.shape[1]) < lengths[:, None])).sum()
    assert abs(weights.sum() / candidates - 0.15) < 0.01
    untouched = np.ones_like(ids, dtype=bool)
    np.put_along_axis(untouched, out["masked_lm_positions"], ~weights, 1)
    untouched[np.arange(len(ids)), out["masked_lm_positions"][:, 0]] &= ~weights[:, 0]
    assert np.array_equal(out["input_ids"][untouched], ids[untouched])  # only chosen slots change


@pytest.mark.parametrize("engine", ["numpy", "tf"])
def test_positions_are_chosen_uniformly(real, engine):
    tokenizer, inst = real
    row = int(np.argmax(inst.lengths))  # one full-length real instance, masked 3000 times
    one = inst.select(np.array([row]))
    spec, ids, lengths, out = _mask(tokenizer, one, 2, engine, copies=3000)
    candidates = np.flatnonzero(~spec.special_mask[ids[0]] & (np.arange(ids.shape[1]) < lengths[0]))
    counts = np.bincount(out["masked_lm_positions"][out["masked_lm_weights"] > 0], minlength=ids.shape[1])
    assert counts.sum() == 3000 * _expected_counts(lengths[:1], spec)[0]
    assert counts[candidates].sum() == counts.sum()
    assert stats.chisquare(counts[candidates]).pvalue > P_MIN


@pytest.mark.parametrize("engine", ["numpy", "tf"])
@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.8, 0.0, 0.2), (0.8, 0.2, 0.0), (0.0, 0.2, 0.8)])
def test_mask_same_random_split(real, engine, fractions):
    tokenizer, inst = real
    spec, ids, lengths, out = _mask(tokenizer, inst, 3, engine, copies=3, fractions=fractions)
    counts, random_ids = _kinds(spec, ids, out)
    # A random draw equal to the original counts as SAME: P(same) = p_same + p_rnd / |R|.
    collide = fractions[2] / len(spec.replace_ids)
    expected = np.array([fractions[0], fractions[1] + collide, fractions[2] - collide]) * counts.sum()
    live = expected > 0
    assert np.all(counts[~live] == 0)
    assert stats.chisquare(counts[live], expected[live]).pvalue > P_MIN, (counts / counts.sum(), fractions)
    assert not np.isin(random_ids, list(tokenizer.special_ids)).any()


@pytest.mark.parametrize("engine", ["numpy", "tf"])
def test_degenerate_triples_and_uniform_random_tokens(real, engine):
    tokenizer, inst = real
    spec, ids, _, out = _mask(tokenizer, inst, 4, engine, fractions=(1.0, 0.0, 0.0))
    assert np.array_equal(_kinds(spec, ids, out)[0][1:], [0, 0])
    spec, ids, _, out = _mask(tokenizer, inst, 5, engine, copies=4, fractions=(0.0, 0.0, 1.0))
    counts, random_ids = _kinds(spec, ids, out)
    assert counts[0] == 0 and counts[1] < 10
    assert not np.isin(random_ids, list(tokenizer.special_ids)).any()
    index = np.searchsorted(spec.replace_ids, random_ids)  # uniform over the non-special ids
    assert np.array_equal(spec.replace_ids[index], random_ids)
    buckets = np.bincount(index * 20 // len(spec.replace_ids), minlength=20)
    assert stats.chisquare(buckets).pvalue > P_MIN


def test_numpy_and_tf_share_one_distribution(real):
    tokenizer, inst = real
    spec, ids, _, a = _mask(tokenizer, inst, 6, "numpy", copies=3)
    _, _, _, b = _mask(tokenizer, inst, 6, "tf", copies=3)
    table = np.stack([_kinds(spec, ids, a)[0], _kinds(spec, ids, b)[0]])
    assert stats.chi2_contingency(table).pvalue > P_MIN
    # where in the sequence the predictions fall (16 position buckets)
    hist = [np.bincount(o["masked_lm_positions"][o["masked_lm_weights"] > 0] // 8, minlength=16) for o in (a, b)]
    assert stats.chi2_contingency(np.stack(hist)[:, np.stack(hist).sum(0) > 0]).pvalue > P_MIN


@pytest.mark.parametrize("engine", ["numpy", "tf"])
def test_seeded_determinism(real, engine):
    tokenizer, inst = real
    first = _mask(tokenizer, inst, 8, engine)[3]
    again = _mask(tokenizer, inst, 8, engine)[3]
    other = _mask(tokenizer, inst, 9, engine)[3]
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["masked_lm_positions"], other["masked_lm_positions"])


def _words(tokens, special):
    """Independent word grouping: a non-special piece plus the '##' pieces right after it."""
    groups = []
    for i, token in enumerate(tokens):
        if token in special:
            continue
        if token.startswith("##") and groups and groups[-1][-1] == i - 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


@pytest.mark.parametrize("engine", ["numpy", "tf"])
def test_whole_word_masking_masks_whole_words(real, engine):
    tokenizer, inst = real
    spec, ids, lengths, out = _mask(tokenizer, inst, 10, engine, whole_word=True)
    special = {tokenizer.vocab[i] for i in tokenizer.special_ids}
    limits = _expected_counts(lengths, spec)
    multi_piece_chosen = 0
    for row in range(len(ids)):
        chosen = set(out["masked_lm_positions"][row][out["masked_lm_weights"][row] > 0].tolist())
        assert len(chosen) <= limits[row]
        for word in _words(tokenizer.id_to_token(ids[row, :lengths[row]].tolist()), special):
            flags = {i in chosen for i in word}
            assert len(flags) == 1, (row, word)  # all pieces of a word or none
            multi_piece_chosen += len(word) > 1 and flags == {True}
    got = (out["masked_lm_weights"] > 0).sum()
    assert got >= 0.97 * limits.sum()  # the fit-or-skip pass nearly always fills the budget
    assert multi_piece_chosen > 20
