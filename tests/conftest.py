import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TEST_DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def sst2_float32_run(tmp_path_factory):
    """(model config, fine-tuning config, record) of ONE float32 fine-tuning on the bundled real SST-2
    (2,000 train / 400 dev sentences), random-init 2-layer H32 encoder, seed 0: the evidence that a tiny
    encoder learns (test_finetune.py) and the run a bf16 one must match (test_finetune_precision.py), paid once."""
    from bertbench.config import FinetuneConfig, ModelConfig
    from bertbench.finetuning import loop

    model = ModelConfig(num_layers=2, hidden_dim=32, num_heads=2, max_sequence_length=64)
    cfg = FinetuneConfig(task="sst2", learning_rate=3e-3, batch_size=32, epochs=4.0, max_seq_length=64,
                         padding="dynamic", seed=0)
    return model, cfg, loop.finetune(cfg, None, tmp_path_factory.mktemp("sst2_float32"), model_cfg=model)


@pytest.fixture
def shared_data():
    """The real data beside the checkout (../shared/data); skips with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
