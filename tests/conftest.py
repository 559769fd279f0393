from __future__ import annotations

from pathlib import Path

import pytest
import torch

from netbudget.data import FASHION_MNIST_DIR

HAS_FASHION = (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file()
needs_fashion = pytest.mark.skipif(
    not HAS_FASHION, reason=f"fashion-mnist not installed in {FASHION_MNIST_DIR} (make data)"
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the user's checkpoint cache from tests."""
    monkeypatch.setenv("NETBUDGET_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
