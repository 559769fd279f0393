"""The redraw benchmark (benchmarks/redraw.py): selection rules over a step's candidates on
made-up draws, and one real run's step rebuilt and re-scored."""

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def redraw(load_benchmark):
    return load_benchmark("redraw")


# four candidates x three draws; truths over two seeds (means .85 .90 .80 .70)
DRAWS = [[0.80, 0.70, 0.72], [0.75, 0.78, 0.79], [0.60, 0.90, 0.65], [0.50, 0.55, 0.95]]
TRUTHS = [[0.84, 0.86], [0.89, 0.91], [0.80, 0.80], [0.69, 0.71]]


def test_each_rule_keeps_the_candidate_its_draws_rank_first(redraw) -> None:
    truth = np.mean(TRUTHS, axis=1)
    got = redraw.rules(np.array(DRAWS), truth)
    # one draw: draw 0 keeps .85, draw 1 keeps .80 (0.90 scored), draw 2 keeps .70 (0.95 scored)
    assert got["1 draw"] == pytest.approx((0.85 + 0.80 + 0.70) / 3)
    assert got["mean of 2"] == pytest.approx(0.90)  # every pair of draws ranks candidate 1 first
    assert got["mean of 3"] == pytest.approx(0.90)
    assert got["top-3 redrawn"] == pytest.approx(0.90)
    assert got["best"] == pytest.approx(0.90) and got["mean"] == pytest.approx(0.8125)
    # three candidates: no "top-3 redrawn" (it would redraw them all)
    assert "top-3 redrawn" not in redraw.rules(np.array(DRAWS[:3]), truth[:3])


def test_top_three_redrawn_only_rescores_the_best_three_of_one_draw(redraw) -> None:
    # candidate 3 is best on average but never in a draw's top three: the rule cannot keep it
    draws = np.array([[0.9, 0.9], [0.8, 0.8], [0.7, 0.7], [0.6, 1.0], [0.1, 0.1]])
    truth = np.array([0.80, 0.81, 0.82, 0.95, 0.50])
    assert redraw._top_redrawn(draws, truth, top=3, redraws=1) == pytest.approx((0.80 + 0.80) / 2)
    assert redraw._mean_choice(draws, truth, 2) == pytest.approx(0.80)  # means .9 .8 .7 .8 .1
    assert redraw._mean_choice(draws, truth, 1) == pytest.approx((0.80 + 0.95) / 2)


def test_the_summary_reports_rank_correlations_and_spreads_in_points(redraw) -> None:
    s = redraw.summarise(DRAWS, TRUTHS)
    assert s["spearman_1_draw"] == pytest.approx((0.8 + 0.4 - 0.2) / 3)
    assert s["spearman_mean_draws"] == pytest.approx(1.0)
    assert s["truth_sd_within"] == pytest.approx(100 * np.sqrt(0.00015))
    assert s["truth_sd_between"] == pytest.approx(100 * np.std([0.85, 0.90, 0.80, 0.70], ddof=1))
    assert s["draw_sd_between"] == pytest.approx(100 * np.std(np.mean(DRAWS, axis=1), ddof=1))
    one = redraw.summarise([[0.5, 0.6], [0.7, 0.7]], [[0.8], [0.9]])  # one truth seed: no within spread
    assert one["truth_sd_within"] is None and one["draw_sd_within"] == pytest.approx(100 * np.sqrt(0.005 / 2))


def test_the_markdown_pairs_each_rule_with_one_draw_per_step(redraw, tmp_path) -> None:
    entry = {"run": "resnet20-lat50-small-exponential-thin-s0", "step": 2,
             "candidates": [{"trial": i, "draws": d, "truths": t} for i, (d, t) in enumerate(zip(DRAWS, TRUTHS))],
             **redraw.summarise(DRAWS, TRUTHS)}
    other = {**entry, "step": 1, "rules": {**entry["rules"], "mean of 2": entry["rules"]["1 draw"] - 0.01}}
    out = tmp_path / "redraw.json"
    results = {"machine": "m", "steps": [entry, other]}
    out.write_text(json.dumps(results))
    redraw.write_markdown(out, results)
    text = out.with_suffix(".md").read_text()
    assert ("| resnet20-lat50-small-exponential-thin-s0 | 2 | 4 | 78.33 % | 90.00 % | 90.00 % | 90.00 % | 90.00 % | "
            "81.25 % | +0.33/+1.00 |") in text
    assert "* mean of 2: +5.33 +- 8.96 (1 ahead, 1 behind, 2 steps)" in text
    assert "* mean of 3: +11.67 +- 0.00 (2 ahead, 0 behind, 2 steps)" in text


@pytest.mark.slow
def test_a_real_steps_candidates_are_rebuilt_and_its_own_draw_replays(redraw, tmp_path: Path) -> None:
    import netbudget
    from netbudget.data import load_dataset
    from netbudget.search.bounds import measured
    from netbudget.train import FitConfig, fit
    from netbudget.zoo import build_model

    data = load_dataset("digits", seed=0)
    model = build_model("vgg", in_channels=1, num_classes=10, input_size=8)
    fit(model, data, FitConfig(epochs=5, seed=0), progress=False)
    run_dir = tmp_path / "run"
    netbudget.compress(model, data, ["macs <= 0.5x"], run_dir=run_dir, progress=False, cooling="exponential",
                       steps=2, trials=4, proxy="lookahead", proxy_steps=5, final_epochs=1, step_epochs=1)
    trials, thresholds = redraw.step_candidates(run_dir, 1)
    assert trials and all(measured(t)[k] <= v for t in trials for k, v in thresholds.items())
    entry = redraw.run_step(run_dir, 1, model, data, draws=3, truths=2, progress=False)
    own, replayed = entry["replayed"]
    assert replayed == pytest.approx(own, abs=1e-9)  # the run's space, network and seed: its own score
    assert [c["trial"] for c in entry["candidates"]] == [t.number for t in trials]
    for c in entry["candidates"]:
        assert len(c["draws"]) == 3 and len(c["truths"]) == 2 and all(0.0 < x <= 1.0 for x in c["truths"])
    assert entry["rules"]["mean"] <= entry["rules"]["best"]
    with pytest.raises(ValueError, match="step 1: 1 feasible candidate"):
        redraw.run_step(run_dir, 1, model, data, draws=2, truths=1, limit=1, progress=False)
