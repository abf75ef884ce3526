import pytest

from bertbench.config import (FinetuneConfig, ModelConfig, PretrainConfig, apply_overrides, from_dict,
                              load_toml, model_preset, to_dict)
from bertbench.errors import BertbenchError, ConfigError


def test_presets_and_intermediate_default():
    cfg = model_preset("base")
    assert (cfg.num_layers, cfg.hidden_dim, cfg.num_heads, cfg.intermediate_dim) == (12, 768, 12, 3072)
    assert model_preset("l6_h768_a3").head_dim == 256
    assert model_preset("tiny", intermediate_dim=64).intermediate_dim == 64


def test_invalid_model_combinations():
    with pytest.raises(ConfigError, match="not divisible"):
        ModelConfig(hidden_dim=100, num_heads=3)
    with pytest.raises(ConfigError, match="must be positive"):
        ModelConfig(num_layers=0)
    with pytest.raises(ConfigError, match="did you mean 'causal'"):
        ModelConfig(attention="casual")
    with pytest.raises(BertbenchError, match="unknown model preset 'bsae'.*did you mean 'base'"):
        model_preset("bsae")


def test_overrides_are_typed_and_checked():
    cfg = apply_overrides(PretrainConfig(), ["objective=mlm", "masking=[1.0, 0.0, 0.0]", "learning_rate=5e-5",
                                             "num_steps=300", "warmup_steps=30"])
    assert cfg.objective == "mlm" and cfg.masking == (1.0, 0.0, 0.0) and cfg.num_steps == 300
    assert apply_overrides(PretrainConfig(), ["learning_rate=1"]).learning_rate == 1.0
    with pytest.raises(ConfigError, match="unknown setting 'num_step'.*did you mean 'num_steps'"):
        apply_overrides(PretrainConfig(), ["num_step=3"])
    with pytest.raises(ConfigError, match="num_steps must be int, got str"):
        apply_overrides(PretrainConfig(), ["num_steps=many"])
    with pytest.raises(ConfigError, match="must be int, got bool"):
        apply_overrides(PretrainConfig(), ["num_steps=true"])
    with pytest.raises(ConfigError, match="summing to 1"):
        apply_overrides(PretrainConfig(), ["masking=[0.8, 0.1, 0.2]"])
    with pytest.raises(ConfigError, match="not key=value"):
        apply_overrides(PretrainConfig(), ["objective"])


def test_seq_length_and_predictions():
    assert PretrainConfig().predictions_per_seq() == 20  # ceil(0.15 * 128), google-research/bert's 20
    assert PretrainConfig(masked_lm_prob=0.4).predictions_per_seq() == 52
    assert PretrainConfig().predictions_per_seq(512) == 77
    with pytest.raises(ConfigError, match="warmup_steps"):
        PretrainConfig(num_steps=10, warmup_steps=20)


def test_round_trip_through_dict_and_toml(tmp_path):
    cfg = FinetuneConfig(task="sst2", epochs=2)
    assert from_dict(FinetuneConfig, to_dict(cfg)) == cfg
    path = tmp_path / "c.toml"
    path.write_text('task = "rte"\nlearning_rate = 3e-5\n')
    assert from_dict(FinetuneConfig, load_toml(path)).task == "rte"
    path.write_text("task = [unclosed\n")
    with pytest.raises(ConfigError, match="malformed TOML"):
        load_toml(path)
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")


def test_feature_based_runs_use_their_own_rate_and_epochs():
    cfg = FinetuneConfig(task="conll2003", learning_rate=2e-5, epochs=3.0)
    assert (cfg.effective_learning_rate, cfg.effective_epochs) == (2e-5, 3.0)
    frozen = FinetuneConfig(task="conll2003", learning_rate=2e-5, epochs=3.0, feature_layers="last",
                            feature_learning_rate=5e-3, feature_epochs=6.0)
    assert (frozen.effective_learning_rate, frozen.effective_epochs) == (5e-3, 6.0)
    assert FinetuneConfig(feature_layers="last", epochs=2.0).effective_epochs == 2.0  # 0 = epochs
    with pytest.raises(ConfigError, match="feature_learning_rate must be positive"):
        FinetuneConfig(feature_learning_rate=0.0)
