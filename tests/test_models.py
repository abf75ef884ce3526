import subprocess
import sys

import pytest

from bertbench import cli
from bertbench.config import ModelConfig, model_preset
from bertbench.model.presets import count_parameters, preset_rows


def test_hand_counted_tiny_model():
    # V=10, P=6, S=2, H=4, I=8, L=1:
    # embeddings (10+6+2)*4 + LayerNorm 2*4 = 80; attention 4*(4*4+4) = 80;
    # feed-forward (4*8+8) + (8*4+4) = 76; two LayerNorms 16; pooler 4*4+4 = 20.
    cfg = ModelConfig(vocabulary_size=10, num_layers=1, hidden_dim=4, num_heads=1, intermediate_dim=8,
                      max_sequence_length=6, num_segments=2)
    assert count_parameters(cfg) == 80 + 80 + 76 + 16 + 20


def test_paper_sizes():
    # BERT-base 110M and BERT-large 340M of the paper, exact counts of keras_hub BertBackbone.
    assert count_parameters(model_preset("base")) == 109_482_240
    assert count_parameters(model_preset("large")) == 335_141_888


@pytest.mark.parametrize("fields", [
    dict(vocabulary_size=37, num_layers=1, hidden_dim=8, num_heads=2),
    dict(vocabulary_size=99, num_layers=3, hidden_dim=12, num_heads=3, intermediate_dim=20,
         max_sequence_length=17, num_segments=4),
    dict(vocabulary_size=64, num_layers=2, hidden_dim=16, num_heads=4, attention="causal"),
])
def test_count_equals_built_model(fields):
    from bertbench.model.encoder import build_encoder

    cfg = ModelConfig(**fields)
    assert build_encoder(cfg).count_params() == count_parameters(cfg)


@pytest.mark.slow  # builds a 110M-parameter model
def test_built_base_model_has_paper_count():
    from bertbench.model.encoder import build_encoder

    cfg = model_preset("base")
    assert build_encoder(cfg).count_params() == count_parameters(cfg) == 109_482_240


def test_models_command_prints_every_preset(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for row in preset_rows():
        assert row["name"] in out
    assert "109,482,240" in out and "335,141,888" in out
    assert cli.main(["models", "--vocab-size", "1000"]) == 0
    small = capsys.readouterr().out
    assert f"{count_parameters(model_preset('base', vocabulary_size=1000)):,}" in small


def test_models_command_does_not_import_tensorflow():
    code = ("import sys; from bertbench import cli; cli.main(['models']); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
