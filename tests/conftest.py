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


@pytest.fixture(scope="session")
def vgg_mnist5k(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    """The demo network (zoo:vgg trained 15 epochs on mnist5k), trained once per test session."""
    from netbudget.zoo import pretrained

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NETBUDGET_CACHE", str(tmp_path_factory.mktemp("session-cache")))
        return pretrained("vgg", "mnist5k", epochs=15, progress=False)


@pytest.fixture(scope="session")
def load_benchmark():
    """Import a script of ``benchmarks/`` (not a package) by name, e.g. ``load_benchmark("ablation")``."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load

