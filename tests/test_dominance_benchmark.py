"""benchmarks/dominance.py: searched networks the uniform one dominates in MACs and parameters."""

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def dominance(load_benchmark):
    return load_benchmark("dominance")


def _run(runs: Path, name: str, macs: float, params: float, top1: float, ratio: float = 0.45) -> None:
    final = runs / name / "final"
    final.mkdir(parents=True)
    (final / "summary.json").write_text(json.dumps({
        "metrics": {"final": {"macs": macs, "params": params}}, "accuracy": {"final": top1},
        "constraints": [{"text": "latency <= 0.5x", "ratio": ratio}]}))


def test_dominated_needs_no_more_of_both_and_fewer_of_one(dominance) -> None:
    uniform = {"macs": 100, "params": 50}
    assert dominance.dominated({"macs": 90, "params": 50}, uniform)
    assert dominance.dominated({"macs": 90, "params": 40}, uniform)
    assert not dominance.dominated({"macs": 100, "params": 50}, uniform)  # the same network
    assert not dominance.dominated({"macs": 110, "params": 40}, uniform)  # more compute, less capacity


def test_runs_pair_by_seed_split_by_dominance_and_summarise_per_cell_and_over_all(
    dominance, monkeypatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.syspath_prepend(BENCHMARKS)
    runs = tmp_path / "runs"
    for seed in (0, 1, 2):
        _run(runs, f"resnet20-lat50-uniform-s{seed}", 100, 50, 0.92, ratio=0.43)
    _run(runs, "resnet20-lat50-exponential-s0", 90, 40, 0.915)  # dominated, 0.5 pt below
    _run(runs, "resnet20-lat50-exponential-s1", 95, 50, 0.910)  # dominated, 1.0 pt below
    _run(runs, "resnet20-lat50-exponential-s2", 110, 40, 0.925)  # more MACs: not dominated, 0.5 pt above
    _run(runs, "resnet20-lat50-exponential-s3", 80, 30, 0.900)  # no uniform run of seed 3: skipped
    out = tmp_path / "dominance.json"
    monkeypatch.setattr("sys.argv", ["dominance.py", "--runs", str(runs), "--cells", "lat50", "--methods",
                                     "exponential", "--versus", "uniform", "--out", str(out)])
    dominance.main()
    printed = capsys.readouterr().out
    assert "resnet20-lat50-exponential-s3: no finished uniform run of seed 3; skipped" in printed
    assert "[dominance] dominated: 2 runs, -0.75 pt against uniform, 2 below" in printed
    results = json.loads(out.read_text())
    assert [(r["seed"], r["dominated"]) for r in results["runs"]] == [(0, True), (1, True), (2, False)]
    assert results["runs"][0]["minus_uniform"] == pytest.approx(-0.5)
    assert results["runs"][0]["uniform_latency_ratio"] == 0.43
    lat50 = {s["dominated"]: s for s in results["summary"] if s["cell"] == "lat50"}
    assert lat50[True]["n"] == 2 and lat50[True]["mean"] == pytest.approx(-0.75)
    assert lat50[True]["sd"] == pytest.approx(0.3536, abs=1e-4) and lat50[True]["below"] == 2
    assert lat50[False] == {"cell": "lat50", "dominated": False, "n": 1, "mean": pytest.approx(0.5), "sd": None, "below": 0}
    text = out.with_suffix(".md").read_text()
    assert "| lat50 | yes | 2 | -0.75 | 0.35 | 2 of 2 |" in text
    assert "| all | no | 1 | +0.50 | - | 0 of 1 |" in text
    assert ("| resnet20 | lat50 | exponential | 0 | 0.90 | 0.80 | 0.450 | 0.430 | 91.50 % | -0.50 | yes |") in text


def test_the_uniform_method_in_methods_stops_before_any_work(dominance, monkeypatch) -> None:
    monkeypatch.syspath_prepend(BENCHMARKS)
    monkeypatch.setattr("sys.argv", ["dominance.py", "--methods", "a,uniform", "--versus", "uniform"])
    with pytest.raises(SystemExit, match="--versus uniform: it is also in --methods"):
        dominance.main()
