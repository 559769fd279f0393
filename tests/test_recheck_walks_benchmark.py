"""The re-check walks benchmark (benchmarks/recheck_walks.py) on made-up run directories."""

import json

import pytest


@pytest.fixture(scope="module")
def walks(load_benchmark):
    return load_benchmark("recheck_walks")


def _try(position: float, passed: bool, kept: float | None = None, retime: int = 0) -> dict:
    record = {"position": position, "passed": passed, "upper_confidence": {"latency.mean": 0.003}}
    if kept is not None:
        record["params_kept"] = kept
    if retime:
        record["retime"] = retime
    return record


def _run_dir(root, name: str, tries: list[dict], position: float, passed: bool = True, feasible: bool = True,
             guard: dict | None = None):
    run = root / name
    (run / "final").mkdir(parents=True)
    summary = {"feasible": feasible, "guard": guard,
               "constraints": [{"key": "latency.mean", "original": 0.005, "bound": 0.003, "ratio": 0.55}],
               "recheck": {"position": position, "passed": passed, "tries": tries,
                           "thresholds": {"latency.mean": 0.00288}}}
    (run / "final" / "summary.json").write_text(json.dumps(summary))
    return run


def test_run_names_split_into_network_cell_method_and_seed(walks) -> None:
    assert walks.parse_run_name("resnet20-lat60-small-tpe-soup2-bnfinal-thin-retime-s3") == {
        "network": "resnet20", "cell": "lat60-small", "method": "tpe-soup2-bnfinal-thin-retime", "seed": 3}
    assert walks.parse_run_name("vgg-lat40-one-step-s12") == {
        "network": "vgg", "cell": "lat40", "method": "one-step", "seed": 12}
    assert walks.parse_run_name("resnet20-lat60-small-headroom.json") is None
    assert walks.parse_run_name("vgg-lat40-greedy-s0") is None  # not a method of the study


def test_each_way_a_walk_ends_is_told_apart(walks) -> None:
    held_at_once = {"position": 0.0, "passed": True, "tries": [_try(0.0, True)]}
    assert walks.walk_outcome(held_at_once, None) is None
    retimed = {"position": 0.0, "passed": True, "tries": [_try(0.0, False), _try(0.0, True, retime=1)]}
    assert walks.walk_outcome(retimed, None) == {"outcome": "winner", "position": 0.0, "params_kept": 1.0,
                                                 "tries": 2, "retimes": 1, "halfway_same_network": 0}
    same = {"position": 0.0625, "passed": True,
            "tries": [_try(0.0, False), _try(0.03125, False, 1.0), _try(0.0625, True, 1.0)]}
    assert walks.walk_outcome(same, None)["outcome"] == "same network"
    # held at 1/8 keeping every width, then the halfway 3/32 timed twice (a re-time): the same network
    halfway = {"position": 0.125, "passed": True, "tries": [_try(0.0, False), _try(0.125, True, 1.0),
                                                            _try(0.09375, False, 1.0), _try(0.09375, False, 1.0, 1)]}
    assert walks.walk_outcome(halfway, None)["halfway_same_network"] == 2
    # the halfway share held too: counted when the record says the first held share kept every width
    both = {"position": 0.09375, "passed": True, "tries": [_try(0.0, False), _try(0.125, True, 1.0),
                                                          _try(0.09375, True, 1.0)]}
    assert walks.walk_outcome(both, None)["halfway_same_network"] == 1
    unknown = {"position": 0.09375, "passed": True, "tries": [_try(0.0, False), _try(0.125, True), _try(0.09375, True)]}
    assert walks.walk_outcome(unknown, 1.0)["halfway_same_network"] == 0  # 1/8's own widths unknown
    thinned = {"position": 0.25, "passed": True, "tries": [_try(0.0, False), _try(0.125, False, 0.83),
                                                           _try(0.25, True, 0.59), _try(0.1875, False, 0.7)]}
    outcome = walks.walk_outcome(thinned, None)
    assert outcome["outcome"] == "thinned" and outcome["params_kept"] == 0.59 and outcome["tries"] == 4
    # an older record without params_kept takes the count given by the caller
    older = {"position": 0.125, "passed": True, "tries": [_try(0.0, False), _try(0.125, True)]}
    assert walks.walk_outcome(older, 1.0)["outcome"] == "same network"
    assert walks.walk_outcome(older, 0.8)["params_kept"] == 0.8
    with pytest.raises(ValueError, match="held at share 0.125, but its kept parameters are unknown"):
        walks.walk_outcome(older, None)
    missed = {"position": 1.0, "passed": False, "tries": [_try(0.0, False), _try(1.0, False, 0.3)]}
    assert walks.walk_outcome(missed, None)["outcome"] == "missed"


