from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import tomllib
from pathlib import Path

import torch

import netbudget

ROOT = Path(__file__).resolve().parents[1]


def test_torch_is_the_cpu_build() -> None:
    # This machine kind has no GPU: a CUDA build means a dependency dragged in the wrong torch.
    assert torch.__version__.startswith("2.13.0")
    assert torch.version.cuda is None, f"CUDA build of torch installed ({torch.version.cuda})"


def test_version_is_defined_once() -> None:
    assert importlib.metadata.version("netbudget") == netbudget.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]


def test_every_torch_dependent_pin_is_exact() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        assert "==" in dep, f"dependency {dep!r} is not pinned exactly"
    assert "torch==2.13.0" in deps
    assert not any(d.startswith(("timm", "torchvision")) for d in deps)


def test_import_is_lean() -> None:
    code = (
        "import sys, netbudget, netbudget.data, netbudget.zoo, netbudget.train;"
        "heavy = [m for m in ('botorch', 'gpytorch', 'matplotlib', 'onnx', 'onnxruntime', 'optuna', 'torch_pruning')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"`import netbudget` pulled in heavy modules: {out.stdout.strip()}"


def test_py_typed_marker_ships() -> None:
    assert (Path(netbudget.__file__).parent / "py.typed").is_file()


def test_exceptions_derive_from_builtins() -> None:
    assert issubclass(netbudget.InvalidConstraintError, ValueError)
    assert issubclass(netbudget.DatasetError, ValueError)
    assert issubclass(netbudget.UnknownNameError, KeyError)
    for cls in (netbudget.DatasetError, netbudget.InvalidConstraintError, netbudget.UnreachableBudgetError):
        assert issubclass(cls, netbudget.NetbudgetError)


def test_readme_opens_with_the_two_commands() -> None:
    lines = [l for l in (ROOT / "README.md").read_text().splitlines() if l.strip()]
    fence = lines.index("```bash")
    assert lines[fence + 1 : fence + 3] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert platform.system() == "Linux"
