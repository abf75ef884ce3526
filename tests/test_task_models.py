"""Task models on tiny encoders, built by each kind's `build_head` from the shared layers of
model/heads.py: shapes, losses against numpy, BiLSTM, the causal sentence vector, frozen features.
(The layers' Keras contract is tested in test_layers.py.)"""

import dataclasses

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from bertbench.config import FinetuneConfig, ModelConfig  # noqa: E402
from bertbench.errors import BertbenchError, ConfigError  # noqa: E402
from bertbench.finetuning import classification, regression, span, tagging  # noqa: E402
from bertbench.finetuning.kinds import KINDS, kind_of  # noqa: E402
from bertbench.finetuning.loop import check_config  # noqa: E402
from bertbench.model import heads as tm  # noqa: E402
from bertbench.model.encoder import build_encoder  # noqa: E402
from bertbench.tasks import get_task  # noqa: E402

H = 8


def spec_of(kind, num_labels=0):
    """A registered task of `kind`, with `num_labels` labels (choices, for multiple choice)."""
    task = {"classification": "mnli", "regression": "stsb", "span": "squad1", "tagging": "conll2003",
            "multiple_choice": "swag"}[kind]
    spec = get_task(task)
    if num_labels:
        spec = dataclasses.replace(spec, labels=tuple(str(i) for i in range(num_labels)))
    return spec


def build(encoder, kind, num_labels=0, **cfg):
    return KINDS[kind].build_head(encoder, spec_of(kind, num_labels), FinetuneConfig(**cfg))


def tiny_encoder(num_layers=2, dropout=0.0, attention="bidirectional", seed=0):
    keras.utils.set_random_seed(seed)
    cfg = ModelConfig(vocabulary_size=40, num_layers=num_layers, hidden_dim=H, num_heads=2,
                      max_sequence_length=16, dropout=dropout, attention=attention)
    return build_encoder(cfg)


def batch(shape, seed=0, pad=3):
    rng = np.random.default_rng(seed)
    mask = np.ones(shape, np.int32)
    mask[..., shape[-1] - pad:] = 0
    ids = rng.integers(5, 40, size=shape).astype(np.int32) * mask
    return {"token_ids": ids, "segment_ids": np.zeros(shape, np.int32), "padding_mask": mask}


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("kind,num_labels,shape,out_shape", [
    ("classification", 3, (4, 10), (4, 3)),
    ("regression", 0, (4, 10), (4,)),
    ("span", 0, (4, 10), (4, 10, 2)),
    ("tagging", 5, (4, 10), (4, 10, 5)),
    ("multiple_choice", 3, (4, 3, 10), (4, 3)),  # 3 choices
])
def test_head_output_shapes(kind, num_labels, shape, out_shape):
    model = build(tiny_encoder(), kind, num_labels)
    assert tuple(model(batch(shape), training=False).shape) == out_shape


def test_losses_match_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4)).astype(np.float32)
    labels = np.array([0, 3, 1])
    expected = -log_softmax(logits)[np.arange(3), labels]
    np.testing.assert_allclose(np.asarray(classification.loss(labels, logits)), expected, rtol=1e-5)

    spans = rng.normal(size=(2, 6, 2)).astype(np.float32)
    positions = np.array([[1, 2], [0, 0]])
    lp_start, lp_end = log_softmax(spans[:, :, 0]), log_softmax(spans[:, :, 1])
    expected = -(lp_start[[0, 1], positions[:, 0]] + lp_end[[0, 1], positions[:, 1]]) / 2
    np.testing.assert_allclose(np.asarray(span.loss(positions, spans)), expected, rtol=1e-5)

    pred, gold = np.array([1.0, 2.0, 4.0], np.float32), np.array([1.5, 2.0, 1.0], np.float32)
    np.testing.assert_allclose(np.asarray(regression.loss(gold, pred)), [0.25, 0.0, 9.0])


