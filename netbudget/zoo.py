"""Reference networks for 1x28x28 and 1x8x8 inputs, and their cached trained checkpoints.

Each architecture stresses a topology the compressor must handle:

* ``vgg``: a plain six-convolution stack with a fully connected head (AlexNet/VGG-like);
* ``resnet20``: residual additions, with 1x1 projection shortcuts where the shape changes;
* ``mobilenetv2``: depthwise convolutions inside inverted residual blocks;
* ``densenet``: channel concatenation inside dense blocks.

Names are addressed as ``vgg`` or ``zoo:vgg``. For 28x28 inputs the stems of ``resnet20``,
``mobilenetv2`` and ``densenet`` use stride 2 so that every network trains in minutes on
two CPU cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from netbudget.exceptions import InvalidArgumentError, UnknownNameError

if TYPE_CHECKING:
    from netbudget.data import Dataset

__all__ = [
    "MODELS",
    "build_for",
    "build_model",
    "cache_dir",
    "checkpoint_path",
    "load_weights",
    "pretrained",
    "save_checkpoint",
]


def _ch(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class VGG(nn.Module):
    """Six 3x3 convolutions in three pairs (max-pool after each pair) and a two-layer head."""

    def __init__(self, in_channels: int, num_classes: int, input_size: int, width: float) -> None:
        super().__init__()
        widths = [_ch(c, width) for c in (16, 16, 32, 32, 64, 64)]
        layers: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(widths):
            layers += [*_conv_bn(cin, cout), nn.ReLU(inplace=True)]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.features = nn.Sequential(*layers)
        spatial = input_size // 8
        hidden = _ch(128, width)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(cin * spatial * spatial, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity or 1x1-projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3, stride)
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3, 1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(*_conv_bn(cin, cout, 1, stride))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR-style ResNet-20: three stages of three basic blocks (16/32/64 channels)."""

    def __init__(self, in_channels: int, num_classes: int, input_size: int, width: float) -> None:
        super().__init__()
        widths = [_ch(c, width) for c in (16, 32, 64)]
        stem_stride = 2 if input_size >= 16 else 1
        self.stem = nn.Sequential(*_conv_bn(in_channels, widths[0], 3, stem_stride), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        cin = widths[0]
        for stage, cout in enumerate(widths):
            for i in range(3):
                blocks.append(BasicBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [*_conv_bn(cin, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += _conv_bn(hidden, cout, 1)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    """A small MobileNetV2: five inverted-residual stages and a 1x1 head convolution."""

    # (expansion, channels, repeats, stride)
    STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 3, 2), (4, 64, 2, 2), (4, 96, 1, 1))

    def __init__(self, in_channels: int, num_classes: int, input_size: int, width: float) -> None:
        super().__init__()
        stem = _ch(16, width)
        stem_stride = 2 if input_size >= 16 else 1
        self.stem = nn.Sequential(*_conv_bn(in_channels, stem, 3, stem_stride), nn.ReLU6(inplace=True))
        blocks: list[nn.Module] = []
        cin = stem
        for expansion, channels, repeats, stride in self.STAGES:
            cout = _ch(channels, width)
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        head = _ch(256, width)
        self.head = nn.Sequential(*_conv_bn(cin, head, 1), nn.ReLU6(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(head, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.pool(out), 1))


class DenseLayer(nn.Module):
    """Bottleneck dense layer: conv1x1 (4k) -> conv3x3 (k), output concatenated to the input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(cin, 4 * growth, 1),
            nn.ReLU(inplace=True),
            *_conv_bn(4 * growth, growth, 3),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class DenseNet(nn.Module):
    """A small DenseNet: three dense blocks of four layers, growth 12, compression 0.5."""

    def __init__(self, in_channels: int, num_classes: int, input_size: int, width: float) -> None:
        super().__init__()
        growth = _ch(12, width)
        channels = 2 * growth
        stem_stride = 2 if input_size >= 16 else 1
        layers: list[nn.Module] = [*_conv_bn(in_channels, channels, 3, stem_stride), nn.ReLU(inplace=True)]
        for block in range(3):
            for _ in range(4):
                layers.append(DenseLayer(channels, growth))
                channels += growth
            if block < 2:
                out = channels // 2
                layers += [*_conv_bn(channels, out, 1), nn.ReLU(inplace=True), nn.AvgPool2d(2, ceil_mode=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


ModelBuilder = Callable[[int, int, int, float], nn.Module]

MODELS: dict[str, ModelBuilder] = {
    "vgg": VGG,
    "resnet20": ResNet20,
    "mobilenetv2": MobileNetV2,
    "densenet": DenseNet,
}


def _resolve(name: str) -> str:
    key = name.removeprefix("zoo:")
    if key not in MODELS:
        raise UnknownNameError(
            f"Unknown model {name!r}: expected one of "
            f"{', '.join('zoo:' + k for k in MODELS)}."
        )
    return key


def build_model(
    name: str,
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    width: float = 1.0,
) -> nn.Module:
    """Build an untrained zoo network.

    Args:
        name: ``vgg``, ``resnet20``, ``mobilenetv2`` or ``densenet`` (``zoo:`` prefix allowed).
        in_channels: channels of the input image.
        num_classes: size of the output layer.
        input_size: side of the square input in pixels (8 and 28 are supported; other
            sizes that are multiples of 8 work too).
        width: channel multiplier, > 0.

    Raises:
        UnknownNameError: ``name`` is not in ``MODELS``.
        InvalidArgumentError: a size or the width is out of range.
    """
    key = _resolve(name)
    if not width > 0:
        raise InvalidArgumentError(f"`width` must be > 0, but got {width=}.")
    if input_size < 8 or input_size % 4:
        raise InvalidArgumentError(f"`input_size` must be >= 8 and a multiple of 4, but got {input_size=}.")
    if in_channels < 1 or num_classes < 2:
        raise InvalidArgumentError(
            f"`in_channels` >= 1 and `num_classes` >= 2 must hold, but got {in_channels=}, {num_classes=}."
        )
    return MODELS[key](in_channels, num_classes, input_size, width)


def cache_dir() -> Path:
    """Directory of trained checkpoints: ``$NETBUDGET_CACHE`` or ``~/.cache/netbudget``."""
    return Path(os.environ.get("NETBUDGET_CACHE", Path.home() / ".cache" / "netbudget"))


def checkpoint_path(name: str, dataset: str, *, width: float = 1.0, seed: int = 0, epochs: int) -> Path:
    """Cache path of a trained checkpoint, keyed by (architecture, dataset, width, seed, epochs)."""
    key = _resolve(name)
    safe_dataset = str(dataset).replace("/", "_")
    return cache_dir() / f"{key}-{safe_dataset}-w{width:g}-s{seed}-e{epochs}.pt"


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a state dict saved by netbudget into ``model`` (in place) and return it."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"Weights file {path} does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise InvalidArgumentError(f"Weights in {path} do not fit the model: {error}") from error
    return model


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save ``model``'s state dict atomically: an interrupted save never leaves a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return path


def build_for(name: str, data: Dataset, *, width: float = 1.0, seed: int = 0) -> nn.Module:
    """An untrained zoo network shaped for ``data`` (its input channels, size and classes), its
    initial weights drawn from ``seed`` alone, the caller's random state left as it was: the
    same seed gives the same network whatever the process drew before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(
            name,
            in_channels=data.input_shape[0],
            num_classes=data.num_classes,
            input_size=data.input_shape[-1],
            width=width,
        )


def pretrained(
    name: str,
    dataset: str = "mnist5k",
    *,
    width: float = 1.0,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
) -> nn.Module:
    """Return a trained zoo network, training it once and caching the checkpoint.

    Args:
        name: zoo architecture.
        dataset: dataset name or path understood by ``netbudget.data.load_dataset``.
        width: channel multiplier.
        seed: seeds the initial weights, the training and the split: the same seed gives the
            same checkpoint whatever the process drew before.
        epochs: training epochs; default from ``netbudget.train.default_epochs``.
        progress: show a progress bar while training.
    """
    from netbudget.data import load_dataset
    from netbudget.train import FitConfig, default_epochs, fit

    epochs = default_epochs(dataset) if epochs is None else epochs
    data = load_dataset(dataset, seed=seed)
    model = build_for(name, data, width=width, seed=seed)
    path = checkpoint_path(name, dataset, width=width, seed=seed, epochs=epochs)
    if path.is_file():
        return load_weights(model, path).eval()
    fit(model, data, FitConfig(epochs=epochs, seed=seed), progress=progress)
    save_checkpoint(model, path)
    return model.eval()
