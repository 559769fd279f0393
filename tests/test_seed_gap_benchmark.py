"""benchmarks/seed_gap.py: does the search leave the uniform seed for a real proxy difference?"""

from pathlib import Path

import optuna
import pytest


@pytest.fixture(scope="module")
def seed_gap(load_benchmark):
    return load_benchmark("seed_gap")


def _step(values: list[float], seed_at: int | None, winner: int | None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", study_name="step-0")
    for i, value in enumerate(values):
        study.enqueue_trial({"x": float(i)}, user_attrs={"seed": True} if i == seed_at else {})
        study.optimize(lambda t, v=value: (t.suggest_float("x", 0, 10), v)[1], n_trials=1)
    if winner is not None:
        study.set_user_attr("winner", winner)
    return study


def test_a_step_record_ranks_the_seed_among_the_scored_candidates(seed_gap) -> None:
    record = seed_gap.step_record(_step([0.90, 0.95, 0.92, 0.97], seed_at=2, winner=1))
    assert record == {"n": 4, "seed_trial": 2, "seed_score": 0.92, "winner": 1, "winner_score": 0.95,
                      "best_score": 0.97, "seed_rank": 2, "winner_is_seed": False}
    assert seed_gap.step_record(_step([0.90, 0.95], seed_at=0, winner=0))["winner_is_seed"] is True
    assert seed_gap.step_record(_step([0.90, 0.95], seed_at=None, winner=1)) is None  # a step at the floor
    assert seed_gap.step_record(_step([0.90, 0.95], seed_at=0, winner=None)) is None  # an unfinished step


def test_picks_are_the_seed_the_winner_and_the_best_three(seed_gap) -> None:
    study = _step([0.90, 0.95, 0.92, 0.97, 0.96, 0.91], seed_at=0, winner=2)
    chosen = seed_gap.picks(study, seed_gap.step_record(study))
    assert chosen == {0: "seed", 2: "winner", 3: "top", 4: "top", 1: "top"}


def test_paired_gap_is_in_points_over_look_ahead_seeds(seed_gap) -> None:
    mean, sd = seed_gap.paired_gap([0.92, 0.93, 0.94], [0.91, 0.91, 0.91])
    assert mean == pytest.approx(2.0) and sd == pytest.approx(1.0)


def test_markdown_reports_steps_rescores_and_the_gaps_to_the_seed(seed_gap, tmp_path: Path) -> None:
    step = {"step": 0, "n": 12, "seed_trial": 9, "seed_score": 0.9135, "winner": 11, "winner_score": 0.9175,
            "best_score": 0.928, "seed_rank": 5, "winner_is_seed": False,
            "rescored": {"9": {"role": "seed", "recorded": 0.9135, "feasible": True, "calibration": [0.91, 0.92],
                               "val": [0.86, 0.87]},
                         "11": {"role": "winner", "recorded": 0.9175, "feasible": True, "calibration": [0.92, 0.93],
                                "val": [0.88, 0.88]},
                         "12": {"role": "top", "recorded": 0.9550, "feasible": False, "calibration": [0.95, 0.95],
                                "val": [0.90, 0.90]}}}
    later = {"step": 1, "n": 12, "seed_trial": 9, "seed_score": 0.95, "winner": 9, "winner_score": 0.95,
             "best_score": 0.95, "seed_rank": 0, "winner_is_seed": True}
    run = {"network": "resnet20", "cell": "lat50", "method": "exponential-soup2-bnfinal-thin", "seed": 0,
           "steps": [step, later]}
    out = tmp_path / "seed_gap.json"
    seed_gap.write_markdown(out, {"machine": "test", "runs": [run]})
    text = out.with_suffix(".md").read_text()
    assert "| resnet20 | lat50 | exponential-soup2-bnfinal-thin | 0 | 0 | 12 | 91.35 | 91.75 | 92.80 | 6 | no |" in text
    assert "lat50: the seed won 1 of 2 steps; winner minus seed +0.20 pt median (+0.00 to +0.40)." in text
    assert ("| resnet20 | lat50 | 0 | 0 | 11 | winner | yes | 91.75 | 92.50 +- 0.71 | +1.00 +- 0.00 | 88.00 +- 0.00 | "
            "+1.50 +- 0.71 |") in text
    assert "| resnet20 | lat50 | 0 | 0 | 12 | top | no | 95.50 | 95.00 +- 0.00 | +3.50 +- 0.71 |" in text
    # the candidate over the thresholds counts only among "every re-scored candidate"
    assert "* the steps' winners: +1.00 pt (+1.00 to +1.00), 1 of 1 ahead; on validation data +1.50 pt" in text
    assert "* every re-scored candidate that met the step's thresholds: +1.00 pt (+1.00 to +1.00), 1 of 1 ahead" in text
    assert "* every re-scored candidate: +2.25 pt (+1.00 to +3.50), 2 of 2 ahead" in text
    assert "their re-scores: -0.12 pt on average" in text  # (-0.75 + 0.50) / 2


@pytest.mark.parametrize(("argv", "message"), [(["--repeats", "1"], "--repeats 1: expected at least 2"),
                                               (["--steps", "last"], "--steps 'last': expected comma-separated")])
def test_bad_arguments_stop_before_any_work_and_name_themselves(seed_gap, monkeypatch, argv, message) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))  # as run from there
    monkeypatch.setattr("sys.argv", ["seed_gap.py", *argv])
    with pytest.raises(SystemExit, match=message):
        seed_gap.main()


