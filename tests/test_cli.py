from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from netbudget.cli import app

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "demo"):
        assert command in result.output


def test_train_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "ckpt.pt"
    result = runner.invoke(app, ["train", "--model", "zoo:vgg", "--dataset", "digits", "--epochs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "test top-1" in result.output and f"saved {out}" in result.output.replace("\n", "")
    state = torch.load(out, weights_only=True)
    assert "classifier.4.weight" in state


def test_train_bad_model_exits_2_with_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--model", "zoo:nope", "--out", str(tmp_path / "x.pt")])
    assert result.exit_code == 2
    assert "Unknown model 'zoo:nope'" in result.output


@pytest.mark.slow
def test_demo_trains_then_reuses_the_cache() -> None:
    first = runner.invoke(app, ["demo"])
    assert first.exit_code == 0, first.output
    assert "training" in first.output and "test top-1" in first.output
    accuracy = float(first.output.split("test top-1")[1].split("%")[0])
    assert accuracy >= 96.0
    second = runner.invoke(app, ["demo"])
    assert "cached" in second.output
    assert f"{accuracy:.2f} %" in second.output
