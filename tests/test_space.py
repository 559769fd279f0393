from __future__ import annotations

import numpy as np
import pytest

from netbudget.exceptions import InvalidArgumentError
from netbudget.space import build_space, channel_groups
from netbudget.zoo import build_model


def test_resnet_groups_couple_residual_stages() -> None:
    space = build_space(build_model("resnet20", input_size=8), (1, 8, 8))
    # stem + 3 stage groups coupled through the residual adds, + 9 blocks' inner convs... minus:
    stage_groups = [d for d in space.dimensions if len(d.targets) == 1 and "shortcut" in d.targets[0]]
    assert len(stage_groups) == 2  # stages 2 and 3 are rooted at their projection shortcut
    assert space.channel_counts["stem.0"] == 16
    assert all(d.operator == "channels" and d.high == 0.8 for d in space.dimensions)
    assert len(space) == 12


def test_depthwise_convs_share_a_knob_with_their_expansion() -> None:
    model = build_model("mobilenetv2", input_size=8)
    groups = channel_groups(model, (1, 8, 8), exclude=["fc"])
    # the depthwise conv's channels are the expansion conv's outputs and the projection's inputs
    assert groups["blocks.1.block.3"]["members"] == ["blocks.1.block.0", "blocks.1.block.3", "blocks.1.block.6"]
    assert groups["blocks.1.block.3"]["channels"] == 64
    space = build_space(model, (1, 8, 8), operators=("channels",))
    assert "channels:blocks.1.block.3" in space.names and "channels:blocks.1.block.0" not in space.names


def test_output_layer_is_never_channel_pruned_and_first_is_optional() -> None:
    model = build_model("vgg", input_size=8)
    space = build_space(model, (1, 8, 8), operators=("channels", "prune"))
    targets = {t for d in space.dimensions for t in d.targets}
    assert "classifier.4" not in targets
    assert "channels:features.0" in space.names and "prune:features.0" in space.names
    without_first = build_space(model, (1, 8, 8), operators=("channels", "prune"), include_first=False)
    assert "channels:features.0" not in without_first.names and "prune:features.0" not in without_first.names
    with_output = build_space(model, (1, 8, 8), operators=("prune",), include_output=True)
    assert "prune:classifier.4" in with_output.names


def test_policies_bound_the_dimension() -> None:
    model = build_model("resnet20", input_size=8)
    layer = build_space(model, (1, 8, 8), operators=("prune",), policy="layer")
    block = build_space(model, (1, 8, 8), operators=("prune",), policy="block")
    assert len(layer) == 21  # every conv; the fc output layer is excluded by default
    assert len(block) == 10  # stem + 9 residual blocks
    user = build_space(model, (1, 8, 8), operators=("prune",), groups={"early": "layers.[0-2].*"})
    assert "prune:early" in user.names and len(user["prune:early"].targets) == 6


def test_encode_decode_round_trip_and_uniform() -> None:
    space = build_space(build_model("vgg", input_size=8), (1, 8, 8), operators=("channels", "prune", "bits"))
    rng = np.random.default_rng(0)
    for _ in range(5):
        u = rng.random(len(space))
        config = space.decode(u)
        again = space.encode(config)
        for dim, a, b in zip(space.dimensions, u, again, strict=True):
            tolerance = 1 / (dim.high - dim.low) if dim.integer else 1e-9
            assert abs(a - b) <= tolerance
    least, most = space.uniform(0.0), space.uniform(1.0)
    assert least["bits:features.0"] == 8 and most["bits:features.0"] == 2
    assert least["channels:features.0"] == 0.0 and most["channels:features.0"] == pytest.approx(0.8)
    table = space.describe()
    assert "channels:features.0" in table and "(16 ch)" in table and "2-8 bits" in table


def test_bad_arguments() -> None:
    model = build_model("vgg", input_size=8)
    with pytest.raises(InvalidArgumentError, match=r"`operators` must be a non-empty subset"):
        build_space(model, (1, 8, 8), operators=("distill",))
    with pytest.raises(InvalidArgumentError, match=r"`policy` must be one of \('layer', 'block'\)"):
        build_space(model, (1, 8, 8), policy="stage")
    with pytest.raises(InvalidArgumentError, match="max_channel_ratio"):
        build_space(model, (1, 8, 8), max_channel_ratio=1.0)
    space = build_space(model, (1, 8, 8))
    with pytest.raises(InvalidArgumentError, match=r"Unknown dimensions \['channels:nope'\]"):
        space.validate({"channels:nope": 0.1})
    with pytest.raises(InvalidArgumentError, match="outside its bounds"):
        space.validate({"channels:features.0": 0.9})
