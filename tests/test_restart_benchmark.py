"""The restart benchmark (benchmarks/restart.py): the final widths rebuilt from the dense
network, and the paired summary on made-up rows."""

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def restart(load_benchmark):
    return load_benchmark("restart")


def test_the_dense_network_pruned_once_to_a_runs_widths_has_exactly_those_widths(restart) -> None:
    from netbudget.zoo import build_model

    model = build_model("vgg", width=0.5).eval()  # 8-8-16-16-32-32-64-10
    want = {"features.0": 8, "features.3": 8, "features.7": 8, "features.10": 16, "features.14": 8,
            "features.17": 24, "classifier.1": 16, "classifier.4": 10}
    candidate = restart.restarted(model, (1, 28, 28), want, round_to=8)
    assert restart._widths(candidate.module) == want
    assert restart._widths(model)["features.17"] == 32  # the dense network is left alone
    with pytest.raises(ValueError, match=r"features.17: no channel ratio keeps 20 of 32 channels \(round_to 8\)"):
        restart.restarted(model, (1, 28, 28), {**want, "features.17": 20}, round_to=8)


def _row(run: str, method: str, chain: float, final: float, total: float) -> dict:
    return {"network": "vgg", "cell": "lat40-small", "method": method, "run": run, "seed": 0, "chain_top1": chain,
            "feasible": True, "widths": [8, 8, 16], "epochs": {"restart-final": 1, "restart-total": 4},
            "restart-final_top1": final, "restart-final_seconds": 1.0, "restart-total_top1": total,
            "restart-total_seconds": 4.0}


def test_the_summary_pairs_each_arm_with_the_runs_own_network(restart, tmp_path) -> None:
    rows = [_row("a-s0", "uniform-thin", 0.88, 0.87, 0.89), _row("a-s1", "uniform-thin", 0.88, 0.875, 0.895),
            _row("b-s0", "exponential-thin", 0.90, 0.88, 0.905)]
    diff, sd, n = restart._paired(rows[:2], "restart-total")
    assert n == 2 and diff == pytest.approx(1.25) and sd == pytest.approx(0.3536, abs=1e-4)
    out = tmp_path / "restart.json"
    out.write_text(json.dumps({"machine": "m", "rows": rows}))
    restart.write_markdown(out, {"machine": "m", "rows": rows})
    text = out.with_suffix(".md").read_text()
    assert "| vgg | lat40-small | uniform-thin | 2 | 88.00 % | 87.25 % | -0.75 +- 0.35 | 89.25 % | +1.25 +- 0.35 |" in text
    assert ("* vgg / lat40-small, every run: restart-final -1.17 +- 0.76 pt (ahead in 0/3); "
            "restart-total +1.00 +- 0.50 pt (ahead in 3/3).") in text
    assert "| b-s0 | 8-8-16 | 90.00 % | 88.00 % | 90.50 % |" in text


def test_the_whole_budget_counts_the_steps_the_run_took_not_the_configured_steps(restart) -> None:
    # one-step keeps `steps: 3` in run.yaml but takes one step of 3 epochs: 3 + 1, not 3 x 3 + 1
    from netbudget.pipeline import RunConfig

    one_step = RunConfig(constraints=["latency <= 0.5x"], cooling="one-step", steps=3, step_epochs=3, final_epochs=1)
    assert restart.run_epochs({"steps": [{"step": 0}]}, one_step) == {"restart-final": 1, "restart-total": 4}
    cooled = RunConfig(constraints=["latency <= 0.5x"], steps=3, step_epochs=1, final_epochs=1)
    steps = {"steps": [{"step": t} for t in range(3)]}
    assert restart.run_epochs(steps, cooled) == {"restart-final": 1, "restart-total": 4}


def test_rows_of_another_machine_are_not_mixed_into_its_file(restart, tmp_path, monkeypatch) -> None:
    out = tmp_path / "restart.json"
    out.write_text(json.dumps({"machine": "another CPU", "rows": []}))
    monkeypatch.syspath_prepend(str(Path(restart.__file__).parent))  # as a script: ablation beside it
    monkeypatch.setattr("sys.argv", ["restart.py", "--out", str(out), "--runs", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--out .*restart.json: its rows were measured on 'another CPU'"):
        restart.main()
    assert json.loads(out.read_text()) == {"machine": "another CPU", "rows": []}
