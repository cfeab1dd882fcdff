"""lrenv.data reads dataset files as data: damaged files, bad labels and poisoned pickles
are refused with an error that names the file. Tiny hand-made files only."""

from __future__ import annotations

import gzip
import pathlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from lrenv import data
from lrenv.data import DatasetFileError, DatasetNotFoundError, load_dataset, read_cifar_batch


class WritesMarker:
    """Unpickling this creates ``path``: a harmless stand-in for an attacker's payload."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fashion_folder(folder: Path, n: int = 6, labels: np.ndarray | None = None) -> Path:
    """The four IDX files of a tiny Fashion-MNIST look-alike (the two label files may be
    given)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 10 if labels is None else labels
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            idx_bytes(rng.integers(0, 255, (n, 4, 4)))
        )
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return folder


def cifar_batch(path: Path, data_array=None, labels=None) -> Path:
    batch = {
        "batch_label": "testing batch 1 of 1",
        "data": np.zeros((3, 3072), np.uint8) if data_array is None else data_array,
        "labels": [0, 1, 9] if labels is None else labels,
        "filenames": [b"a.png", b"b.png", b"c.png"],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return path


def test_tiny_idx_set_reads_back(tmp_path):
    images, labels, test_images, test_labels = data._read_idx_set(fashion_folder(tmp_path))
    assert images.shape == (6, 1, 4, 4) and labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert test_images.shape == (6, 1, 4, 4) and test_labels.dtype == np.int64


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda b: b[:-5], "its header says"),
        (lambda b: b[:2], "no IDX header"),
        (lambda b: b"\x80\x04" + b[2:], "no IDX header"),
        (lambda b: b[:3] + bytes([9]) + b[4:10], "does not fit"),
    ],
    ids=["truncated", "too-short", "not-idx", "header-too-long"],
)
def test_a_damaged_idx_file_is_named(tmp_path, damage, says):
    folder = fashion_folder(tmp_path)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetFileError, match=says) as error:
        data._read_idx_set(folder)
    assert str(path) in str(error.value)


def test_a_damaged_gzip_idx_file_is_named(tmp_path):
    folder = fashion_folder(tmp_path)
    plain = folder / "train-labels-idx1-ubyte"
    packed = gzip.compress(plain.read_bytes())
    plain.unlink()
    gz = folder / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(packed[: len(packed) // 2])  # truncated download
    with pytest.raises(DatasetFileError, match="cannot read it") as error:
        data._read_idx_set(folder)
    assert str(gz) in str(error.value)
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetFileError, match="cannot read it"):
        data._read_idx_set(folder)


@pytest.mark.parametrize(
    ("labels", "says"),
    [(np.array([0, 1, 2, 3, 4, 10]), "labels from 0 to 10"), (np.arange(5), "labels for 6")],
    ids=["out-of-range", "count"],
)
def test_labels_are_checked_at_load(tmp_path, labels, says):
    folder = fashion_folder(tmp_path, labels=labels)
    with pytest.raises(DatasetFileError, match=says) as error:
        data._read_idx_set(folder)
    assert "labels-idx1-ubyte" in str(error.value)


def test_a_missing_data_root_is_an_error_not_a_fallback(tmp_path):
    missing = tmp_path / "typo"
    for name in ("fashion_mnist", "cifar10"):
        with pytest.raises(DatasetNotFoundError, match="not an existing folder") as error:
            load_dataset(name, missing)
        assert str(missing) in str(error.value)
    with pytest.raises(ValueError, match="data_root must be a folder path"):
        load_dataset("fashion_mnist", 3)
    assert load_dataset("synthetic", missing).name == "synthetic"  # reads no files


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_cifar_batch_reads_with_the_restricted_unpickler(tmp_path, protocol):
    path = tmp_path / "data_batch_1"
    batch = {"data": np.arange(3 * 3072).astype(np.uint8).reshape(3, 3072), "labels": [0, 5, 9]}
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = read_cifar_batch(path)
    assert images.shape == (3, 3, 32, 32) and labels.tolist() == [0, 5, 9]
    assert (images.reshape(3, -1) == batch["data"]).all()


def test_a_poisoned_cifar_batch_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": WritesMarker(marker), "labels": [0]}, protocol=2))
    with pytest.raises(DatasetFileError, match="only numpy arrays are read") as error:
        read_cifar_batch(path)
    assert str(path) in str(error.value)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the file really is poisoned: plain pickle runs it
    assert marker.exists()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.write_bytes(b"\x80\x02}q"), "not a CIFAR-10 batch"),
        (lambda p: p.write_bytes(pickle.dumps([1, 2])), "no 'data' and 'labels'"),
        (lambda p: cifar_batch(p, data_array=np.zeros((3, 100), np.uint8)), "not uint8"),
        (lambda p: cifar_batch(p, labels=[0, 1]), "labels for 3"),
        (lambda p: cifar_batch(p, labels=[0, 1, 12]), "labels from 0 to 12"),
    ],
    ids=["truncated", "not-a-dict", "image-size", "label-count", "label-range"],
)
def test_a_damaged_cifar_batch_is_named(tmp_path, make, says):
    path = tmp_path / "test_batch"
    make(path)
    with pytest.raises(DatasetFileError, match=says) as error:
        read_cifar_batch(path)
    assert str(path) in str(error.value)


def test_a_poisoned_idx_file_is_read_as_bytes_only(tmp_path):
    marker = tmp_path / "pwned"
    folder = fashion_folder(tmp_path / "fmnist")
    (folder / "train-images-idx3-ubyte").write_bytes(pickle.dumps(WritesMarker(marker)))
    with pytest.raises(DatasetFileError):
        data._read_idx_set(folder)
    assert not marker.exists()