def test_tagging_loss_is_mean_over_first_pieces_only():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 5, 3)).astype(np.float32)
    labels = np.array([[-1, 2, -1, 0, -1], [-1, 1, -1, -1, -1]])
    per_example = np.asarray(tagging.loss(labels, logits))
    lp = log_softmax(logits)
    ces = [-lp[0, 1, 2], -lp[0, 3, 0], -lp[1, 1, 1]]
    assert per_example.mean() == pytest.approx(np.mean(ces), rel=1e-5)
    changed = logits.copy()
    changed[labels == -1] = rng.normal(size=(int((labels == -1).sum()), 3)) * 10  # ignored positions
    np.testing.assert_allclose(np.asarray(tagging.loss(labels, changed)), per_example, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:Gradients do not exist for variables")  # the unused [CLS] pooler
@pytest.mark.parametrize("kind,out_shape", [("classification", (2, 3)), ("span", (2, 10, 2))])
def test_bilstm_head(kind, out_shape):
    model = build(tiny_encoder(), kind, 3, head="bilstm")
    bilstm = model.get_layer("bilstm")
    assert isinstance(bilstm, keras.layers.Bidirectional) and bilstm.forward_layer.units == H
    x = batch((2, 10))
    out = np.asarray(model(x, training=False))
    assert out.shape == out_shape
    if kind == "classification":  # padding is masked: ids under padding do not matter
        y = {k: v.copy() for k, v in x.items()}
        y["token_ids"][:, -3:] = 7
        np.testing.assert_allclose(np.asarray(model(y, training=False)), out, atol=1e-6)
    model.compile(optimizer="adam", loss=KINDS[kind].loss, run_eagerly=True)
    target = np.array([0, 2]) if kind == "classification" else np.array([[1, 2], [3, 3]])
    before = bilstm.get_weights()[0].copy()
    model.train_on_batch(x, target)
    assert not np.allclose(bilstm.get_weights()[0], before)  # the BiLSTM is trained


def test_causal_encoder_classifies_from_last_real_token():
    encoder = tiny_encoder(attention="causal")
    model = build(encoder, "classification", 2)
    x = batch((2, 10))
    x["padding_mask"][1, 5:] = 0  # rows of different lengths: last real tokens at 6 and 4
    pooled = keras.Model(model.inputs, model.get_layer("last_token_pool").output)
    vectors = np.asarray(pooled(x, training=False))  # [2, H]: what the dense layer reads
    sequence = np.asarray(encoder(x, training=False)["sequence_output"])  # [2, 10, H]
    np.testing.assert_allclose(vectors, sequence[[0, 1], [6, 4]], atol=1e-6)
    out = np.asarray(model(x, training=False))
    y = {k: v.copy() for k, v in x.items()}
    y["token_ids"][0, 6] = y["token_ids"][0, 6] % 30 + 6  # row 0's last real token
    changed = np.asarray(model(y, training=False))
    assert not np.allclose(changed[0], out[0])
    np.testing.assert_allclose(changed[1], out[1], atol=1e-6)  # row 1 untouched


def test_multiple_choice_scores_each_choice_independently():
    model = build(tiny_encoder(), "multiple_choice", 4)
    x = batch((2, 4, 10))
    out = np.asarray(model(x, training=False))
    perm = [2, 0, 3, 1]
    permuted = {k: v[:, perm] for k, v in x.items()}
    np.testing.assert_allclose(np.asarray(model(permuted, training=False)), out[:, perm], atol=1e-5)


@pytest.mark.parametrize("choice,width,mix", [
    ("embeddings", H, None), ("second_to_last", H, None), ("last", H, None),
    ("sum_last_four", H, 4), ("concat_last_four", 4 * H, None), ("sum_all", H, 5)])
def test_feature_choices_width(choice, width, mix):
    model = build(tiny_encoder(num_layers=5), "tagging", 4, feature_layers=choice)
    assert model.get_layer("bilstm_1").input[0].shape[-1] == width
    assert model.get_layer("bilstm_1").forward_layer.units == H  # H units per direction
    assert tuple(model(batch((2, 10)), training=False).shape) == (2, 10, 4)
    if mix:  # sum_all mixes the 5 Transformer layers, not the embedding output
        assert model.get_layer("features").num_inputs == mix


def test_feature_selection_picks_the_right_hidden_states():
    encoder = tiny_encoder(num_layers=4)
    x = batch((2, 6))
    hidden = [np.asarray(h) for h in encoder(x, training=False)["hidden_states"]]
    frozen = tm.FrozenEncoder(encoder)
    states = frozen(x)
    np.testing.assert_allclose(np.asarray(tm.select_features(states, "second_to_last")), hidden[3], atol=1e-6)
    np.testing.assert_allclose(np.asarray(tm.select_features(states, "embeddings")), hidden[0], atol=1e-6)
    concat = np.asarray(tm.select_features(states, "concat_last_four"))
    np.testing.assert_allclose(concat, np.concatenate(hidden[1:], -1), atol=1e-6)
    mixed = np.asarray(tm.select_features(states, "sum_all"))  # zero init weights: the mean
    np.testing.assert_allclose(mixed, np.mean(hidden[1:], axis=0), atol=1e-5)


def test_head_settings_are_checked():
    with pytest.raises(ConfigError, match="at least 4 layers"):
        build(tiny_encoder(num_layers=2), "tagging", 4, feature_layers="concat_last_four")
    with pytest.raises(ConfigError, match="cannot be combined"):
        build(tiny_encoder(num_layers=2), "tagging", 4, feature_layers="last", head="bilstm")
    mrpc = get_task("mrpc")
    with pytest.raises(ConfigError, match="is for tagging tasks"):
        check_config(mrpc, kind_of(mrpc), FinetuneConfig(feature_layers="last"), ModelConfig())
    with pytest.raises(BertbenchError, match="at least 2 labels"):
        build(tiny_encoder(), "classification", 1)
    with pytest.raises(BertbenchError, match="unknown kind of task mrpc 'ranking'"):
        kind_of(dataclasses.replace(mrpc, kind="ranking"))


def test_feature_based_encoder_is_frozen_and_without_dropout():
    encoder = tiny_encoder(num_layers=4, dropout=0.5)  # dropout would show if it were active
    model = build(encoder, "tagging", 3, feature_layers="sum_last_four")
    x = batch((4, 8))
    frozen = model.get_layer("frozen_encoder")
    a, b = frozen(x, training=True), frozen(x, training=True)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert len(encoder.trainable_weights) == 0
    encoder_before = [w.copy() for w in encoder.get_weights()]
    mix_before = model.get_layer("features").get_weights()[0].copy()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=tagging.loss, run_eagerly=True)
    labels = np.where(x["padding_mask"] == 1, 1, -1)
    model.train_on_batch(x, labels)
    for before, after in zip(encoder_before, encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    assert not np.allclose(model.get_layer("features").get_weights()[0], mix_before)  # the mix learns
