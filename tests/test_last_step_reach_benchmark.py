"""The last step's reach benchmark (benchmarks/last_step_reach.py) on made-up run directories."""

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution


@pytest.fixture(scope="module")
def reach(load_benchmark):
    return load_benchmark("last_step_reach")


def _run_dir(root: Path, name: str, steps: list[list[tuple[float, float]]], *, winner: int, top1: float,
             shipped: tuple[float, float], base: str | None = None, done: bool = True) -> Path:
    """A run directory whose study holds ``steps``: per step, its candidates' (latency ratio, MACs)
    scored under the threshold 0.6; the last step's winner is its trial ``winner``."""
    run = root / name
    (run / "final").mkdir(parents=True)
    storage = f"sqlite:///{run / 'study.db'}"
    for t, candidates in enumerate(steps):
        study = optuna.create_study(storage=storage, study_name=f"step-{t}", direction="maximize")
        study.set_user_attr("thresholds", {"latency.mean": 0.6})
        for ratio, macs in candidates:
            study.add_trial(optuna.trial.create_trial(
                params={"channels:a": 0.1}, distributions={"channels:a": FloatDistribution(0, 0.99)}, value=0.9,
                user_attrs={"measured": {"latency.mean": ratio}, "macs": macs}))
        study.add_trial(optuna.trial.create_trial(  # a probe: never a candidate
            params={"channels:a": 0.99}, distributions={"channels:a": FloatDistribution(0, 0.99)},
            state=optuna.trial.TrialState.PRUNED, user_attrs={"probe": 1.0, "measured": {"latency.mean": 0.1}}))
        study.set_user_attr("winner", winner)
        if done:
            study.set_user_attr("done", True)
        if base is not None and t == len(steps) - 1:
            study.set_user_attr("base", base)
    summary = {"feasible": True, "guard": {"applied": False}, "accuracy": {"original": 0.93, "final": top1},
               "metrics": {"final": {"macs": shipped[0], "params": shipped[1]}}}
    (run / "final" / "summary.json").write_text(json.dumps(summary))
    return run


def test_the_last_steps_candidates_under_its_threshold_are_its_reach(reach, tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "vgg-lat60-small-exponential-soup2-bnfinal-thin-retime-guard-lastorig-s3",
                   [[(0.5, 9e6)], [(0.55, 2.0e6), (0.65, 3.0e6), (0.59, 2.5e6)]], winner=2, top1=0.91,
                   shipped=(2.4e6, 60e3), base="original")
    record = reach.read_run(run)
    # the 0.65 candidate missed the threshold; step 0's 9 M are not the last step's
    assert (record["step"], record["base"], record["n_scored"], record["n_under"]) == (1, "original", 3, 2)
    assert (record["reach_max_macs"], record["reach_mean_macs"], record["winner_macs"]) == (2.5e6, 2.25e6, 2.5e6)
    assert (record["shipped_macs"], record["shipped_params"], record["final_top1"]) == (2.4e6, 60e3, 0.91)
    assert (record["method"], record["seed"]) == ("exponential-soup2-bnfinal-thin-retime-guard-lastorig", 3)
    unfinished = _run_dir(tmp_path, "vgg-lat60-small-one-step-s0", [[(0.5, 2e6)]], winner=0, top1=0.9,
                          shipped=(2e6, 50e3), done=False)
    assert reach.read_run(unfinished) is None  # its last step never finished
    (tmp_path / "vgg-lat60-small-headroom.json").mkdir()
    assert reach.read_run(tmp_path / "vgg-lat60-small-headroom.json") is None


def test_methods_are_averaged_and_top1_ranked_against_shipped_size_without_uniform(reach) -> None:
    def run(method, seed, macs, params, top1, reach_max=None):
        return {"network": "vgg", "cell": "lat60-small", "method": method, "seed": seed, "reach_max_macs": reach_max,
                "reach_mean_macs": None, "winner_macs": macs, "shipped_macs": macs, "shipped_params": params,
                "final_top1": top1}

    runs = [run("one-step", 0, 2.4e6, 66e3, 0.916, 3.0e6), run("one-step", 1, 2.2e6, 60e3, 0.914, 2.0e6),
            run("exponential", 0, 2.0e6, 50e3, 0.911), run("exponential", 1, 1.8e6, 55e3, 0.905),
            run("uniform", 0, 1.9e6, 40e3, 0.999), run("uniform", 1, 1.9e6, 40e3, 0.001)]
    per_method, per_cell = reach.summarise(runs)
    one = next(m for m in per_method if m["method"] == "one-step")
    assert one["runs"] == 2 and one["reach_max_macs"] == pytest.approx(2.5e6)
    assert one["final_top1"] == pytest.approx(0.915)
    assert next(m for m in per_method if m["method"] == "exponential")["reach_max_macs"] is None  # none recorded
    (cell,) = per_cell
    assert cell["runs"] == 4  # uniform's two left out
    assert cell["spearman_macs"] == pytest.approx(1.0)  # top-1 in the order of MACs
    assert cell["spearman_params"] == pytest.approx(0.8)  # ranks 4,3,1,2 against 4,3,2,1
    assert reach.spearman([1.0, 2.0], [1.0, 2.0]) is None and reach.spearman([1.0, 1.0, 1.0], [1, 2, 3]) is None


def test_the_script_writes_its_tables_and_says_what_is_missing(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "last_step_reach.py"
    missing = subprocess.run([sys.executable, str(script), "--quick", "--runs", str(tmp_path / "none")],
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "--runs: no directory" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = subprocess.run([sys.executable, str(script), "--quick", "--runs", str(empty)],
                             capture_output=True, text=True, check=False)
    assert nothing.returncode == 2 and "no finished ablation run" in nothing.stderr


def test_the_tables_show_reach_shipped_size_and_rank_correlations(reach) -> None:
    runs = [{"network": "vgg", "cell": "lat60-small", "method": "one-step", "seed": s, "reach_max_macs": 3.0e6,
             "reach_mean_macs": 2.5e6, "winner_macs": 2.4e6, "shipped_macs": 2.36e6 + s, "shipped_params": 66e3 + s,
             "final_top1": 0.91 + s / 100, "run": f"vgg-lat60-small-one-step-s{s}"} for s in range(3)]
    per_method, per_cell = reach.summarise(runs)
    lines = reach.markdown({"machine": "Test CPU", "runs_dir": "/runs", "methods": per_method, "cells": per_cell,
                            "runs": [runs[0], {**runs[1], "earlier": True}, runs[2]]})
    assert "| vgg | lat60-small | one-step | 3 | 3.00 M | 2.50 M | 2.40 M | 2.36 M | 66.0 k | 92.00 % |" in lines
    assert "| vgg | lat60-small | 3 | +1.00 | +1.00 |" in lines
    assert any("1 of the 3 runs are kept from the earlier record" in line for line in lines)
