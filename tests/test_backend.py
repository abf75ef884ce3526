"""The runner's executor (bertbench.backend): what it hands to the loops, and --backend loading."""

import pytest

from bertbench import backend
from bertbench.config import FinetuneConfig
from bertbench.errors import BertbenchError


def test_finetune_passes_the_strategy_on(monkeypatch):
    """Bug: `run --strategy mirrored` fine-tuned under the default strategy (the Backend dropped it)."""
    calls = []
    monkeypatch.setattr(backend, "finetune", lambda *args, **kwargs: calls.append((args, kwargs)) or {"ok": 1})
    cfg = FinetuneConfig(task="mrpc")
    assert backend.Backend().finetune(cfg, "ckpt", "out", "data", strategy="mirrored") == {"ok": 1}
    assert calls == [((cfg, "ckpt", "out", "data"), {"strategy": "mirrored"})]
    backend.Backend().finetune(cfg, "ckpt", "out", "data")
    assert calls[1][1] == {"strategy": "default"}


def test_load_backend(tmp_path):
    assert isinstance(backend.load_backend(None), backend.Backend)
    assert isinstance(backend.load_backend("bertbench.backend:Backend"), backend.Backend)  # a class: instantiated
    module = tmp_path / "executor.py"
    module.write_text("class Mine:\n    pass\n\nINSTANCE = Mine()\n", encoding="utf-8")
    assert type(backend.load_backend(f"{module}:Mine")).__name__ == "Mine"
    assert backend.load_backend(f"{module}:INSTANCE").__class__.__name__ == "Mine"
    for spec, message in (("nocolon", "must look like"), (f"{tmp_path}/none.py:X", "file not found"),
                          (f"{module}:Other", "has no attribute 'Other'")):
        with pytest.raises(BertbenchError, match=message):
            backend.load_backend(spec)
