"""benchmarks/soup.py: several final fine-tunes of one network, kept by validation or averaged."""

from pathlib import Path

import pytest
import torch
from torch import nn

from netbudget.data import load_dataset


@pytest.fixture(scope="module")
def soup(load_benchmark):
    return load_benchmark("soup")


def test_rules_keep_the_validation_best_of_each_pair_and_average_the_soups(soup) -> None:
    val = [0.90, 0.92, 0.91]
    test = [0.88, 0.87, 0.90]
    pairs = {(0, 1): 0.89, (0, 2): 0.91, (1, 2): 0.90}
    kept = soup.rules(val, test, pairs, all_test=0.93)
    assert kept["one try"] == pytest.approx(0.8833, abs=1e-4)
    # pairs (0, 1) -> 1 (0.87), (0, 2) -> 2 (0.90), (1, 2) -> 1 (0.87)
    assert kept["best of 2"] == pytest.approx((0.87 + 0.90 + 0.87) / 3)
    assert kept["soup of 2"] == pytest.approx(0.90)
    assert kept["best of all"] == 0.87 and kept["soup of all"] == 0.93  # try 1 has the best validation top-1


def test_a_soup_averages_weights_and_re_estimates_batch_norm_statistics(soup) -> None:
    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)) for _ in range(2)]
    for net in nets:
        net[1].running_mean.fill_(123.0)  # stale statistics: replaced, not averaged
    mixed = soup.soup(nets, data.train, batches=2)
    assert torch.allclose(mixed[0].weight, (nets[0][0].weight + nets[1][0].weight) / 2)
    assert torch.allclose(mixed[3].bias, (nets[0][3].bias + nets[1][3].bias) / 2)
    assert mixed[1].running_mean.abs().max() < 50 and not mixed.training
    assert nets[0][1].running_mean[0] == 123.0  # the ingredients are untouched


def test_markdown_reports_each_rule_and_the_paired_gain_over_one_try(soup, tmp_path: Path) -> None:
    run = {"network": "resnet20", "cell": "lat50-small", "method": "exponential-final2-thin", "seed": 0,
           "tries": [{"seed": 2000, "val_top1": 0.9, "test_top1": 0.88}, {"seed": 102003, "val_top1": 0.91, "test_top1": 0.89}],
           "rules": {"one try": 0.885, "best of 2": 0.89, "soup of 2": 0.895, "best of all": 0.89, "soup of all": 0.895,
                     "one try, BN re-estimated": 0.886, "one try, 2x epochs": 0.88, "one try, all x epochs": 0.887},
           "replayed": True}
    out = tmp_path / "soup.json"
    soup.write_markdown(out, {"machine": "test", "runs": [run, {**run, "seed": 1, "replayed": False}]})
    text = out.with_suffix(".md").read_text()
    assert "| resnet20 | lat50-small | exponential-final2-thin | 0 | 2 | 88.50 | 89.00 | 89.50 | 89.00 | 89.50 | 88.60 | 88.00 | 88.70 | 88.00 / 89.00 |" in text
    assert "Gain over one try (pt, mean +- sd over runs, paired): best of 2 +0.50 +- 0.00, soup of 2 +1.00 +- 0.00" in text
    assert "one try, BN re-estimated +0.10 +- 0.00, one try, 2x epochs -0.50 +- 0.00" in text
    assert "Runs whose own fine-tunes replayed exactly: 1 of 2." in text