def test_run_directories_are_read_and_counted_per_cell(walks, tmp_path) -> None:
    _run_dir(tmp_path, "resnet20-lat60-small-exponential-s0", [_try(0.0, True)], 0.0)
    _run_dir(tmp_path, "resnet20-lat60-small-exponential-s1",
             [_try(0.0, False), _try(0.03125, True, 1.0)], 0.03125)
    _run_dir(tmp_path, "resnet20-lat60-small-tpe-s0",
             [_try(0.0, False), _try(0.25, True, 0.6)], 0.25, feasible=False)
    _run_dir(tmp_path, "vgg-lat40-uniform-s0", [_try(0.0, False), _try(0.0, True, retime=1)], 0.0)
    # the guard shipped the uniform path's network: the export is not the walk's
    _run_dir(tmp_path, "vgg-lat40-exponential-s0", [_try(0.0, False), _try(0.5, True, 0.4)], 0.5,
             guard={"applied": True})
    read = {p.name: walks.read_run(p) for p in tmp_path.iterdir()}
    assert read["vgg-lat40-exponential-s0"] is None and sum(r is None for r in read.values()) == 1
    runs = list(read.values())
    tpe = next(r for r in runs if r and r["method"] == "tpe")
    assert tpe["threshold_ratio"] == pytest.approx(0.576) and tpe["bound_ratio"] == pytest.approx(0.6)
    assert tpe["verified"] is False and tpe["walk"]["params_kept"] == 0.6
    rows = {(r["network"], r["cell"]): r for r in walks.summarise([r for r in runs if r])}
    assert rows[("resnet20", "lat60-small")] == {
        "network": "resnet20", "cell": "lat60-small", "runs": 3, "walked": 2, "winner": 0, "same_network": 1,
        "thinned": 1, "missed": 0, "walked_verified": 1, "halfway_same_network": 0}
    assert rows[("vgg", "lat40")]["winner"] == 1
    assert rows[("all", "all")]["runs"] == 4 and rows[("all", "all")]["walked"] == 3


def test_the_markdown_shows_each_walk(walks, tmp_path) -> None:
    run = walks.read_run(_run_dir(tmp_path, "resnet20-lat60-small-tpe-s0",
                                  [_try(0.0, False), _try(0.25, True, 0.6)], 0.25))
    run["run"] = "resnet20-lat60-small-tpe-s0"
    result = {"machine": "cpu", "runs_dir": str(tmp_path), "summary": walks.summarise([run]), "runs": [run]}
    text = "\n".join(walks.markdown(result))
    assert "| resnet20 | lat60-small | 1 | 1 | 0 | 0 | 1 | 0 | 1/1 | 0 |" in text
    assert "| resnet20-lat60-small-tpe-s0 | thinned | 0.25 | 60 % | 2 (0) | yes | 0.550x |" in text


def test_a_missing_or_empty_runs_directory_is_named_in_the_error(walks, tmp_path, monkeypatch, capsys) -> None:
    missing = tmp_path / "nowhere"
    monkeypatch.setattr("sys.argv", ["recheck_walks.py", "--runs", str(missing)])
    with pytest.raises(SystemExit):
        walks.main()
    assert f"--runs: no directory {missing}" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr("sys.argv", ["recheck_walks.py", "--runs", str(tmp_path / "empty")])
    with pytest.raises(SystemExit):
        walks.main()
    assert "no finished ablation run with a re-check under" in capsys.readouterr().err


