"""benchmarks/heldout.py: how much of a paired difference is the held-out split's own sampling?"""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from netbudget.data import Split

BENCHMARKS = str(Path(__file__).resolve().parents[1] / "benchmarks")


@pytest.fixture(scope="module")
def heldout(load_benchmark):
    return load_benchmark("heldout")


def test_correct_marks_each_image_the_model_gets_right(heldout) -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))  # predicts the larger coordinate
    split = Split(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]), torch.tensor([0, 0, 0]))
    assert heldout.correct(model, split, batch_size=2).tolist() == [1, 0, 1]


def test_paired_split_is_the_mean_over_seeds_with_an_image_bootstrap(heldout) -> None:
    rng = np.random.default_rng(1)
    a = [rng.random(4000) < 0.92 for _ in range(3)]
    b = [rng.random(4000) < 0.90 for _ in range(3)]
    s = heldout.paired_split(a, b, boots=400)
    per_seed = [100 * (x.mean() - y.mean()) for x, y in zip(a, b, strict=True)]
    assert s["n"] == 4000 and s["per_seed"] == pytest.approx(per_seed)
    assert s["mean"] == pytest.approx(np.mean(per_seed)) and s["seed_sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert s["boot_lo"] < s["mean"] < s["boot_hi"]
    # independent networks: each image's mean difference has variance ~(p(1-p) + q(1-q)) / seeds
    expected = 100 * np.sqrt((0.92 * 0.08 + 0.90 * 0.10) / 3 / 4000)
    assert s["boot_sd"] == pytest.approx(expected, rel=0.2)
    same = heldout.paired_split([a[0]], [a[0]], boots=100)
    assert same["mean"] == 0 and same["boot_sd"] == 0 and same["seed_sd"] is None
    with pytest.raises(ValueError, match="got 2 and 1"):
        heldout.paired_split(a[:2], b[:1], boots=100)


def test_markdown_has_one_row_per_split_and_the_recomputed_checks(heldout, tmp_path: Path) -> None:
    split = {"n": 10000, "per_seed": [-0.45, 0.11], "mean": -0.17, "seed_sd": 0.4, "boot_lo": -0.4, "boot_hi": 0.06,
             "boot_sd": 0.12}
    pair = {"network": "resnet20", "cell": "lat50", "method": "exponential", "versus": "uniform", "seeds": [0, 1],
            "splits": {"val": {**split, "n": 5000}, "test": split}, "pooled": {**split, "n": 15000},
            "checks": {"method": [[0.9181, 0.9181], [0.9192, 0.9192]], "versus": [[0.9226, 0.9226], [0.9216, 0.9216]]}}
    out = tmp_path / "heldout.json"
    heldout.write_markdown(out, {"machine": "test", "pairs": [pair]})
    text = out.with_suffix(".md").read_text()
    assert ("| resnet20 | lat50 | exponential | uniform | 2 | test | 10000 | -0.17 | -0.45 +0.11 | 0.40 | "
            "-0.40 to +0.06 | 0.12 |") in text
    assert "| resnet20 | lat50 | exponential | uniform | 2 | val | 5000 |" in text
    assert "| resnet20 | lat50 | exponential | uniform | 2 | val+test | 15000 |" in text
    assert "* resnet20 lat50 uniform: s0: 92.26/92.26 s1: 92.16/92.16" in text


@pytest.mark.parametrize(("argv", "message"), [(["--boots", "50"], "--boots 50: expected at least 100"),
                                               (["--methods", "a,uniform", "--versus", "uniform"],
                                                "--versus uniform: it is also in --methods")])
def test_bad_arguments_stop_before_any_work(heldout, monkeypatch, argv, message) -> None:
    monkeypatch.syspath_prepend(BENCHMARKS)
    monkeypatch.setattr("sys.argv", ["heldout.py", *argv])
    with pytest.raises(SystemExit, match=message):
        heldout.main()


def test_a_cell_where_the_versus_method_never_ran_is_skipped_with_a_message(heldout, monkeypatch, tmp_path: Path,
                                                                           capsys) -> None:
    monkeypatch.syspath_prepend(BENCHMARKS)
    for seed in (0, 1):  # finished runs of the method only
        final = tmp_path / "runs" / f"resnet20-lat50-exponential-s{seed}" / "final"
        final.mkdir(parents=True)
        (final / "summary.json").write_text('{"accuracy": {"final": 0.92}}')
    out = tmp_path / "heldout.json"
    monkeypatch.setattr("sys.argv", ["heldout.py", "--runs", str(tmp_path / "runs"), "--methods", "exponential",
                                     "--versus", "uniform", "--out", str(out)])
    heldout.main()
    assert "resnet20 lat50: no seed ran both exponential and uniform; skipped" in capsys.readouterr().out
    assert heldout._by_seed(tmp_path / "runs", "resnet20", "lat50", "exponential") == {
        0: tmp_path / "runs" / "resnet20-lat50-exponential-s0", 1: tmp_path / "runs" / "resnet20-lat50-exponential-s1"}
    text = out.with_suffix(".md").read_text()  # the report of no pair: the header, no row
    assert "| network | cell | method | versus |" in text and "| resnet20 |" not in text
