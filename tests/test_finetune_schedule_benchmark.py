"""The fine-tune schedule benchmark (benchmarks/finetune_schedule.py): its two arms' settings
and the paired summary, on made-up rows."""

import pytest


@pytest.fixture(scope="module")
def schedule(load_benchmark):
    return load_benchmark("finetune_schedule")


def test_the_arms_see_the_same_number_of_steps(schedule) -> None:
    truncated = schedule._fit_config("truncated", 3, seed=7)
    annealed = schedule._fit_config("annealed", 3, seed=7)
    assert truncated.max_steps == 3 * 40 and truncated.samples_per_epoch is None  # ceil(5000 / 128) = 40
    assert annealed.samples_per_epoch == 5000 and annealed.max_steps is None
    assert truncated.seed == annealed.seed == 7 and truncated.lr == annealed.lr == 0.01


def test_summary_pairs_by_seed_and_writes_a_row_per_network(schedule, tmp_path) -> None:
    rows = [{"network": "vgg", "seed": s, "arm": arm, "test_top1": top1, "val_top1": top1 - 0.01, "seconds": 1.0}
            for s, arm, top1 in [(0, "truncated", 0.90), (0, "annealed", 0.89), (1, "truncated", 0.91),
                                 (1, "annealed", 0.915)]]
    (summary,) = schedule.summarise(rows)
    assert summary["seeds"] == 2
    assert summary["annealed_minus_truncated_test_pt"] == pytest.approx([-1.0, 0.5])
    assert summary["truncated_test_top1"] == pytest.approx(0.905)
    path = tmp_path / "schedule.md"
    schedule.write_markdown(path, {"machine": "m", "setup": "s", "summary": [summary]})
    assert "| vgg | 2 | 90.50 % | 90.25 % | -0.25 (-1.00, +0.50) |" in path.read_text()
