from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from netbudget.data import FASHION_MNIST_DIR, load_dataset, read_idx
from netbudget.exceptions import DatasetError, UnknownNameError

from .conftest import needs_fashion


@pytest.mark.parametrize(
    ("name", "shape", "sizes"),
    [("digits", (1, 8, 8), (1258, 180, 359)), ("mnist5k", (1, 28, 28), (3500, 500, 1000))],
)
def test_bundled_dataset_shapes(name: str, shape: tuple[int, ...], sizes: tuple[int, int, int]) -> None:
    data = load_dataset(name, calibration_size=500)
    assert data.input_shape == shape
    assert (len(data.train), len(data.val), len(data.test)) == sizes
    assert len(data.calibration) == 500
    assert data.num_classes == 10
    for split in (data.train, data.val, data.test, data.calibration):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape[1:] == shape
        assert int(split.y.min()) >= 0 and int(split.y.max()) <= 9
    # standardised with the training statistics
    assert abs(float(data.train.x.mean())) < 1e-3
    assert abs(float(data.train.x.std()) - 1.0) < 1e-2


def test_splits_are_deterministic_and_seed_dependent() -> None:
    a, b, c = load_dataset("digits", seed=3), load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert torch.equal(a.calibration.x, b.calibration.x)
    assert not torch.equal(a.test.x, c.test.x)


def _identity_npz(path: Path, n: int = 200) -> Path:
    # Sample i is a constant image of value i, so a split's members can be recovered exactly.
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None, None], 4, 1).repeat(4, 2)
    np.savez(path, x=x * 0.001, y=np.arange(n) % 5)
    return path


def _members(split_x: torch.Tensor) -> set[int]:
    flat = split_x.flatten(1)[:, 0].numpy()
    return set(np.round(flat, 4).tolist())


def test_splits_are_disjoint_and_cover_everything(tmp_path: Path) -> None:
    data = load_dataset(_identity_npz(tmp_path / "d.npz"), calibration_size=50)
    train, val, test = _members(data.train.x), _members(data.val.x), _members(data.test.x)
    assert len(train) == len(data.train) and len(test) == len(data.test)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 200
    assert _members(data.calibration.x) <= train
    assert data.num_classes == 5 and data.input_shape == (1, 4, 4)


def test_npz_with_explicit_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x=rng.random((120, 3, 6, 6)),
        y=rng.integers(0, 3, 120),
        x_test=rng.random((30, 3, 6, 6)),
        y_test=rng.integers(0, 3, 30),
    )
    data = load_dataset(tmp_path / "d.npz")
    assert len(data.test) == 30 and len(data.train) + len(data.val) == 120
    assert data.input_shape == (3, 6, 6)


def test_npz_without_y_names_the_file_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros((10, 8, 8)))
    with pytest.raises(DatasetError, match=r"bad\.npz has no array 'y'.*np\.savez\(path, x=images, y=labels\)"):
        load_dataset(path)


def test_npz_mismatched_lengths(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros((10, 8, 8)), y=np.zeros(9, dtype=int))
    with pytest.raises(DatasetError, match="`x` has 10 samples but `y` has shape"):
        load_dataset(path)


def test_missing_directory_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"does not exist\. Install the Debian package.*dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path / "nowhere")


def test_unknown_dataset_lists_choices() -> None:
    with pytest.raises(UnknownNameError, match="expected one of digits, mnist5k, fashion-mnist"):
        load_dataset("cifar10")


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def _idx_dir(root: Path, n_train: int = 60, n_test: int = 20) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir()
    _write_idx(root / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (n_train, 8, 8)))
    _write_idx(root / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, n_train))
    _write_idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (n_test, 8, 8)))
    _write_idx(root / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n_test))
    return root


def test_user_idx_directory(tmp_path: Path) -> None:
    data = load_dataset(_idx_dir(tmp_path / "idx"))
    assert data.input_shape == (1, 8, 8)
    assert len(data.test) == 20 and len(data.train) + len(data.val) == 60


def test_truncated_idx_names_the_file(tmp_path: Path) -> None:
    root = _idx_dir(tmp_path / "idx")
    path = root / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz is truncated or corrupt.*Restore it"):
        read_idx(path)


def test_cut_gzip_stream_is_reported(tmp_path: Path) -> None:
    root = _idx_dir(tmp_path / "idx")
    path = root / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz could not be read"):
        load_dataset(root)


def test_missing_idx_file_is_named(tmp_path: Path) -> None:
    root = _idx_dir(tmp_path / "idx")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"No t10k-labels-idx1-ubyte\[\.gz\] file in"):
        load_dataset(root)


@needs_fashion
def test_fashion_mnist_splits(tmp_path: Path) -> None:
    data = load_dataset("fashion-mnist")
    assert data.input_shape == (1, 28, 28)
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    assert sorted(torch.unique(data.test.y).tolist()) == list(range(10))
    # the same files copied elsewhere load identically through the directory form
    copy = tmp_path / "fm"
    shutil.copytree(FASHION_MNIST_DIR, copy)
    assert torch.equal(load_dataset(copy).test.x, data.test.x)
