"""The ablation's Markdown goal check compares methods paired by seed (benchmarks/ablation.py)."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def ablation(load_benchmark):
    return load_benchmark("ablation")


def _row(method: str, seed: int, top1: float, feasible: bool = True) -> dict:
    return {"network": "vgg", "cell": "lat40-small", "method": method, "seed": seed, "final_top1": top1,
            "feasible": feasible, "evaluations": 36, "seconds": 100.0}


def _markdown(ablation, tmp_path, results: dict) -> str:
    """The ablation.md that ``write_markdown`` makes of ``results``."""
    out = tmp_path / "ablation.json"
    ablation.write_markdown(out, results)
    return out.with_suffix(".md").read_text()


def test_paired_difference_uses_only_the_seeds_both_methods_ran(ablation) -> None:
    rows = [_row("exponential", 0, 0.90), _row("exponential", 1, 0.92), _row("exponential", 2, 0.80),
            _row("random", 0, 0.91), _row("random", 1, 0.92)]
    diff, sd, n = ablation._paired(rows, "random", base="exponential")
    assert n == 2 and diff == pytest.approx(0.5) and sd == pytest.approx(0.7071, abs=1e-3)


def test_a_paired_tie_is_level_whichever_way_it_is_subtracted(ablation) -> None:
    # session 59's resnet20 size10-small @G: one-step-channels minus the default sums to -2.2e-15 pt
    # in float, the default minus one-step-channels to +2.2e-15: a tie either way
    default = [0.9178, 0.9203, 0.9193, 0.9203, 0.9199]
    rival = [0.9188, 0.9202, 0.9217, 0.9205, 0.9164]
    rows = [_row("exponential", s, default[s]) for s in range(5)] + [_row("one-step", s, rival[s]) for s in range(5)]
    for method, base in (("one-step", "exponential"), ("exponential", "one-step")):
        diff, sd, n = ablation._paired(rows, method, base=base)
        assert n == 5 and diff == 0.0 and ablation._paired_text(diff, sd, n) == "+0.00 +- 0.22"


def test_goal_check_names_methods_ahead_by_paired_difference_and_counts_failed_verification(ablation, tmp_path) -> None:
    rows = [_row("exponential", s, 0.90 + 0.01 * s) for s in range(3)]
    rows += [_row("uniform", s, 0.89 + 0.01 * s, feasible=s != 1) for s in range(3)]
    # a higher unpaired mean only because seed 2 (the best seed) is missing: behind when paired
    rows += [_row("tpe", 0, 0.899), _row("tpe", 1, 0.909)]
    rows += [_row("penalty", s, 0.91 + 0.01 * s) for s in range(3)]
    # the same two methods re-run with a later pipeline: reported on their own line, not as rivals
    rows += [_row("exponential-recheck", s, 0.95) for s in range(2)]
    rows += [_row("uniform-recheck", s, 0.90 + 0.02 * s, feasible=s == 0) for s in range(2)]
    rows += [_row("exponential-margin4", s, 0.895 + 0.01 * s) for s in range(3)]
    rows += [_row("exponential-w16", s, 0.96) for s in range(2)] + [_row("uniform-w16", s, 0.93) for s in range(2)]
    rows += [_row("exponential-moments", s, 0.91 + 0.01 * s) for s in range(2)]
    rows += [_row("uniform-moments", s, 0.89 + 0.02 * s) for s in range(2)]
    rows += [{**_row("exponential-repair", s, 0.90), "repairs": s} for s in range(2)]
    rows += [_row("uniform-repair", s, 0.91) for s in range(2)]
    results = {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [], "proxy": []}
    out = tmp_path / "ablation.json"
    out.write_text(json.dumps(results))
    ablation.write_markdown(out, results)
    text = out.with_suffix(".md").read_text()
    assert "exponential - uniform = +1.00 +- 0.00 pt over 3 paired seeds (met)" in text
    assert "Methods ahead of exponential (paired): penalty (+1.00 pt, clearly) (MISSED)" in text
    assert "tpe (" not in text
    assert "Feasible on re-measurement: 28/30 runs (MISSED)" in text
    assert ("With the re-check (current pipeline): exponential - uniform = +4.00 +- 1.41 pt over 2 paired seeds "
            "(met); feasible 3/4 runs (MISSED)") in text
    assert ("With the 4 % margin (the current default): minus exponential (2 %) = -0.50 +- 0.00 pt over 3 paired "
            "seeds, minus uniform (2 %) = +0.50 +- 0.00 pt over 3; feasible 3/3 runs (met)") in text
    assert ("With widths in multiples of 16: exponential - uniform = +3.00 +- 0.00 pt "
            "over 2 paired seeds (met); minus rounding to 8: exponential +1.00 +- 0.00 pt over 2, uniform +2.00 +- 1.41 pt "
            "over 2; feasible 4/4 runs (met)") in text
    assert ("Re-measured at 5 moments (`moments=5`): exponential - uniform = +1.50 +- 0.71 pt over 2 paired "
            "seeds (met); minus one moment: exponential +1.00 +- 0.00 pt over 2, uniform +0.50 +- 0.71 pt over 2; "
            "feasible 4/4 runs (met)") in text
    assert ("With 5 moments, 4 % margin, up to 2 repairs (the defaults of sessions 8-9; 1 run(s) repaired, 0 warned "
            "of a tight budget): exponential - "
            "uniform = -1.00 +- 0.00 pt over 2 paired seeds (MISSED); minus the cell's older settings: exponential "
            "-0.50 +- 0.71 pt over 2, uniform +1.50 +- 0.71 pt over 2; feasible 4/4 runs (met)") in text
    assert "| vgg | lat40-small | tpe | 2 | 90.40 % | +0.90 +- 0.00 | -0.10 +- 0.00 | 2/2 |" in text
    assert out.with_suffix(".png").is_file()


def test_rows_of_another_machine_or_base_network_are_neither_averaged_nor_paired_with_the_earlier_ones(
    ablation, tmp_path
) -> None:
    here = "Xeon; avx512 f,fp16; 2 threads"
    earlier = [{**_row(m, s, 0.90), "cell": "lat50"} for m in ("exponential", "uniform") for s in range(2)]
    # the same cell on another machine, with the current defaults only; one run warned of a tight budget
    moved = [{**_row("exponential-repair", s, 0.92 + 0.01 * s), "cell": "lat50", "machine": here,
              "base_top1": 0.9339, "warnings": s} for s in range(2)]
    moved += [{**_row("uniform-repair", s, 0.92), "cell": "lat50", "machine": here, "base_top1": 0.9339}
              for s in range(2)]
    # a retrained base network on the earlier machine: not paired with the earlier rows of its seed
    moved += [{**_row("one-step-repair", s, 0.915), "cell": "lat50", "machine": here, "base_top1": 0.9339}
              for s in range(2)]
    moved += [{**_row("exponential-thin", s, 0.925 + 0.01 * s), "cell": "lat50", "machine": here,
               "base_top1": 0.9339, "thinned": 1} for s in range(2)]
    moved += [{**_row("uniform-thin", 0, 0.915), "cell": "lat50", "machine": here, "base_top1": 0.9339, "thinned": 1}]
    # the other methods with the same (current) settings: rivals of exponential-thin
    moved += [{**_row("tpe-thin", s, 0.93 + 0.01 * s), "cell": "lat50", "machine": here, "base_top1": 0.9339}
              for s in range(2)]
    moved += [{**_row("random-thin", 0, 0.92), "cell": "lat50", "machine": here, "base_top1": 0.9339}]
    retrained = [{**_row("exponential-repair", 0, 0.99), "cell": "lat50", "base_top1": 0.95}]
    # the headroom study of machine B's cell, beside the earlier machine's one of the same cell
    heads = [{"network": "vgg", "cell": "lat50", "uniform_top1": u, "oracle_best_top1": b, "oracle_mean_top1": u,
              "n": 7, **({"machine": m} if m else {})} for u, b, m in ((0.90, 0.905, None), (0.915, 0.93, here))]
    results = {"machine": "test", "rows": earlier + moved + retrained, "cells": [], "headroom": heads, "proxy": [],
               "dense": [{"network": "vgg", "top1": 0.9325, "latency_ms": 4.2, "latency_spread": 0.02},
                         {"network": "vgg", "top1": 0.9339, "latency_ms": 3.1, "latency_spread": 0.01,
                          "machine": here}],
               "unreachable": [{"network": "vgg", "cell": "lat40", "message": "floor 0.45x", "machine": here}]}
    text = _markdown(ablation, tmp_path, results)
    assert f"* B: {here}" in text and "| vgg | B | 93.39 % | 3.10 |" in text
    assert "| vgg | lat50 @B | exponential-repair | 2 | 92.50 % |" in text
    assert "| vgg | lat40 @B | (unreachable) |" in text
    # a cell with only -repair rows compares within them
    assert "| vgg | lat50 @B | one-step-repair | 2 | 91.50 % | -0.50 +- 0.00 | -1.00 +- 0.71 |" in text
    assert ("Methods ahead of exponential-repair (paired): none (met); behind it (pt): one-step-repair -1.00 +- 0.71."
            in text)
    assert ("Methods ahead of exponential-thin (paired): tpe-thin (+0.50 +- 0.00 pt over 2) (MISSED); behind it "
            "(pt): random-thin -0.50.") in text
    assert "| vgg | lat50 @B | tpe-thin | 2 | 93.50 % | +1.50 | +0.50 +- 0.00 | 2/2 |" in text
    assert ("* vgg / lat50 @B:\n  With 5 moments, 4 % margin, up to 2 repairs (the defaults of sessions 8-9; 0 run(s) "
            "repaired, 1 warned of a tight budget): exponential - uniform = +0.50 +- 0.71 pt over 2 paired seeds (met); "
            "feasible 6/6 runs (met).") in text
    # the current defaults (-thin) against each other and against the -repair rows they re-run
    assert "| vgg | lat50 @B | exponential-thin | 2 | 93.00 % | +1.00 |  | 2/2 |" in text
    assert "| vgg | lat50 @B | uniform-thin | 1 | 91.50 % |  | -1.00 |" in text
    # every run with the -thin settings counts, the rivals' too
    assert ("  With thinned variants of candidates that miss on re-timing (the current defaults, `floor_path` search; 3 "
            "variant(s) over 6 runs, 0 run(s) repaired): exponential - uniform = +1.00 pt over 1 paired seeds (met); "
            "minus the -repair rows: exponential +0.50 +- 0.00 pt over 2, uniform -0.50 pt over 1; feasible 6/6 runs (met).") in text
    assert ("  Headroom above the (one-shot) uniform configuration 1.50 pt (7 configurations); exponential-thin's mean "
            "is +1.50 pt from it and +1.00 pt from the uniform runs over 1 paired seeds"
            " (met: at least half where the headroom is >= 1 pt, above the uniform runs too, or its best reached).") in text
    # +1.00 above the one-shot uniform configuration, but only +0.50 above its uniform runs
    assert "exponential-repair's mean is +1.00 pt from it and +0.50 pt from the uniform runs over 2 paired seeds (MISSED" in text
    assert ("| vgg | lat50 @B | channels | mix | 7 | 91.50 % | 93.00 % |" in text
            and "| vgg | lat50 | channels | mix | 7 | 90.00 % | 90.50 % |" in text)
    # on machine A the retrained row stands alone: no pair with seed 0's uniform row of the older base
    assert "| vgg | lat50 | exponential-repair | 1 | 99.00 % |  |" in text


def _cell_args(redo: bool = False, operators: str | None = None):
    """The command-line arguments ``_run_cell`` reads, as ``argparse`` would give them."""
    return type("Args", (), {"no_headroom": False, "redo_headroom": redo, "headroom_operators": operators,
                             "rival_seeds": 3})()


def test_a_cell_run_only_with_the_current_defaults_is_judged_among_its_own_rows(ablation, tmp_path) -> None:
    here = "EPYC; avx512 f; 2 threads"
    row = {"network": "resnet20", "cell": "lat50", "machine": here, "base_top1": 0.9189}
    rows = [{**_row("exponential-thin", s, 0.91 + 0.01 * s), **row, "thinned": s} for s in range(2)]
    rows += [{**_row("uniform-thin", s, 0.90), **row} for s in range(2)]
    rows += [{**_row("one-step-thin", s, 0.905), **row} for s in range(2)]
    rows += [{**_row("reference-thin", 0, 0.92), **row, "feasible": False}]
    head = {"network": "resnet20", "cell": "lat50", "uniform_top1": 0.90, "oracle_best_top1": 0.92,
            "oracle_mean_top1": 0.91, "n": 7, "machine": here}
    results = {"machine": "test", "rows": rows, "cells": [], "headroom": [head], "proxy": [],
               "dense": [{"network": "resnet20", "top1": 0.9189, "latency_ms": 4.9, "latency_spread": 0.04,
                          "machine": here}]}
    text = _markdown(ablation, tmp_path, results)
    # no -repair rows to compare against, no plain exponential: the -thin rows are the cell's goals
    assert ("* resnet20 / lat50 @B:\n  With thinned variants of candidates that miss on re-timing (the current "
            "defaults, `floor_path` search; 1 variant(s) over 7 runs, 0 run(s) repaired): exponential - uniform = +1.50 +- 0.71 pt over 2 "
            "paired seeds (met); feasible 6/7 runs (MISSED).") in text
    assert ("  Methods ahead of exponential-thin (paired): reference-thin (+1.00 pt over 1) (MISSED); behind it "
            "(pt): one-step-thin -1.00 +- 0.71.") in text
    assert ("  Headroom above the (one-shot) uniform configuration 2.00 pt (7 configurations); exponential-thin's "
            "mean is +1.50 pt from it and +1.50 pt from the uniform runs over 2 paired seeds"
            " (met: at least half where the headroom is >= 1 pt, above the uniform runs too, or its best reached).") in text


def test_floor_path_rows_have_their_own_goal_line_and_are_no_rivals_of_the_searching_rows(ablation, tmp_path) -> None:
    here = "EPYC; avx512 f; 2 threads"
    row = {"machine": here, "base_top1": 0.9317}
    rows = [{**_row("exponential-thin", s, 0.877 + 0.001 * s), **row} for s in range(3)]
    rows += [{**_row("uniform-thin", s, 0.885), **row} for s in range(3)]
    rows += [{**_row("exponential-floor-thin", s, 0.885, feasible=s > 0), **row} for s in range(3)]
    rows += [{**_row("exponential-floor-once-thin", s, 0.880), **row} for s in range(2)]
    results = {"machine": "test", "rows": rows, "cells": [], "headroom": [], "proxy": [],
               "dense": [{"network": "vgg", "top1": 0.9317, "latency_ms": 2.36, "latency_spread": 0.1, "machine": here}]}
    text = _markdown(ablation, tmp_path, results)
    # the searching rows are judged among themselves (6 runs, no floor rows among the rivals) ...
    assert "(the current defaults, `floor_path` search; 0 variant(s) over 6 runs, 0 run(s) repaired): exponential - " \
           "uniform = -0.70 +- 0.10 pt over 3 paired seeds (MISSED); feasible 6/6 runs (met)." in text
    assert "Methods ahead of exponential-thin" not in text
    # ... and the floor path against uniform, searching and the floor at once
    assert ("  At the floor without a search (the current defaults since session 26, `floor_path` uniform): "
            "exponential-floor - uniform = +0.00 +- 0.00 pt over 3 paired seeds (met); minus searching +0.70 +- 0.10 "
            "pt over 3; minus the floor at once +0.50 +- 0.00 pt over 2; feasible 2/3 runs (MISSED).") in text


def test_cooling_and_one_step_are_compared_per_cell_and_pooled_over_paired_seeds(ablation, tmp_path) -> None:
    rows = [_row("exponential-thin", s, 0.880 + 0.002 * s) for s in range(3)]
    rows += [_row("one-step-thin", s, top1) for s, top1 in enumerate((0.885, 0.880, 0.890))]
    rows += [_row("uniform-thin", s, 0.880) for s in range(3)]
    rows += [{**_row(m, s, top1), "cell": "lat50-small"}
             for m, s, top1 in (("exponential-thin", 0, 0.90), ("exponential-thin", 1, 0.90),
                                ("one-step-thin", 0, 0.899), ("one-step-thin", 1, 0.898), ("one-step-thin", 2, 0.95))]
    # a cell of computed budgets (cooling='auto' takes one step there) stays out of the comparison
    rows += [{**_row(m, 0, top1), "cell": "size05"} for m, top1 in (("exponential", 0.80), ("one-step", 0.95))]
    results = {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [], "proxy": []}
    text = _markdown(ablation, tmp_path, results)
    assert ("| vgg | lat40-small | 3 | +0.30 +- 0.44 | 2 of 3 | +0.20 +- 0.20 | +0.50 +- 0.50 |\n"
            "| vgg | lat50-small | 2 | -0.15 +- 0.07 | 0 of 2 |  |  |\n\n"  # seed 2 has no exponential row to pair
            "Pooled over 5 paired seeds in 2 cell(s): one-step minus exponential = +0.12 +- 0.40 (standard error "
            "0.18) pt; one step ahead in 2 of 5 seeds and in 1 of 2 cells (seeds pair only within a cell).") in text
    assert "## Cooling or one step (the current settings: the `-thin` rows)" in text
    assert "size05" not in text.split("## Cooling or one step")[1] and text.count("## Cooling or one step") == 1


def test_the_scoreboard_judges_each_cell_on_its_current_default_and_counts_the_cells_meeting_every_goal(
        ablation, tmp_path) -> None:
    # a cell re-run with a later pipeline (-recheck) whose other methods ran only with its first rows
    rows = [_row("exponential", s, 0.90 + 0.01 * s) for s in range(3)]
    rows += [_row("uniform", s, 0.89 + 0.01 * s) for s in range(3)] + [_row("tpe", s, 0.91 + 0.01 * s) for s in range(3)]
    rows += [_row("exponential-recheck", s, top1) for s, top1 in enumerate((0.93, 0.95))]
    rows += [_row("uniform-recheck", s, 0.92) for s in range(2)]
    # a cell at the floor: the floor path is the default, the search with the same settings its rival
    at_floor = [("exponential-floor-thin", 0.90, 0.90, 0.90), ("uniform-thin", 0.90, 0.89, 0.90),
                ("exponential-thin", 0.88, 0.88, 0.88)]
    rows += [{**_row(m, s, top1), "cell": "lat50-small"} for m, *top1s in at_floor for s, top1 in enumerate(top1s)]
    rows[-1]["feasible"] = False
    # a cell of computed budgets: one step with channels against uniform with channels
    rows += [{**_row(m, s, top1), "cell": "size05"} for m, top1 in (("one-step-channels", 0.93), ("uniform-channels", 0.92),
                                                                     ("one-step", 0.95), ("uniform", 0.80)) for s in range(2)]
    rows += [{**_row("one-step", 0, 0.9), "network": "resnet20"}]  # no default with its uniform rows: no row
    heads = [{"network": "vgg", "cell": "lat40-small", "uniform_top1": 0.92, "oracle_best_top1": 0.925,
              "oracle_mean_top1": 0.92, "n": 7},
             {"network": "vgg", "cell": "lat50-small", "uniform_top1": 0.88, "oracle_best_top1": 0.905,
              "oracle_mean_top1": 0.89, "n": 21},
             {"network": "vgg", "cell": "size05", "uniform_top1": 0.80, "oracle_best_top1": 0.85, "oracle_mean_top1": 0.82,
              "n": 9},
             {"network": "vgg", "cell": "size05", "uniform_top1": 0.90, "oracle_best_top1": 0.92, "oracle_mean_top1": 0.91,
              "n": 7, "operators": ["channels", "prune", "bits"]}]
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": heads, "dense": [],
                                          "proxy": []})
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    assert ("| vgg | lat40-small | `exponential-recheck` | 94.00 % | +2.00 +- 1.41 (2) | 2 of 2 | 0.50 pt, +2.00 "
            "captured, +2.00 over the uniform runs, at or above its best (7 configurations) | tpe +1.00 +- 0.00 (3) (first settings) | "
            "4/4 | met / n/a (under 1 pt) / MISSED (first settings) / met |") in board
    # +2.00 above the study's one-shot uniform configuration but only +0.33 above the uniform runs, and
    # under the study's best: missed
    assert ("| vgg | lat50-small | `exponential-floor-thin` | 90.00 % | +0.33 +- 0.58 (3) | 1 of 3 | 2.50 pt, +2.00 "
            "captured, +0.33 over the uniform runs (21 configurations) | none of 1 | 8/9 | met / MISSED / met / "
            "MISSED |") in board
    # judged by the headroom study over the same three operators, not by the plain one
    assert ("| vgg | size05 | `one-step-channels` | 93.00 % | +1.00 +- 0.00 (2) | 2 of 2 | 2.00 pt, +3.00 captured, "
            "+1.00 over the uniform runs, at or above its best (7 configurations) | not run | 4/4 | met / met / not run / met |") in board
    assert "resnet20" not in board
    assert "1 of 3 cells meet every goal they were run against." in board
    assert text.index("## Scoreboard") < text.index("## Dense networks")


def test_a_scoreboard_cell_whose_default_and_uniform_share_no_seed_is_not_judged_on_the_first_goal(
        ablation, tmp_path) -> None:
    rows = [_row("exponential", 0, 0.90), _row("exponential", 1, 0.91), _row("uniform", 2, 0.95)]
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    assert ("| vgg | lat40-small | `exponential` | 90.50 % | none (0) | 0 of 0 | not run | not run | 3/3 | "
            "not run (no paired seed) / not run / not run / met |") in board
    assert "1 of 1 cells meet every goal they were run against." in board


def test_a_cell_with_soup_rows_is_judged_on_them_with_rivals_of_the_same_settings(ablation, tmp_path) -> None:
    # session 35's defaults (two averaged final fine-tunes) beside the older -thin rows of the same cell
    suffix = "-soup2-bnfinal-thin"
    rows = [_row(m + suffix, s, top1) for m, top1s in (("exponential", (0.90, 0.92)), ("uniform", (0.89, 0.89)),
                                                        ("one-step", (0.91, 0.90))) for s, top1 in enumerate(top1s)]
    rows += [_row(m, s, 0.95) for m in ("exponential-thin", "uniform-thin", "reference-thin") for s in range(2)]
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    # one-step is behind on the mean (-0.50 pt) though ahead in seed 0; the -thin rows are neither default nor rival
    assert ("| vgg | lat40-small | `exponential-soup2-bnfinal-thin` | 91.00 % | +2.00 +- 1.41 (2) | 2 of 2 | not run | "
            "none of 1 | 6/6 | met / not run / met / met |") in board


def test_redo_headroom_replaces_a_smaller_study_and_its_proxy_rows_only_when_asked(ablation, tmp_path, monkeypatch) -> None:
    calls = []

    def fake_headroom(network, cell, model, data, n, finetune, steps, cache=None, operators=None):
        calls.append(n)
        head = {"network": network, "cell": cell, "uniform_top1": 0.9, "oracle_best_top1": 0.92,
                "oracle_mean_top1": 0.91, "n": n + 1, "top1": [0.9] * (n + 1)}
        return head, [{"network": network, "cell": cell, "fidelity": "bn", "spearman": 0.5, "seconds": 1.0}]

    monkeypatch.setattr(ablation, "_headroom", fake_headroom)
    monkeypatch.setattr(ablation, "_fingerprint", lambda network=None: ablation.EARLIER)  # the machine the stored studies ran on
    old = {"network": "vgg", "cell": "lat40-small", "uniform_top1": 0.8, "oracle_best_top1": 0.85,
           "oracle_mean_top1": 0.82, "n": 7, "top1": [0.8] * 7}
    other = {**old, "cell": "size10-small"}
    results = {"rows": [], "headroom": [old, other],
               "proxy": [{"network": "vgg", "cell": c, "fidelity": f, "spearman": 0.1, "seconds": 1.0}
                         for c in ("lat40-small", "size10-small") for f in ("bn", "reference")]}
    out = tmp_path / "ablation.json"

    def run(redo: bool, n: int) -> None:
        args = _cell_args(redo=redo)
        ablation._run_cell(args, results, out, tmp_path, "vgg", "lat40-small", None, None,
                           ablation.FINETUNE["small"], [], 1, n, ablation.SEARCH)

    run(redo=False, n=20)  # a stored study is kept unless asked
    assert calls == [] and results["headroom"] == [old, other]
    run(redo=True, n=6)  # 7 stored configurations already cover 6 + uniform
    assert calls == []
    run(redo=True, n=20)
    assert calls == [20]
    assert [(h["cell"], h["n"]) for h in results["headroom"]] == [("size10-small", 7), ("lat40-small", 21)]
    assert sorted((p["cell"], p["fidelity"]) for p in results["proxy"]) == [
        ("lat40-small", "bn"), ("size10-small", "bn"), ("size10-small", "reference")]
    assert json.loads(out.read_text())["headroom"][1]["n"] == 21
    # another machine does not reuse the earlier machine's study: it runs its own beside it
    monkeypatch.setattr(ablation, "_fingerprint", lambda network=None: "Xeon; avx512 f,fp16; 2 threads")
    run(redo=False, n=20)
    assert calls == [20, 20]
    assert [(h["cell"], h["n"], h.get("machine")) for h in results["headroom"]] == [
        ("size10-small", 7, None), ("lat40-small", 21, ablation.EARLIER),
        ("lat40-small", 21, "Xeon; avx512 f,fp16; 2 threads")]
    assert sum(p["cell"] == "lat40-small" for p in results["proxy"]) == 2
    ablation.write_markdown(out, {**results, "machine": "test", "cells": [], "dense": [],
                                  "rows": [{**_row("exponential", 0, 0.9)}, {**_row("uniform", 0, 0.9)}]})
    text = out.with_suffix(".md").read_text()
    assert "| vgg | lat40-small | channels | mix | 21 |" in text and "| vgg | lat40-small @B | channels | mix | 21 |" in text
    assert "| vgg | lat40-small @B | channels | bn | +0.50 |" in text


def test_method_settings_apply_a_variant_on_top_of_the_cell_and_the_method(ablation) -> None:
    search, finetune = {"steps": 3, "trials": 12}, ablation.FINETUNE["standard"]
    cell = ablation.CELLS["lat50"]  # ran before the moments and repairs defaults: pinned to what its rows ran
    old = ablation._method_settings("uniform", search, finetune, cell)
    assert old["moments"] == 1 and old["repairs"] == 0 and old["sampler"] == "uniform" and old["round_to"] == 8
    assert "constraints" not in old and "min_margin" not in old  # only pipeline settings; lat50 ran with the default
    new = ablation._method_settings("uniform-moments", search, finetune, cell)
    assert new == {**old, "moments": 5, "moment_seconds": 10.0}
    margin = ablation._method_settings("exponential-margin4", search, finetune, ablation.CELLS["lat40"])
    assert margin["min_margin"] == 0.04 and margin["sampler"] == "netbudget" and margin["cooling"] == "exponential"
    one_step = ablation._method_settings("one-step-w16", search, finetune)
    assert one_step["round_to"] == 16 and one_step["cooling"] == "one-step" and one_step["trials"] == 36
    assert "moments" not in one_step and "repairs" not in one_step  # a cell without pins: the pipeline's defaults
    # suffixes combine; the current defaults on a pinned cell
    both = ablation._method_settings("uniform-w16-repair", search, finetune, ablation.CELLS["lat40"])
    assert both == {**ablation._method_settings("uniform", search, finetune, ablation.CELLS["lat40"]),
                    "round_to": 16, "min_margin": 0.04, "moments": 5, "moment_seconds": 10.0, "repairs": 2,
                    "step_thinning": 0}
    # the rows of the cells that ran before thinned variants pin it off; -thin turns it on
    assert old["step_thinning"] == 0
    thin = ablation._method_settings("exponential-thin", search, finetune, cell)
    assert thin["step_thinning"] == 4
    # every row so far ran without projection, whatever the pipeline's default: pinned off; -project turns it on
    assert old["project_misses"] is False and thin["project_misses"] is False
    assert ablation._method_settings("exponential-project-thin", search, finetune, cell) == {**thin, "project_misses": True}
    # and searched at the floor (session 26): pinned so; -floor takes the uniform path, -floor-once the floor at once
    assert old["floor_path"] == "search" and thin["floor_path"] == "search"
    assert all(pins["floor_path"] == "search" for pins in ablation.CELLS.values())
    assert ablation._method_settings("exponential-floor-thin", search, finetune, cell) == {**thin, "floor_path": "uniform"}
    assert ablation._method_settings("exponential-floor-once-thin", search, finetune, cell) == {
        **thin, "floor_path": "once"}
    # every row so far kept the final fine-tune's batch-norm statistics; -bnfinal re-estimates them
    assert (thin["final_bn_batches"], thin["final_tries"]) == (0, 1)  # the rows' final fine-tune before sessions 34-35
    assert ablation._method_settings("exponential-bnfinal-thin", search, finetune, cell) == {**thin, "final_bn_batches": 40}
    # -final2: two final fine-tunes, the better on validation kept
    assert ablation._method_settings("exponential-final2-thin", search, finetune, cell) == {
        **thin, "final_tries": 2, "final_merge": "best"}
    assert ablation._method_settings("uniform-final2-thin", search, finetune, cell) == {
        **ablation._method_settings("uniform-thin", search, finetune, cell), "final_tries": 2, "final_merge": "best"}
    # -soup2: two final fine-tunes averaged, with the re-estimated statistics
    assert ablation._method_settings("exponential-soup2-bnfinal-thin", search, finetune, cell) == {
        **thin, "final_tries": 2, "final_merge": "soup", "final_bn_batches": 40}
    # the other methods as rivals of the current defaults: their own sampler or proxy, the -thin settings
    assert ablation._method_settings("optuna-gp-thin", search, finetune, cell) == {**thin, "sampler": "optuna-gp"}
    assert ablation._method_settings("reference-thin", search, finetune, cell) == {**thin, "proxy": "reference"}
    assert ablation._method_settings("linear-thin", search, finetune, cell) == {**thin, "cooling": "linear"}
    # one-step: the same evaluations and total fine-tuning in one step, with the -thin settings
    assert ablation._method_settings("one-step-thin", search, finetune, cell) == {
        **thin, "cooling": "one-step", "trials": search["steps"] * search["trials"],
        "step_epochs": finetune["step_epochs"] * search["steps"]}
    # the two-constraint cell's rows ran before split seeds: pinned off; -split turns them on
    two = ablation.CELLS["two"]
    assert ablation._method_settings("exponential", search, finetune, two)["split_seeds"] is False
    assert ablation._method_settings("exponential-split", search, finetune, two) == {
        **ablation._method_settings("exponential", search, finetune, two), "split_seeds": True}


def test_split_seed_rows_are_judged_against_uniform_and_exponential_without_them(ablation, tmp_path) -> None:
    rows = [{**_row("exponential", s, 0.91), "cell": "two"} for s in range(2)]
    rows += [{**_row("uniform", s, 0.90), "cell": "two"} for s in range(3)]
    rows += [{**_row("exponential-split", s, 0.92 + 0.01 * s), "cell": "two"} for s in range(3)]
    rows[-1]["feasible"] = False
    out = tmp_path / "ablation.json"
    head = {"network": "vgg", "cell": "two", "uniform_top1": 0.86, "oracle_best_top1": 0.90, "oracle_mean_top1": 0.88,
            "n": 7}
    ablation.write_markdown(out, {"machine": "test", "rows": rows, "cells": [], "headroom": [head], "dense": [],
                                  "proxy": []})
    assert "exponential-split's mean" not in out.with_suffix(".md").read_text()  # mixing draws: no oracle here
    ablation.write_markdown(out, {"machine": "test", "rows": rows, "cells": [], "dense": [], "proxy": [],
                                  "headroom": [{**head, "construction": "split"}]})
    text = out.with_suffix(".md").read_text()
    assert ("Headroom above the (one-shot) uniform configuration 4.00 pt (7 configurations); exponential-split's "
            "mean is +7.00 pt from it and +3.00 pt from the uniform runs over 3 paired seeds (met") in text
    assert ("With split seeds (the default since session 12): exponential-split - uniform = +3.00 +- 1.00 pt over 3 "
            "paired seeds (met); minus exponential without them = +1.50 +- 0.71 pt over 2; feasible 2/3 runs "
            "(MISSED).") in text


def test_a_cell_of_computed_budgets_is_judged_with_one_step_as_the_default(ablation, tmp_path) -> None:
    rows = [{**_row("exponential", s, 0.88 + 0.01 * s), "cell": "size05"} for s in range(3)]
    rows += [{**_row("uniform", s, 0.87), "cell": "size05"} for s in range(3)]
    rows += [{**_row("one-step", s, 0.91), "cell": "size05"} for s in range(3)]
    rows += [{**_row("reference", s, 0.915 if s == 0 else 0.90), "cell": "size05"} for s in range(3)]
    rows += [{**_row(m, s, 0.90), "cell": "lat40-small"} for m in ("exponential", "uniform", "one-step") for s in range(2)]
    head = {"network": "vgg", "cell": "size05", "uniform_top1": 0.87, "oracle_best_top1": 0.90,
            "oracle_mean_top1": 0.885, "n": 8}
    results = {"machine": "test", "rows": rows, "cells": [], "headroom": [head], "dense": [], "proxy": []}
    text = _markdown(ablation, tmp_path, results)
    assert ("Default for computed budgets (`cooling='auto'` = one-step, since session 11): one-step - uniform = "
            "+4.00 +- 0.00 pt over 3 paired seeds (met); minus exponential = +2.00 +- 1.00 pt over 3; methods ahead "
            "of it (paired): none (met).") in text
    assert "one-step's mean is +4.00 pt from it and +4.00 pt from the uniform runs over 3 paired seeds (met: at least" in text
    assert text.count("Default for computed budgets") == 1  # a latency cell keeps exponential as its default
    assert ablation._computed("size05 @B") and ablation._computed("size10-small") and not ablation._computed("two")


def test_headroom_positions_vary_where_only_the_corner_neighbourhood_meets_the_budget(ablation) -> None:
    # a storage-like budget: one dimension holds 99 % of the weight and must stay near 1;
    # mixing any random start towards the corner collapses onto the corner at 1/64
    weight = np.array([99.0, 0.25, 0.25, 0.25, 0.25])

    def feasible(x: np.ndarray) -> bool:
        return float(weight @ (1.0 - x)) <= 0.6

    positions = ablation._headroom_positions(feasible, 5, 8, np.random.default_rng(0))
    assert len(positions) == 9 and all(feasible(p) for p in positions)
    assert np.allclose(positions[0], positions[0][0])  # the uniform position first
    rest = np.array(positions[1:])
    assert len({tuple(np.round(p, 6)) for p in rest}) == 8  # no two alike (all were the corner before)
    assert rest[:, 0].min() > 0.99  # the heavy dimension stays compressed
    assert rest[:, 1:].min() < 0.2 and np.ptp(rest[:, 1:]) > 0.7  # the light ones spread over their range
    # a loose budget keeps the mixing construction (and its random stream): no coordinate sampling
    loose = ablation._headroom_positions(lambda x: float(weight @ (1.0 - x)) <= 60.0, 5, 3, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    for p in loose[1:]:
        start = rng.random(5)
        assert np.allclose((p - start) / (1.0 - start), ((p - start) / (1.0 - start))[0])  # on start's line


def test_a_stopped_headroom_study_resumes_without_redoing_finished_configurations(ablation, tmp_path) -> None:
    cache = tmp_path / "vgg-size05-headroom.json"
    key = {"network": "vgg", "cell": "size05", "epochs": 6, "seed": 0}
    positions = [np.full(3, x) for x in (0.2, 0.5, 0.7, 0.9)]
    computed = []

    def compute(position, stop_at=None):
        if stop_at is not None and len(computed) == stop_at:
            raise KeyboardInterrupt  # the user stops the study during the third configuration
        computed.append(float(position[0]))
        return {"top1": 0.8 + 0.1 * float(position[0])}

    with pytest.raises(KeyboardInterrupt):
        ablation._cached_points(cache, key, positions, lambda q: compute(q, stop_at=2))
    assert computed == [0.2, 0.5]
    saved = json.loads(cache.read_text())
    assert [p["top1"] for p in saved["points"]] == pytest.approx([0.82, 0.85])
    assert np.allclose(saved["positions"], np.stack(positions))
    points = ablation._cached_points(cache, key, positions, compute)
    assert computed == [0.2, 0.5, 0.7, 0.9]  # only the two unfinished ones ran
    assert [p["top1"] for p in points] == pytest.approx([0.82, 0.85, 0.87, 0.89])
    # a study of more configurations reuses the finished prefix; other settings start afresh
    ablation._cached_points(cache, key, positions + [np.full(3, 1.0)], compute)
    assert computed == [0.2, 0.5, 0.7, 0.9, 1.0]
    points = ablation._cached_points(cache, {**key, "epochs": 3}, positions[:1], compute)
    assert computed[-1] == 0.2 and len(computed) == 6 and points[0]["top1"] == pytest.approx(0.82)
    assert ablation._read_cache(cache, key) == {}  # replaced by the study of the other settings


def test_a_proxy_that_scores_every_configuration_alike_is_stored_as_null_and_shown_as_such(ablation, tmp_path) -> None:
    out = tmp_path / "ablation.json"
    # written by an earlier version as NaN, which is not JSON; loading turns it into null
    out.write_text('{"machine": "test", "rows": [], "cells": [], "headroom": [], "dense": [], "proxy": ['
                   '{"network": "vgg", "cell": "size05", "fidelity": "reference", "spearman": NaN, "seconds": 0.37},'
                   '{"network": "vgg", "cell": "size05", "fidelity": "lookahead-50", "spearman": 0.98, "seconds": 5.56}]}')
    results = ablation._load(out)
    assert [p["spearman"] for p in results["proxy"]] == [None, 0.98]
    ablation._save(out, results)
    assert "NaN" not in out.read_text() and json.loads(out.read_text())["proxy"][0]["spearman"] is None
    ablation.write_markdown(out, results)
    text = out.with_suffix(".md").read_text()
    assert "| vgg | size05 | prune + bits | reference | none (every score equal) | 0.37 |" in text
    assert "| vgg | size05 | prune + bits | lookahead-50 | +0.98 | 5.56 |" in text


def test_a_larger_headroom_study_keeps_the_positions_drawn_before_and_draws_the_rest(ablation) -> None:
    saved = [np.full(2, 0.1), np.full(2, 0.2), np.full(2, 0.3)]
    drawn = [np.full(2, x) for x in (0.5, 0.6, 0.7, 0.8, 0.9)]  # a redraw: its first positions moved with the timings
    calls = []

    def draw():
        calls.append(1)
        return drawn

    kept = ablation._kept_positions(saved, 4, draw)
    assert [float(q[0]) for q in kept] == [0.1, 0.2, 0.3, 0.8, 0.9] and calls == [1]
    assert [float(q[0]) for q in ablation._kept_positions(saved, 1, draw)] == [0.1, 0.2] and calls == [1]


def test_a_goal_line_over_one_paired_seed_shows_no_spread(ablation, tmp_path) -> None:
    rows = [_row("exponential", 0, 0.9287), _row("uniform", 0, 0.9266)]
    out = tmp_path / "ablation.json"
    ablation.write_markdown(out, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [], "proxy": []})
    text = out.with_suffix(".md").read_text()
    assert "exponential - uniform = +0.21 pt over 1 paired seeds (met)" in text and "nan" not in text


def test_channel_rows_of_a_size_cell_are_judged_against_the_same_method_without_channels(ablation, tmp_path) -> None:
    search, finetune = {"steps": 3, "trials": 12}, ablation.FINETUNE["standard"]
    size05 = ablation.CELLS["size05"]
    # the size cells' rows ran with prune + bits, a size budget's default operators then: pinned
    assert ablation._method_settings("one-step", search, finetune, size05)["operators"] == ["prune", "bits"]
    assert ablation._method_settings("uniform", search, finetune, ablation.CELLS["size10-small"])["operators"] == [
        "prune", "bits"]
    assert ablation._method_settings("one-step-channels", search, finetune, size05) == {
        **ablation._method_settings("one-step", search, finetune, size05), "operators": ["channels", "prune", "bits"]}
    rows = [{**_row("uniform", s, 0.88), "cell": "size05"} for s in range(3)]
    rows += [{**_row("exponential", s, 0.89), "cell": "size05"} for s in range(3)]
    rows += [{**_row("one-step", s, 0.91), "cell": "size05"} for s in range(3)]
    rows += [{**_row("one-step-channels", s, 0.92 + 0.01 * s), "cell": "size05"} for s in range(2)]
    rows += [{**_row("uniform-channels", s, 0.93), "cell": "size05"} for s in range(3)]
    out = tmp_path / "ablation.json"
    ablation.write_markdown(out, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                  "proxy": []})
    text = out.with_suffix(".md").read_text()
    assert ("With channels as well (channels + prune + bits, a size budget's default operators since session 14): "
            "one-step-channels minus one-step = +1.50 +- 0.71 pt "
            "over 2, minus uniform = +4.50 +- 0.71 pt over 2, feasible 2/2; uniform-channels minus uniform = "
            "+5.00 +- 0.00 pt over 3, feasible 3/3; one-step-channels minus "
            "uniform-channels = -0.50 +- 0.71 pt over 2 (MISSED).") in text
    # a rerun with another setting is not a rival of the default
    assert "methods ahead of it (paired): none (met)" in text


def test_a_mixed_cell_draws_its_headroom_one_kind_of_operator_at_a_time(ablation) -> None:
    # dims 0-1 channels (latency falls only with them), 2-3 weights; size falls with all four
    def feasible(x: np.ndarray) -> bool:
        return x[0] + x[1] >= 1.6 and x.sum() >= 2.0

    groups = [np.array([0, 1]), np.array([2, 3])]
    split = ablation._headroom_positions(feasible, 4, 8, np.random.default_rng(0), groups=groups)
    mixed = ablation._headroom_positions(feasible, 4, 8, np.random.default_rng(0))
    assert len(split) == 9 and all(feasible(p) for p in split)
    assert np.allclose(split[0], mixed[0])  # the uniform position first, as before
    channels_first = np.array(split[1::2])
    assert channels_first[:, :2].sum(axis=1).max() <= 1.6 + 2 / 64  # channels just far enough
    # the mixing construction pushes the weights towards the corner with the channels
    assert np.array(split[1:])[:, 2:].sum(axis=1).mean() < np.array(mixed[1:])[:, 2:].sum(axis=1).mean() - 0.3
    everything, weights = ["channels", "prune", "bits"], ["prune", "bits"]
    assert ablation._headroom_operators("two") == everything and ablation._headroom_operators("size05 @B") == weights
    assert ablation._construction(everything) == "split" and ablation._construction(weights) == "mix"
    assert ablation._construction(["channels"]) == "mix"
    assert ablation._stale({"n": 6}, everything, 6) and not ablation._stale({"n": 6, "construction": "split"}, everything, 6)
    assert ablation._stale({"n": 6, "construction": "split"}, everything, 7) and not ablation._stale({"n": 9}, weights, 9)


def test_a_size_cell_run_without_exponential_is_judged_with_one_step_and_its_channel_rows(ablation, tmp_path) -> None:
    rows = [{**_row(m, s, top1, feasible=(m, s) != ("one-step", 0)), "cell": "size10-small"}
            for m, top1 in (("one-step", 0.93), ("uniform", 0.92), ("one-step-channels", 0.935), ("uniform-channels", 0.925))
            for s in range(2)]
    out = tmp_path / "ablation.json"
    ablation.write_markdown(out, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [], "proxy": []})
    text = out.with_suffix(".md").read_text()
    assert ("* vgg / size10-small:\n  Default for computed budgets (`cooling='auto'` = one-step, since session 11): "
            "one-step - uniform = +1.00 +- 0.00 pt over 2 paired seeds (met); minus exponential = n/a pt over 0; "
            "methods ahead of it (paired): none (met).\n  Feasible on re-measurement: 7/8 runs (MISSED).") in text
    assert "one-step-channels minus uniform-channels = +1.00 +- 0.00 pt over 2 (met)" in text


def test_a_headroom_study_over_other_operators_stands_beside_the_default_one(ablation, tmp_path, monkeypatch) -> None:
    calls = []

    def fake_headroom(network, cell, model, data, n, finetune, steps, cache=None, operators=None):
        calls.append((operators, cache.name))
        head = {"network": network, "cell": cell, "uniform_top1": 0.92, "oracle_best_top1": 0.94,
                "oracle_mean_top1": 0.93, "n": n + 1, "top1": [0.92] * (n + 1), "operators": operators,
                "construction": ablation._construction(operators)}
        return head, [{"network": network, "cell": cell, "fidelity": "bn", "spearman": 0.5, "seconds": 1.0,
                       "operators": operators}]

    monkeypatch.setattr(ablation, "_headroom", fake_headroom)
    monkeypatch.setattr(ablation, "_fingerprint", lambda network=None: ablation.EARLIER)
    # a study written before studies recorded their operators: the cell's default (prune + bits)
    old = {"network": "vgg", "cell": "size05", "uniform_top1": 0.89, "oracle_best_top1": 0.90,
           "oracle_mean_top1": 0.895, "n": 9, "top1": [0.89] * 9}
    results = {"rows": [], "headroom": [old],
               "proxy": [{"network": "vgg", "cell": "size05", "fidelity": "bn", "spearman": 0.1, "seconds": 1.0}]}
    out = tmp_path / "ablation.json"

    def run(operators: str | None) -> None:
        args = _cell_args(operators=operators)
        ablation._run_cell(args, results, out, tmp_path, "vgg", "size05", None, None,
                           ablation.FINETUNE["standard"], [], 1, 6, ablation.SEARCH)

    run(None)  # the default study is stored
    assert calls == []
    run("bits,channels,prune")  # any order: the space's
    assert calls == [(["channels", "prune", "bits"], "vgg-size05-headroom-channels+prune+bits.json")]
    run("channels,prune,bits")  # stored now
    assert len(calls) == 1 and [h["n"] for h in results["headroom"]] == [9, 7]
    assert [p["spearman"] for p in results["proxy"]] == [0.1, 0.5]  # the default study's proxy rows kept
    with pytest.raises(SystemExit, match="--headroom-operators: expected a comma-separated subset of channels, "
                                         "prune, bits, got 'channels,prnue'"):
        ablation._parse_operators("channels,prnue")
    rows = [{**_row(m, s, top1), "cell": "size05"}
            for m, top1 in (("one-step", 0.90), ("uniform", 0.89), ("one-step-channels", 0.93), ("uniform-channels", 0.925),
                            ("exponential-channels", 0.935)) for s in range(2)]
    ablation.write_markdown(out, {**results, "machine": "test", "rows": rows, "cells": [], "dense": []})
    text = out.with_suffix(".md").read_text()
    assert ("  Headroom above the (one-shot) uniform configuration 1.00 pt (9 configurations); one-step's mean is "
            "+1.00 pt from it and +1.00 pt from the uniform runs over 2 paired seeds"
            " (met: at least half where the headroom is >= 1 pt, above the uniform runs too, or its best reached).") in text
    assert ("  Headroom over channels + prune + bits above the (one-shot) uniform configuration 2.00 pt "
            "(7 configurations); one-step-channels's mean is +1.00 pt from it and +0.50 pt from the uniform runs "
            "over 2 paired seeds"
            " (MISSED: at least half where the headroom is >= 1 pt, above the uniform runs too, or its best reached).") in text
    assert ("exponential-channels minus exponential = n/a pt over 0, minus uniform = +4.50 +- 0.00 pt over 2, feasible 2/2; "
            "one-step-channels minus uniform-channels = +0.50 +- 0.00 pt over 2 (met); one-step-channels minus "
            "exponential-channels = -0.50 +- 0.00 pt over 2 (MISSED).") in text
    assert "| vgg | size05 | prune + bits | mix | 9 | 89.00 % |" in text
    assert "| vgg | size05 | channels + prune + bits | split | 7 | 92.00 % | 94.00 % |" in text
    assert "| vgg | size05 | channels + prune + bits | bn | +0.50 |" in text


def test_a_misspelt_method_or_cell_stops_at_start_up_naming_it(ablation) -> None:
    assert ablation._parse_names("--methods", "tpe-thin, uniform", ablation.METHODS) == ["tpe-thin", "uniform"]
    with pytest.raises(SystemExit, match=r"--methods: unknown 'tpe-thn'; expected a comma-separated list of "
                                         r"exponential, one-step"):
        ablation._parse_names("--methods", "uniform,tpe-thn", ablation.METHODS)
    with pytest.raises(SystemExit, match=r"--cells: unknown 'lat05', 'sise05'; expected"):
        ablation._parse_names("--cells", "lat05,sise05", list(ablation.CELLS))
    with pytest.raises(SystemExit, match="--cells: unknown empty list"):
        ablation._parse_names("--cells", " , ", list(ablation.CELLS))


def test_rival_seeds_sets_how_many_seeds_the_other_methods_run(ablation, monkeypatch) -> None:
    methods = ["exponential-thin", "random-thin"]
    runs = ablation._schedule(methods, 5, 3)
    assert [s for s, m in runs if m == "exponential-thin"] == [0, 1, 2, 3, 4]
    assert [s for s, m in runs if m == "random-thin"] == [0, 1, 2]
    assert runs[:3] == [(0, "exponential-thin"), (0, "random-thin"), (1, "exponential-thin")]  # seed by seed
    assert [s for s, m in ablation._schedule(methods, 5, 5) if m == "random-thin"] == [0, 1, 2, 3, 4]
    assert [s for s, m in ablation._schedule(methods, 2, 5) if m == "random-thin"] == [0, 1]  # at most --seeds
    monkeypatch.setattr("sys.argv", ["ablation.py", "--rival-seeds", "0"])
    with pytest.raises(SystemExit, match="--rival-seeds: 0; expected a number of seeds >= 1"):
        ablation.main()


def _retimed_head(uppers: list[float]) -> dict:
    return {"network": "vgg", "cell": "lat40-small", "n": len(uppers), "uniform_top1": 0.89,
            "oracle_best_top1": 0.905, "oracle_mean_top1": 0.899, "top1": [0.89, 0.905, 0.90, 0.895][: len(uppers)],
            "retimed": {"upper_ratio": uppers, "bound": 0.4, "threshold": 0.384, "moments": 5, "per_moment": 2,
                        "confidence": 0.95}}


def test_a_retimed_headroom_study_counts_the_configurations_a_run_could_keep_and_their_accuracy(ablation) -> None:
    # only the first and the last re-timed within the re-check's threshold; the third within the bound
    line = ablation._retime_line(_retimed_head([0.38, 0.41, 0.39, 0.383]), "exponential", 88.34)
    assert ("Re-timed as runs verify (2 timings at each of 5 moments, 95 % upper bound): 3/4 configurations within "
            "0.4x, 2/4 within the re-check's 0.384x; those 2: best 89.50 %, mean 89.25 % (exponential's mean "
            "-1.16 pt from their best, -0.91 pt from their mean).") in line
    none = ablation._retime_line(_retimed_head([0.39, 0.41]), "exponential", 88.34)
    assert "0/2 within the re-check's 0.384x; none a run could keep" in none
    # the goal line of the study carries it; a study never re-timed does not
    over_runs = (0.5, 0.2, 3)  # its paired difference with the uniform runs
    assert ablation._headroom_line(_retimed_head([0.38, 0.41]), "exponential", 88.34, over_runs).splitlines()[1] == \
        ablation._retime_line(_retimed_head([0.38, 0.41]), "exponential", 88.34)
    plain = {k: v for k, v in _retimed_head([0.38]).items() if k != "retimed"}
    assert "\n" not in ablation._headroom_line(plain, "exponential", 88.34, over_runs)


def test_retiming_a_headroom_study_measures_each_configuration_over_moments_and_resumes(ablation, tmp_path) -> None:
    from netbudget.space import build_space
    from netbudget.zoo import build_model

    model = build_model("vgg", num_classes=10, in_channels=1, width=0.25).eval()
    data = type("Data", (), {"input_shape": (1, 28, 28)})()
    space = build_space(model, data.input_shape, operators=["channels"], max_channel_ratio=0.8)
    study = tmp_path / "vgg-lat40-small-headroom.json"
    study.write_text(json.dumps({"positions": [[0.0] * len(space), [1.0] * len(space)]}))
    out = tmp_path / "vgg-lat40-small-headroom-retimed.json"
    settings = {"moments": 3, "per_moment": 2, "pause": 0.0, "confidence": 0.95, "margin": 0.04}
    retimed = ablation._retime("vgg", "lat40-small", model, data, study, out=out, settings=settings)
    assert retimed["bound"] == 0.4 and retimed["threshold"] == pytest.approx(0.384)
    assert [len(m) for m in retimed["moment_means"]] == [3, 3]
    # the upper bound lies above the moments' mean; the most compressed network is the faster one
    for upper, means in zip(retimed["upper_ratio"], retimed["moment_means"]):
        assert upper >= np.mean(means) > 0
    assert np.mean(retimed["moment_means"][1]) < np.mean(retimed["moment_means"][0])
    # a second call re-times nothing: every configuration was saved as it was done
    again = ablation._retime("vgg", "lat40-small", model, data, study, out=out, settings=settings)
    assert again["upper_ratio"] == retimed["upper_ratio"]
    assert json.loads(out.read_text())["key"]["settings"] == settings


def test_retiming_refuses_a_cell_without_a_latency_budget_or_a_missing_study(ablation, tmp_path) -> None:
    data = type("Data", (), {"input_shape": (1, 28, 28)})()
    with pytest.raises(SystemExit, match=r"cell 'size05' has no relative latency budget to re-time"):
        ablation._retime("vgg", "size05", None, data, tmp_path / "x.json")
    with pytest.raises(SystemExit, match=r"no headroom study of vgg lat40-small at .*missing.json; run it first"):
        ablation._retime("vgg", "lat40-small", None, data, tmp_path / "missing.json")


def _confirmed_head() -> dict:
    # the study drew 86.0 % for its uniform configuration and 89.0 % for its luckiest one
    return {"network": "resnet20", "cell": "lat50-small", "n": 4, "uniform_top1": 0.86, "oracle_best_top1": 0.89,
            "oracle_mean_top1": 0.87, "top1": [0.86, 0.89, 0.87, 0.85],
            "confirmed": {"index": [0, 1, 2], "seeds": [0, 1, 2], "reproduced": 0.86,
                          "top1": [[0.86, 0.87, 0.85], [0.89, 0.86, 0.87], [0.87, 0.89, 0.88]]}}


def test_a_confirmed_headroom_study_shows_its_room_on_the_means_of_more_fine_tuning_seeds(ablation) -> None:
    head = _confirmed_head()
    # the third re-fine-tuned configuration has the highest mean (88.0 %): 2.0 +- 1.0 pt above uniform's 86.0
    room, sd, n, best = ablation._confirmed_room(head)
    assert (room, sd, n, best) == (pytest.approx(2.0), pytest.approx(1.0), 3, 2)
    line = ablation._confirm_line(head, "exponential-thin", 87.5)
    assert ("  Re-fine-tuned with 3 seeds (0-2, the first the study's own; it reproduces 86.00 % for the study's "
            "86.00 %): the uniform configuration 86.00 -> 86.00 % on the mean, the study's best 2 other networks "
            "89.00 -> 87.33, 87.00 -> 88.00 %; room on the means 2.00 +- 1.00 pt (network 2 over uniform, paired); "
            "exponential-thin's mean +1.50 pt from the uniform configuration's mean (at least half of that room).") \
        == line
    assert "(under half of that room)" in ablation._confirm_line(head, "exponential-thin", 86.9)
    alone = {**head, "confirmed": {**head["confirmed"], "index": [0], "top1": [[0.86, 0.87, 0.85]]}}
    assert ablation._confirmed_room(alone) is None
    assert ablation._confirm_line(alone, "exponential-thin", 86.9).endswith(
        "the uniform configuration 86.00 -> 86.00 % on the mean; the study drew no other network.")
    # the study's goal line carries it; the verdict stays the (the study's own draws: 3 pt of room)
    text = ablation._headroom_line(head, "exponential-thin", 87.5, (1.2, 0.5, 5))
    assert text.splitlines()[1] == line and "MISSED: at least half" in text.splitlines()[0]
    rows = [{**_row(m, s, t), "network": "resnet20", "cell": "lat50-small"}
            for s in range(3) for m, t in (("exponential-thin", 0.875), ("uniform-thin", 0.863))]
    cells, goals = ablation._scoreboard_row("resnet20", "lat50-small", rows, [head])
    assert cells[6] == ("3.00 pt, +1.50 captured, +1.20 over the uniform runs (4 configurations); "
                        "2.00 pt over 3 fine-tuning seeds") and goals[1] == "MISSED"


def test_confirming_a_headroom_study_refits_its_uniform_and_best_draws_with_more_seeds_and_resumes(
        ablation, tmp_path, monkeypatch) -> None:
    from netbudget.data import load_dataset
    from netbudget.space import build_space
    from netbudget.zoo import build_model

    data = load_dataset("mnist5k", seed=0)
    model = build_model("vgg", num_classes=10, in_channels=1, width=0.25).eval()
    space = build_space(model, data.input_shape, operators=["channels"], max_channel_ratio=0.8)
    study = tmp_path / "vgg-lat40-small-headroom.json"
    # the fifth builds the uniform network again: past the floor, channels round to the same counts
    positions = [[1.0] * len(space), [0.0] * len(space), [0.5] * len(space), [0.25] * len(space), [0.9] * len(space)]
    study.write_text(json.dumps({"key": {"epochs": 1, "max_steps": 2, "seed": 0}, "positions": positions}))
    top1 = [0.50, 0.40, 0.70, 0.60, 0.80]  # the study's draws: its best two other networks are the third and fourth
    out = tmp_path / "vgg-lat40-small-headroom-confirmed.json"
    confirmed = ablation._confirm("vgg", "lat40-small", model, data, study, top1, 3, out=out, top=2)
    assert confirmed["index"] == [0, 2, 3] and confirmed["seeds"] == [0, 1, 2]
    assert [t[0] for t in confirmed["top1"]] == [0.50, 0.70, 0.60]  # the study's own draw first
    assert all(len(t) == 3 and all(0.0 <= x <= 1.0 for x in t) for t in confirmed["top1"])
    # the uniform configuration fine-tuned again with the study's seed: the draws repeat exactly
    again = ablation._finetuned_top1(model, space, space.decode(np.asarray(positions[0])), data, 1, 2, 0)
    assert confirmed["reproduced"] == again
    assert ablation._finetuned_top1(model, space, space.decode(np.asarray(positions[0])), data, 1, 2, 1) == \
        confirmed["top1"][0][1]
    # a second call fine-tunes nothing: every configuration and the reproduction were saved
    monkeypatch.setattr(ablation, "_finetuned_top1", lambda *a: pytest.fail("fine-tuned again"))
    assert ablation._confirm("vgg", "lat40-small", model, data, study, top1, 3, out=out, top=2) == confirmed
    with pytest.raises(SystemExit, match=r"holds 5 configurations but its results 6; finish it first"):
        ablation._confirm("vgg", "lat40-small", model, data, study, [*top1, 0.3], 3, out=out)
    with pytest.raises(SystemExit, match=r"no headroom study of vgg lat40-small at .*missing.json; run it first"):
        ablation._confirm("vgg", "lat40-small", model, data, tmp_path / "missing.json", top1, 3)
    # the study it works on is this machine's, over the cell's default operators
    mine = {"network": "vgg", "cell": "lat40-small", "machine": ablation._fingerprint(), "top1": top1}
    results = {"headroom": [{**mine, "machine": "another CPU"}, {**mine, "operators": ["channels", "prune", "bits"]}]}
    with pytest.raises(SystemExit, match=r"--confirm-headroom: no headroom study of vgg lat40-small on this machine"):
        ablation._stored_study(results, tmp_path / "ablation.json", "vgg", "lat40-small", "--confirm-headroom")
    assert ablation._stored_study({"headroom": [*results["headroom"], mine]}, tmp_path, "vgg", "lat40-small",
                                  "--confirm-headroom") is mine
    monkeypatch.setattr("sys.argv", ["ablation.py", "--confirm-headroom", "1"])
    with pytest.raises(SystemExit, match=r"--confirm-headroom: 1; expected a number of fine-tuning seeds >= 2"):
        ablation.main()


def _tried(method: str, seed: int, tries: list[tuple[float, float]], kept: int) -> dict:
    """A row with final tries ``(validation, test)`` top-1, ``kept`` the chosen one."""
    records = [{"seed": 2000 + seed + 100_003 * k, "val_top1": v, "test_top1": t, "kept": k == kept}
               for k, (v, t) in enumerate(tries)]
    return {**_row(method, seed, tries[kept][1]), "final_tries": records}


def test_final_tries_section_compares_the_kept_try_with_the_first_on_the_same_network(ablation, tmp_path) -> None:
    rows = [_tried("exponential-final2-thin", 0, [(0.90, 0.88), (0.91, 0.90)], kept=1),  # +2 pt, the better on test
            _tried("exponential-final2-thin", 1, [(0.92, 0.91), (0.90, 0.92)], kept=0),  # 0, the worse on test
            _tried("uniform-final2-thin", 0, [(0.90, 0.89), (0.89, 0.88)], kept=0),
            _tried("uniform-final2-thin", 1, [(0.90, 0.90), (0.91, 0.91)], kept=1)]
    rows += [_row("exponential-thin", 0, 0.87), _row("exponential-thin", 1, 0.91)]
    rows += [_row("uniform-thin", s, 0.90) for s in range(2)]
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    assert "## Final tries: the better of two final fine-tunes on validation data (`-final2`), or their soup (`-soup2`)" in text
    assert "| vgg | lat40-small | exponential-final2-thin | 2 | 89.50 | 90.50 | +1.00 +- 1.41 | 1 of 2 | 1.50 |" in text
    assert "| vgg | lat40-small | uniform-final2-thin | 2 | 89.50 | 90.00 | +0.50 +- 0.71 | 2 of 2 | 1.00 |" in text
    # the methods against each other (kept 90/91 against 89/91 %) and against their single-try rows (87/91, 90/90 %)
    assert ("* vgg / lat40-small: with two final tries: exponential - uniform = +0.50 +- 0.71 pt over 2 paired seeds "
            "(met); minus the single fine-tune's rows (other runs): exponential +1.50 +- 2.12 pt over 2, uniform "
            "+0.00 +- 1.41 pt over 2; feasible 4/4 runs (met).") in text
    # rows without tries add no section
    plain = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows[4:], "cells": [], "headroom": [],
                                           "dense": [], "proxy": []})
    assert "## Final tries" not in plain


def test_a_network_retrained_on_a_cpu_that_ran_it_before_gets_its_own_fingerprint(ablation, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(ablation, "RETRAINED", {})
    here = ablation._fingerprint()
    results = {"machine": "test", "rows": [], "cells": [], "headroom": [], "proxy": [],
               "dense": [{"network": "resnet20", "top1": 0.9189, "latency_ms": 5.0, "latency_spread": 0.01,
                          "batch_size": 32, "machine": here}]}
    # the checkpoint the CPU ran before: its plain fingerprint; a network it never ran: the same
    assert ablation._note_checkpoint(results, "resnet20", 0.9189) == here
    assert ablation._note_checkpoint(results, "vgg", 0.9333) == here and ablation._fingerprint("vgg") == here
    # retrained on a fresh machine of the same CPU: named, so nothing of the first checkpoint pairs with it
    retrained = ablation._note_checkpoint(results, "resnet20", 0.9228)
    assert retrained == f"{here}; resnet20 retrained to 92.28 %" == ablation._fingerprint("resnet20")
    assert ablation._fingerprint() == here and ablation._fingerprint("vgg") == here
    rows = [{**_row("exponential-thin", 0, 0.88), "network": "resnet20", "machine": here, "base_top1": 0.9189},
            {**_row("uniform-thin", 0, 0.87), "network": "resnet20", "machine": here, "base_top1": 0.9189},
            {**_row("exponential-thin", 0, 0.90), "network": "resnet20", "machine": retrained, "base_top1": 0.9228}]
    text = _markdown(ablation, tmp_path, {**results, "rows": rows})
    assert f"* C: {retrained}" in text  # its own label; A is the earlier machine, B this CPU's first checkpoint
    assert "| resnet20 | lat40-small @B | exponential-thin | 1 | 88.00 % | +1.00 |" in text
    assert "| resnet20 | lat40-small @C | exponential-thin | 1 | 90.00 % |  |" in text


def test_guarded_rows_are_the_cells_default_with_their_own_section_and_the_unguarded_default_is_no_rival(
    ablation, tmp_path
) -> None:
    suffix = "-soup2-bnfinal-thin"
    rows = [_row(m + suffix, s, top1) for m, top1s in (("exponential", (0.90, 0.92, 0.91)),
                                                        ("uniform", (0.92, 0.91, 0.91)),
                                                        ("one-step", (0.90, 0.90, 0.90))) for s, top1 in enumerate(top1s)]
    guarded = [(0.92, True), (0.92, False), (0.915, False)]  # seed 0: the uniform network shipped
    for seed, (top1, applied) in enumerate(guarded):
        row = _row("exponential" + suffix + "-guard", seed, top1)
        row["guard"] = {"applied": applied, "winner": {"macs": 1, "params": 1}, "uniform": {"macs": 2, "params": 2}}
        rows.append(row)
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    # judged on the guarded rows against uniform's; the unguarded runs (behind them) are no rival, one-step is
    assert ("| vgg | lat40-small | `exponential-soup2-bnfinal-thin-guard` | 91.83 % | +0.50 +- 0.50 (3) | 2 of 3 | "
            "not run | none of 1 | 9/9 | met / not run / met / met |") in board
    section = text.split("## Uniform guard")[1].split("\n## ")[0]
    # minus uniform / minus unguarded over all runs, then over the run that shipped the uniform network and the others
    assert ("| vgg | lat40-small | exponential-soup2-bnfinal-thin-guard | 3 | 1 | 91.83 % | +0.50 +- 0.50 | "
            "+0.83 +- 1.04 | +0.00 | +0.75 +- 0.35 | 3/3 |") in section
    table = text.split("## Final test top-1 by method")[1].split("\n## ")[0]
    # against the rows of the same settings: uniform's and the unguarded default's
    assert "| vgg | lat40-small | exponential-soup2-bnfinal-thin-guard | 3 | 91.83 % | +0.50 +- 0.50 | +0.83 +- 1.04 |" \
        in table
    assert "| vgg | lat40-small | one-step-soup2-bnfinal-thin | 3 | 90.00 % | -1.33 +- 0.58 | -1.00 +- 1.00 |" in table
    settings = ablation._method_settings("exponential" + suffix + "-guard", {"steps": 3, "trials": 12},
                                         ablation.FINETUNE["standard"], ablation.CELLS["lat50"])
    assert settings == {**ablation._method_settings("exponential" + suffix, {"steps": 3, "trials": 12},
                                                    ablation.FINETUNE["standard"], ablation.CELLS["lat50"]),
                        "uniform_guard": True}
    assert ablation._method_settings("exponential" + suffix, {"steps": 3, "trials": 12},
                                     ablation.FINETUNE["standard"])["uniform_guard"] is False  # rows before session 38


def test_guarded_rows_without_unguarded_ones_are_still_compared_with_the_uniform_rows_of_their_settings(
    ablation, tmp_path
) -> None:
    # a cell that ran only the guarded default, uniform and one-step with its settings (F's lat40-small)
    suffix = "-soup2-bnfinal-thin"
    rows = [_row(m, s, top1) for m, top1s in (("uniform" + suffix, (0.88, 0.87)), ("one-step" + suffix, (0.875, 0.86)),
                                               ("exponential" + suffix + "-guard", (0.89, 0.885)))
            for s, top1 in enumerate(top1s)]
    for row in rows[-2:]:
        row["guard"] = {"applied": False, "winner": {"macs": 3, "params": 3}, "uniform": {"macs": 2, "params": 2}}
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    table = text.split("## Final test top-1 by method")[1].split("\n## ")[0]
    # minus uniform filled, minus exponential blank: the cell has no unguarded rows
    assert "| vgg | lat40-small | exponential-soup2-bnfinal-thin-guard | 2 | 88.75 % | +1.25 +- 0.35 |  | 2/2 |" in table
    assert "| vgg | lat40-small | one-step-soup2-bnfinal-thin | 2 | 86.75 % | -0.75 +- 0.35 |  | 2/2 |" in table
    section = text.split("## Uniform guard")[1].split("\n## ")[0]
    assert ("| vgg | lat40-small | exponential-soup2-bnfinal-thin-guard | 2 | 0 | 88.75 % | +1.25 +- 0.35 | none | none | "
            "+1.25 +- 0.35 | 2/2 |") in section
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    assert "| +1.25 +- 0.35 (2) | 2 of 2 | not run | none of 1 | 6/6 | met / not run / met / met |" in board


def test_every_rival_with_the_defaults_settings_runs_its_own_sampler_and_counts_against_the_guarded_default(
    ablation, tmp_path
) -> None:
    # session 40: random / tpe / penalty / linear / optuna-gp with -soup2-bnfinal-thin (F's lat40-small)
    suffix = "-soup2-bnfinal-thin"
    search, finetune = {"steps": 3, "trials": 12}, ablation.FINETUNE["small"]
    for base in ("random", "tpe", "penalty", "optuna-gp"):
        settings = ablation._method_settings(base + suffix, search, finetune)
        assert (settings["sampler"], settings["cooling"]) == (base, "exponential")
        assert (settings["final_tries"], settings["final_merge"], settings["final_bn_batches"]) == (2, "soup", 40)
        assert settings["uniform_guard"] is False and settings["step_thinning"] == 4
    linear = ablation._method_settings("linear" + suffix, search, finetune)
    assert (linear["sampler"], linear["cooling"], linear["final_tries"]) == ("netbudget", "linear", 2)
    assert ablation._parse_names("--methods", "random" + suffix, ablation.METHODS) == ["random" + suffix]
    rows = [_row(m, s, top1) for m, top1s in (("uniform" + suffix, (0.87, 0.87)), ("random" + suffix, (0.89, 0.89)),
                                               ("tpe" + suffix, (0.87, 0.875)),
                                               ("exponential" + suffix + "-guard", (0.885, 0.885)))
            for s, top1 in enumerate(top1s)]
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    # random ahead of the default by +0.5 pt in both seeds; tpe behind: the rivals goal is missed for random alone
    assert ("| random-soup2-bnfinal-thin +0.50 +- 0.00 (2) | 8/8 | met / not run / MISSED / met |") in board


def test_the_capacity_tie_break_parses_to_its_settings_and_counts_as_a_rival_of_the_default_it_extends(
    ablation, tmp_path
) -> None:
    # session 41: the guarded default with near-ties (1 pt) broken by MACs
    method = "exponential-soup2-bnfinal-thin-guard-capacity"
    settings = ablation._method_settings(method, {"steps": 3, "trials": 12}, ablation.FINETUNE["small"])
    assert (settings["tie_break"], settings["tie_tolerance"], settings["uniform_guard"]) == ("macs", 0.01, True)
    assert (settings["sampler"], settings["cooling"], settings["final_tries"]) == ("netbudget", "exponential", 2)
    assert ablation._parse_names("--methods", method, ablation.METHODS) == [method]
    assert ablation._bases([{"method": "uniform-soup2-bnfinal-thin"}], method)[0] == "uniform-soup2-bnfinal-thin"
    rows = [_row(m, s, top1) for m, top1s in (("uniform-soup2-bnfinal-thin", (0.87, 0.87, 0.87)),
                                               ("exponential-soup2-bnfinal-thin-guard", (0.885, 0.885, 0.885)),
                                               (method, (0.89, 0.88, 0.89)))
            for s, top1 in enumerate(top1s)]
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    # ahead of the default by +0.5, -0.5, +0.5 pt: a rival ahead on the paired mean
    assert f"| {method} +0.17 +- 0.58 (3) | 9/9 | met / not run / MISSED / met |" in board


def test_the_retime_variant_runs_with_retimes_and_becomes_the_default_its_cell_is_judged_on(ablation, tmp_path) -> None:
    # session 44: a re-check miss resting on one slow moment re-timed (`retimes` 1); earlier rows ran without
    search, finetune = {"steps": 3, "trials": 12}, ablation.FINETUNE["small"]
    default = "exponential-soup2-bnfinal-thin-retime-guard"
    settings = ablation._method_settings(default, search, finetune)
    assert (settings["retimes"], settings["uniform_guard"], settings["final_tries"]) == (1, True, 2)
    assert settings == {**ablation._method_settings("exponential-soup2-bnfinal-thin-guard", search, finetune),
                        "retimes": 1}
    assert ablation._method_settings("exponential-soup2-bnfinal-thin-guard", search, finetune)["retimes"] == 0
    assert ablation._parse_names("--methods", default, ablation.METHODS) == [default]
    suffix = "-soup2-bnfinal-thin"
    rows = [_row(m, s, top1) for m, top1s in (
        ("uniform" + suffix, (0.87, 0.87)), ("exponential" + suffix + "-guard", (0.86, 0.86)),
        ("uniform" + suffix + "-retime", (0.87, 0.88)), (default, (0.88, 0.885)),
        ("one-step" + suffix + "-retime", (0.89, 0.875)), ("one-step" + suffix, (0.90, 0.90)))
        for s, top1 in enumerate(top1s)]
    recheck = {("uniform" + suffix + "-retime", 0): (0.5, 0), ("uniform" + suffix + "-retime", 1): (0.0, 2),
               (default, 0): (0.0, 1), (default, 1): (0.0, 2), ("uniform" + suffix, 0): (0.75, 0)}
    for row in rows:
        if (row["method"], row["seed"]) in recheck:
            row["recheck_position"], row["recheck_retimes"] = recheck[row["method"], row["seed"]]
    assert ablation._bases(rows, default)[0] == "uniform-soup2-bnfinal-thin-retime"
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    # judged against the re-timed uniform rows (+0.75 pt), with re-timed one-step its rival (+0.00 pt: not ahead)
    assert f"| `{default}` | 88.25 % | +0.75 +- 0.35 (2) | 2 of 2 |" in board
    assert "| none of 1 | 6/6 | met / not run / met / met |" in board
    section = text.split("## Re-timing a slow moment")[1].split("\n## ")[0]
    assert f"| vgg | lat40-small | {default} | 2 | 3 | 0.000 / none | 0 of 2 / none | 88.25 % | +2.25 +- 0.35 | 2/2 |" \
        in section
    assert ("| vgg | lat40-small | uniform-soup2-bnfinal-thin-retime | 2 | 2 | 0.250 / 0.750 | 1 of 2 / 1 of 1 | 87.50 % "
            "| +0.50 +- 0.71 | 2/2 |") in section


def test_the_rivals_with_retime_run_their_own_sampler_with_retimes_and_count_as_rivals_of_the_retime_default(
    ablation, tmp_path
) -> None:
    # session 45: the other methods re-run with -retime in the cell the -retime default is judged on
    search, finetune = {"steps": 3, "trials": 12}, ablation.FINETUNE["small"]
    suffix = "-soup2-bnfinal-thin"
    for base, sampler, cooling in (("random", "random", "exponential"), ("tpe", "tpe", "exponential"),
                                   ("penalty", "penalty", "exponential"), ("optuna-gp", "optuna-gp", "exponential"),
                                   ("linear", "netbudget", "linear"), ("reference", "netbudget", "exponential")):
        method = base + suffix + "-retime"
        settings = ablation._method_settings(method, search, finetune)
        assert settings == {**ablation._method_settings(base + suffix, search, finetune), "retimes": 1}
        assert (settings["sampler"], settings["cooling"], settings["uniform_guard"]) == (sampler, cooling, False)
        assert ablation._parse_names("--methods", method, ablation.METHODS) == [method]
    assert "reference" + suffix + "-retime" in ablation.MANY_SEEDS
    default = "exponential" + suffix + "-retime-guard"
    rows = [_row(m, s, top1) for m, top1s in (
        ("uniform" + suffix + "-retime", (0.87, 0.87)), (default, (0.88, 0.88)),
        ("random" + suffix + "-retime", (0.885, 0.89)), ("tpe" + suffix + "-retime", (0.87, 0.88)),
        ("random" + suffix, (0.95, 0.95)))
        for s, top1 in enumerate(top1s)]
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    # random with -retime ahead by +0.75 pt; tpe behind; random's rows before (+7 pt) ran other settings: not a
    # rival, and not counted among the runs of these settings (8 = uniform, default, random, tpe with -retime)
    assert "| random-soup2-bnfinal-thin-retime +0.75 +- 0.35 (2) | 8/8 | met / not run / MISSED / met |" in board


def test_the_last_steps_larger_budget_and_warm_start_parse_to_their_settings(ablation) -> None:
    # session 54: 6 + 6 candidates in the earlier steps, 24 in the last (searched from the original)
    search, finetune = {"steps": 3, "trials": 12}, ablation.FINETUNE["small"]
    default = "exponential-soup2-bnfinal-thin-retime-guard-lastorig"
    settings = ablation._method_settings(default + "-last24", search, finetune)
    assert settings == {**ablation._method_settings(default, search, finetune), "trials": 6, "last_trials": 24}
    assert 2 * settings["trials"] + settings["last_trials"] == search["steps"] * search["trials"]
    assert ablation._parse_names("--methods", default + "-last24", ablation.METHODS) == [default + "-last24"]
    assert ablation._bases([{"method": "uniform-soup2-bnfinal-thin-retime"}], default + "-last24")[0] == \
        "uniform-soup2-bnfinal-thin-retime"
    warm = ablation._method_settings(default + "-warm", search, finetune)  # session 54: the first step's data
    assert warm == {**ablation._method_settings(default, search, finetune), "warm_start": True}
    assert ablation._bases([{"method": "uniform-soup2-bnfinal-thin-retime"}], default + "-warm")[0] == \
        "uniform-soup2-bnfinal-thin-retime"
    slack = ablation._method_settings(default + "-slack", search, finetune)  # session 55: proposals moved to the bound
    assert slack == {**ablation._method_settings(default, search, finetune), "project_slack": True}
    # the pipeline's default since session 56; the names run before it keep running without it
    from netbudget.pipeline import RunConfig
    assert RunConfig(constraints=["latency <= 0.6x"]).project_slack is True
    assert ablation._method_settings(default, search, finetune)["project_slack"] is False
    assert ablation.DEFAULTS[0][0] == default + "-slack"
    # session 57: in a cell of computed budgets too, judged on it where it ran
    channels = ablation._method_settings("one-step-channels", search, finetune)
    assert ablation._method_settings("one-step-channels-slack", search, finetune) == {**channels, "project_slack": True}
    assert ablation.COMPUTED_DEFAULTS[0] == ("one-step-channels-slack", "uniform-channels", "-channels")
    assert ablation._bases([{"method": "uniform-soup2-bnfinal-thin-retime"}], default + "-slack")[0] == \
        "uniform-soup2-bnfinal-thin-retime"


def test_the_last_step_from_the_original_parses_to_its_settings_and_is_the_default_where_it_ran(
    ablation, tmp_path
) -> None:
    # session 52: the retimed guarded default whose last step searches the original network (the
    # pipeline's default since); the rows before ran the path's last step
    search, finetune = {"steps": 3, "trials": 12}, ablation.FINETUNE["small"]
    former = "exponential-soup2-bnfinal-thin-retime-guard"
    method = former + "-lastorig"
    settings = ablation._method_settings(method, search, finetune)
    assert settings == {**ablation._method_settings(former, search, finetune), "last_step": "original"}
    assert ablation._method_settings(former, search, finetune)["last_step"] == "path"  # what its rows ran
    assert ablation._parse_names("--methods", method, ablation.METHODS) == [method]
    assert ablation._bases([{"method": "uniform-soup2-bnfinal-thin-retime"}], method)[0] == \
        "uniform-soup2-bnfinal-thin-retime"
    rows = [_row(m, s, top1) for m, top1s in (("uniform-soup2-bnfinal-thin-retime", (0.87, 0.87)),
                                               (former, (0.88, 0.88)), (method, (0.875, 0.88)),
                                               ("one-step-soup2-bnfinal-thin-retime", (0.88, 0.87)))
            for s, top1 in enumerate(top1s)]
    text = _markdown(ablation, tmp_path, {"machine": "test", "rows": rows, "cells": [], "headroom": [], "dense": [],
                                          "proxy": []})
    board = text.split("## Scoreboard")[1].split("\n## ")[0]
    # judged on the new default; one-step (-0.5, +1.0 pt) is its one rival, not ahead; the former
    # default is not counted as a rival, nor are its runs in the verified count
    assert (f"| vgg | lat40-small | `{method}` | 87.75 % | +0.75 +- 0.35 (2) | 2 of 2 | not run | none of 1 | 6/6 "
            "| met / not run / met / met |") in board