def _scored(calibration: list[float], val: list[float], truth: list[float], role: str) -> dict:
    return {"role": role, "recorded": calibration[0], "feasible": True, "calibration": calibration, "val": val,
            "by_steps": {"50": {"calibration": calibration, "val": val},
                         "200": {"calibration": [0.99, 0.99], "val": [v + 0.01 for v in val]}},
            "truth": truth}


BENCHMARKS = str(Path(__file__).resolve().parents[1] / "benchmarks")


def test_truth_summary_ranks_each_look_ahead_against_the_step_fine_tune(seed_gap, monkeypatch) -> None:
    monkeypatch.syspath_prepend(BENCHMARKS)  # it ranks with redraw.py's helper, as run from there
    # step A: the 50-step look-ahead prefers the winner, held-out scores and the fine-tune the seed
    a = {"step": 0, "seed_trial": 9, "winner": 11, "winner_is_seed": False,
         "rescored": {"9": _scored([0.90, 0.92], [0.88, 0.88], [0.91], "seed"),
                      "11": _scored([0.93, 0.93], [0.86, 0.86], [0.90], "winner"),
                      "12": _scored([0.95, 0.95], [0.89, 0.89], [0.92], "top")}}
    # step B (another run) repeats the seed: it counts once among the distinct candidates
    b = {"step": 0, "seed_trial": 9, "winner": 15, "winner_is_seed": False,
         "rescored": {"9": _scored([0.90, 0.92], [0.88, 0.88], [0.91], "seed"),
                      "15": _scored([0.94, 0.94], [0.90, 0.90], [0.93], "winner")}}
    summary = seed_gap.truth_summary([a, b])
    assert summary["candidates"] == 4 and summary["steps"] == 2
    assert summary["winner_minus_seed"] == pytest.approx([-1.0, 2.0])
    assert summary["winner_over_seed"] == {"50/calibration": 2, "50/val": 1, "200/calibration": 0, "200/val": 1}
    assert summary["spearman"]["50/val"] == pytest.approx(1.0)  # held-out ranks as the fine-tune does
    assert summary["spearman"]["200/calibration"] is None  # saturated: every candidate scores 99 %
    assert summary["spearman"]["50/calibration"] == pytest.approx(0.6)  # ranks (1,2), (2,1), (4,3), (3,4)


def test_markdown_adds_the_fine_tuned_section_when_candidates_hold_truths(seed_gap, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(BENCHMARKS)
    step = {"step": 0, "n": 12, "seed_trial": 9, "seed_score": 0.91, "winner": 11, "winner_score": 0.93,
            "best_score": 0.95, "seed_rank": 2, "winner_is_seed": False,
            "rescored": {"9": _scored([0.90, 0.92], [0.88, 0.88], [0.91], "seed"),
                         "11": _scored([0.93, 0.93], [0.86, 0.86], [0.90], "winner")}}
    out = tmp_path / "seed_gap.json"
    seed_gap.write_markdown(out, {"machine": "test", "runs": [{"network": "resnet20", "cell": "lat50", "method": "m",
                                                                "seed": 0, "steps": [step]}]})
    text = out.with_suffix(".md").read_text()
    assert "look-ahead: 50 / 200 distilled SGD steps" in text
    assert "| resnet20 | lat50 | 0 | 0 | 11 | winner | yes | 93.00 | 86.00 | 99.00 | 87.00 | 90.00 | -1.00 |" in text
    assert "winners minus the seed after the step's fine-tune: -1.00 pt (-1.00 to -1.00), 0 of 1 ahead." in text
    assert "| 50/calibration | n/a | 1 of 1 |" in text  # two distinct candidates: too few to rank


@pytest.mark.parametrize(("argv", "message"), [(["--proxy-steps", "50,long"], "--proxy-steps '50,long': expected"),
                                               (["--proxy-steps", "0"], "at least 1 step"),
                                               (["--truths", "-1"], "--truths -1: expected 0")])
def test_bad_look_ahead_lengths_or_truths_stop_before_any_work(seed_gap, monkeypatch, argv, message) -> None:
    monkeypatch.syspath_prepend(BENCHMARKS)
    monkeypatch.setattr("sys.argv", ["seed_gap.py", *argv])
    with pytest.raises(SystemExit, match=message):
        seed_gap.main()
