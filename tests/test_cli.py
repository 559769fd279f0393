from __future__ import annotations

import json
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


def test_option_help_shows_its_default() -> None:
    # "[default: 12]" would be read as rich markup and vanish unless escaped
    result = runner.invoke(app, ["compress", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Candidates evaluated per step [default: 12]." in text
    assert "when channels mix with prune/bits [default: on]." in text
    assert "Candidates evaluated in the last of several steps [default: as --trials]." in text


def test_compress_bad_last_trials_exits_2_naming_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compress", "-c", "macs <= 0.5x", "--last-trials", "0", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "`last_trials` must be an integer >= 1" in " ".join(result.output.split())


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
def test_demo_trains_then_reuses_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from netbudget import cli

    # the demo's own path (training, search, verification, report) on a smaller search:
    # the full one (3 steps of 8) took 640 s of a 1211 s suite; `make demo` runs it as shipped
    with monkeypatch.context() as smaller:
        smaller.setattr(cli, "DEMO_SETTINGS", {"steps": 2, "trials": 4, "final_epochs": 1, "moment_seconds": 2.0})
        first = runner.invoke(app, ["demo"])
    assert first.exit_code == 0, first.output
    assert "FEASIBLE after" in first.output and "cannot be met" not in first.output
    assert "training" in first.output and "test top-1" in first.output
    accuracy = float(first.output.split("test top-1")[1].split("%")[0])
    assert accuracy >= 96.0
    assert "latency <= 0.7x" in first.output and "met" in first.output

    # a second demo loads the cached network; its search is not what is tested here
    from netbudget.pipeline import run as pipeline_run

    def stop(model, *args, **kwargs):
        assert model == "zoo:vgg" and kwargs["steps"] == 3
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline_run, "compress", stop)
    second = runner.invoke(app, ["demo"])
    assert second.exit_code == 130, second.output
    assert "cached" in second.output and "training" not in second.output


def test_measure_json_has_the_documented_keys() -> None:
    result = runner.invoke(app, ["measure", "--model", "zoo:resnet20", "--dataset", "digits", "--repeats", "5", "--warmup", "1", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    for key in ("latency_ms", "latency_p99_ms", "size_bytes", "macs", "params", "memory_bytes"):
        assert key in payload and payload[key] > 0
    assert payload["latency_p99_ms"] >= payload["latency_median_ms"]
    assert payload["macs"] == 2532992  # resnet20 on 1x8x8 inputs


def test_measure_table_and_weights(tmp_path: Path) -> None:
    from netbudget.zoo import build_model, save_checkpoint

    path = save_checkpoint(build_model("vgg", input_size=8), tmp_path / "w.pt")
    result = runner.invoke(app, ["measure", "--dataset", "digits", "--weights", str(path), "--repeats", "3", "--backend", "torch"])
    assert result.exit_code == 0, result.output
    assert "size (packed)" in result.output and "peak activation memory" in result.output


def test_measure_bad_backend_and_missing_weights(tmp_path: Path) -> None:
    result = runner.invoke(app, ["measure", "--backend", "tvm"])
    assert result.exit_code == 2 and "backend='tvm'" in result.output
    result = runner.invoke(app, ["measure", "--dataset", "digits", "--weights", str(tmp_path / "none.pt")])
    assert result.exit_code == 2 and "none.pt does not exist" in result.output