def test_runs_whose_directories_are_gone_are_kept_from_the_earlier_record(walks, tmp_path, monkeypatch) -> None:
    runs_dir = tmp_path / "runs"
    _run_dir(runs_dir, "resnet20-lat60-small-tpe-s8", [_try(0.0, False), _try(0.25, True, 0.6)], 0.25)
    _run_dir(runs_dir, "resnet20-lat60-small-tpe-s1", [_try(0.0, False), _try(0.0, True, retime=1)], 0.0)
    earlier_walk = {"outcome": "same network", "position": 0.0625, "params_kept": 1.0, "tries": 3, "retimes": 0,
                    "halfway_same_network": 0}
    earlier = [{"network": "resnet20", "cell": "lat60-small", "method": "uniform", "seed": 0, "walk": earlier_walk,
                "verified": True, "threshold_ratio": 0.576, "bound_ratio": 0.6, "final_ratio": 0.57,
                "run": "resnet20-lat60-small-uniform-s0"},
               # its directory is still there: read anew (a re-time that held, not the old thinning)
               {"network": "resnet20", "cell": "lat60-small", "method": "tpe", "seed": 1,
                "walk": {**earlier_walk, "outcome": "thinned", "params_kept": 0.5}, "verified": False,
                "threshold_ratio": 0.576, "bound_ratio": 0.6, "final_ratio": 0.61, "run": "resnet20-lat60-small-tpe-s1"}]
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(walks, "RESULTS", results)
    monkeypatch.setattr("netbudget.metrics.describe_machine", lambda: {"cpu": "cpu A"})
    (results / "recheck_walks.json").write_text(json.dumps({"machine": "cpu A", "runs_dir": "/gone", "summary": [],
                                                            "runs": earlier}))
    monkeypatch.setattr("sys.argv", ["recheck_walks.py", "--runs", str(runs_dir)])
    walks.main()
    record = json.loads((results / "recheck_walks.json").read_text())
    by_run = {r["run"]: r for r in record["runs"]}
    assert sorted(by_run) == ["resnet20-lat60-small-tpe-s1", "resnet20-lat60-small-tpe-s8",
                              "resnet20-lat60-small-uniform-s0"]
    assert by_run["resnet20-lat60-small-uniform-s0"]["earlier"] is True
    assert by_run["resnet20-lat60-small-tpe-s1"]["walk"]["outcome"] == "winner"
    assert "earlier" not in by_run["resnet20-lat60-small-tpe-s8"]
    assert record["summary"][-1] == {"network": "all", "cell": "all", "runs": 3, "walked": 3, "winner": 1,
                                     "same_network": 1, "thinned": 1, "missed": 0, "walked_verified": 3,
                                     "halfway_same_network": 0}
    text = (results / "recheck_walks.md").read_text()
    assert "1 of the 3 runs are kept from the earlier record" in text
    assert "| resnet20-lat60-small-uniform-s0 (*earlier record*) | same network |" in text
    # --fresh, or an earlier record of another CPU model: only the directories there now
    monkeypatch.setattr("sys.argv", ["recheck_walks.py", "--runs", str(runs_dir), "--fresh"])
    walks.main()
    assert len(json.loads((results / "recheck_walks.json").read_text())["runs"]) == 2
    (results / "recheck_walks.json").write_text(json.dumps({"machine": "cpu B", "runs_dir": "/gone", "summary": [],
                                                            "runs": earlier}))
    monkeypatch.setattr("sys.argv", ["recheck_walks.py", "--runs", str(runs_dir)])
    walks.main()
    assert len(json.loads((results / "recheck_walks.json").read_text())["runs"]) == 2
