import keras
import numpy as np
import pytest

from bertbench.model.optimization import WarmupLinearDecay, create_optimizer


def test_warmup_then_linear_decay_hand_computed():
    schedule = WarmupLinearDecay(1e-4, warmup_steps=10, total_steps=110)
    values = {s: float(schedule(s)) for s in (0, 5, 10, 60, 110, 200)}
    assert values[0] == 0.0
    assert values[5] == pytest.approx(0.5e-4)
    assert values[10] == pytest.approx(1e-4)
    assert values[60] == pytest.approx(0.5e-4)  # halfway through the 100 decay steps
    assert values[110] == 0.0 and values[200] == 0.0
    assert WarmupLinearDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_weight_decay_skips_layer_norm_and_bias():
    dense = keras.layers.Dense(3)
    norm = keras.layers.LayerNormalization()
    model = keras.Sequential([keras.Input((4,)), dense, norm])
    for var in model.trainable_variables:
        var.assign(np.ones(var.shape, "float32"))
    optimizer = create_optimizer(1e-1, num_steps=10, warmup_steps=0, weight_decay=0.5, clip_norm=1.0)
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    # Zero gradients: Adam's update is 0, so only the decoupled weight decay can move a variable.
    optimizer.apply_gradients([(np.zeros(v.shape, "float32"), v) for v in model.trainable_variables])
    lr = 1e-1  # step 0 of a schedule without warmup
    for var in model.trainable_variables:
        moved = not np.allclose(var.numpy(), before[var.path])
        if "kernel" in var.path:
            np.testing.assert_allclose(var.numpy(), before[var.path] * (1 - lr * 0.5), rtol=1e-6)
        else:  # bias, gamma, beta
            assert not moved, var.path
