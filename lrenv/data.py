"""Datasets as normalized tensors, split into train / validation / test.

Sources are tried in a fixed order so that nothing is downloaded when a local copy
exists: ``data_root``, the Debian package path (Fashion-MNIST), then torchvision's
downloader. Whole splits are kept as tensors; the trainee indexes batches from them
directly, with no DataLoader on the hot path.

Splits follow the paper: the official training set is split into train and validation
by a fixed, seeded permutation (Fashion-MNIST 50k / 10k, CIFAR-10 40k / 10k); the
official test set is the test split.

Files are read as data (a data folder may come from anywhere): IDX files are parsed from
their header, and the CIFAR-10 python batches, which are pickles, through an unpickler that
builds nothing but numpy arrays, bytes, strings, numbers, lists and dicts. A damaged file,
or labels that do not fit its images, raises :class:`DatasetFileError` naming the file.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATASETS = ("fashion_mnist", "cifar10", "digits", "synthetic")
NUM_CLASSES = {"fashion_mnist": 10, "cifar10": 10, "digits": 10, "synthetic": 10}
"""Classes of each dataset (what the chance-level loss ``ln C`` is known from before loading)."""
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_DOWNLOAD_ROOT = Path(os.environ.get("LRENV_DATA", Path.home() / ".cache" / "lrenv"))
VALIDATION_SIZE = {"fashion_mnist": 10_000, "cifar10": 10_000, "digits": 300, "synthetic": 500}
DIGITS_TEST_SIZE = 300
SPLIT_SEED = 20190101  # fixed: every run sees the same train/validation split

_FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DatasetNotFoundError(FileNotFoundError):
    """No source of a dataset worked; the message lists every remedy."""


class DatasetFileError(ValueError):
    """A dataset file is damaged or not what its name says; the message names the file."""


def _bad_file(path: Path, what: str) -> DatasetFileError:
    return DatasetFileError(
        f"{path} is damaged or not a dataset file ({what}); delete it and restore the "
        "dataset (see lrenv.data.load_dataset for where it is looked for)"
    )


def check_data_root(name: str, data_root: str | os.PathLike | None) -> None:
    """Refuse a ``data_root`` that is not an existing folder (the synthetic and digits
    datasets read none): a mistyped path must not silently fall back to another copy of the data.

    Args:
        name: the dataset.
        data_root: the folder given, or None.

    Raises:
        ValueError: when ``data_root`` is not a path.
        DatasetNotFoundError: when it does not exist.
    """
    if data_root is None or name in ("synthetic", "digits"):
        return
    if not isinstance(data_root, str | os.PathLike):
        raise ValueError(f"data_root must be a folder path or None, got {data_root!r}")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"data_root {str(data_root)!r} is not an existing folder; fix the path, create "
            "the folder (torchvision then downloads into it), or pass data_root=None to "
            "use the default places"
        )


@dataclass(frozen=True)
class Split:
    """One split as tensors: images ``(N, C, H, W)`` float32 normalized, labels int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        """The same split on ``device`` (no copy when it is already there)."""
        return Split(self.images.to(device), self.labels.to(device))

    def head(self, n: int | None) -> Split:
        """The first ``n`` examples (all of them for ``None``)."""
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n])

    def rows(self, idx: torch.Tensor) -> Split:
        """The examples at ``idx`` (indices of any shape; its shape leads the result's).

        A gather of whole rows: ``index_select`` on the flat indices is about 2x faster
        than ``images[idx]`` for a batch of random rows. A channels-last image tensor
        keeps ``images[idx]``, which keeps its layout (``index_select`` would not).
        """
        flat = idx.reshape(-1)
        labels = self.labels.index_select(0, flat).view(idx.shape)
        if not self.images.is_contiguous():
            return Split(self.images[idx], labels)
        images = self.images.index_select(0, flat)
        return Split(images.view(*idx.shape, *self.images.shape[1:]), labels)


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits of one dataset."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]


def load_dataset(name: str, data_root: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset by name, split and normalized, on the CPU.

    Results are cached per process, so many environments in one process share one copy.

    Args:
        name: ``"fashion_mnist"``, ``"cifar10"``, ``"digits"`` (scikit-learn's bundled
            8x8 digits) or ``"synthetic"``.
        data_root: a folder to look in first (and to download into when nothing local is
            found); ``None`` uses ``$LRENV_DATA`` or ``~/.cache/lrenv`` for downloads.

    Raises:
        ValueError: for an unknown name.
        DatasetNotFoundError: when no source works, or ``data_root`` does not exist; the
            message names the remedies.
        DatasetFileError: when a file found is damaged; the message names it.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    check_data_root(name, data_root)
    root = None if data_root is None else str(Path(data_root).expanduser())
    return _load_cached(name, root)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, root: str | None) -> Dataset:
    if name == "synthetic":
        return make_synthetic()
    if name == "digits":
        images, labels, test_images, test_labels = _read_digits()
        return _split_and_normalize(
            name, images, labels, test_images, test_labels, VALIDATION_SIZE[name], 10
        )
    if name == "fashion_mnist":
        images, labels, test_images, test_labels = _read_fashion_mnist(root)
        num_classes = NUM_CLASSES[name]
    else:
        images, labels, test_images, test_labels = _read_cifar10(root)
        num_classes = NUM_CLASSES[name]
    return _split_and_normalize(
        name, images, labels, test_images, test_labels, VALIDATION_SIZE[name], num_classes
    )


def _split_and_normalize(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    val_size: int,
    num_classes: int,
) -> Dataset:
    """Seeded train/validation split; normalize with the train split's channel statistics."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    val_idx, train_idx = order[:val_size], order[val_size:]
    x = torch.from_numpy(images).float().div_(255.0)
    x_test = torch.from_numpy(test_images).float().div_(255.0)
    train_x = x[torch.from_numpy(train_idx)]
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True)

    def split(xs: torch.Tensor, ys: np.ndarray) -> Split:
        return Split(((xs - mean) / std).contiguous(), torch.from_numpy(ys).long())

    y = labels.astype(np.int64)
    return Dataset(
        name=name,
        train=split(train_x, y[train_idx]),
        val=split(x[torch.from_numpy(val_idx)], y[val_idx]),
        test=split(x_test, test_labels.astype(np.int64)),
        num_classes=num_classes,
    )


def make_synthetic(
    num_classes: int = 10,
    image_size: int = 16,
    n_train: int = 2000,
    n_val: int = VALIDATION_SIZE["synthetic"],
    n_test: int = 500,
    seed: int = 0,
) -> Dataset:
    """A tiny in-memory classification task that trains in seconds.

    Each class is a random 1-channel prototype image; examples are prototypes plus
    Gaussian noise strong enough that a good learning rate matters: 200 SGD steps of an
    MLP reach about 0.9 validation loss at a rate near 0.05, 2.3 at 1e-3, and diverge at 0.3.
    Made from ``seed`` with its own generator, so it never touches global random state.
    """
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_classes, 1, image_size, image_size, generator=gen)

    def sample(n: int) -> Split:
        labels = torch.randint(num_classes, (n,), generator=gen)
        noise = 6.0 * torch.randn(n, 1, image_size, image_size, generator=gen)
        return Split((prototypes[labels] + noise).contiguous(), labels)

    return Dataset(
        name="synthetic",
        train=sample(n_train),
        val=sample(n_val),
        test=sample(n_test),
        num_classes=num_classes,
    )


# --- scikit-learn's digits ------------------------------------------------------------------


def _read_digits() -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled handwritten digits (1,797 images of 8x8 pixels, 10 classes,
    UCI's optical recognition set): nothing to download. There is no official test set, so
    a fixed, seeded permutation holds out :data:`DIGITS_TEST_SIZE` images as one; the rest
    is split into train and validation as the other datasets' training sets are. Pixel
    values 0..16 are scaled to 0..255 so that every dataset is normalized alike."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn, read from disk

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED + 1).permutation(len(labels))
    test, rest = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    return images[rest], labels[rest], images[test], labels[test]


# --- Fashion-MNIST -----------------------------------------------------------------------


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip or plain): the format of the official
    (Fashion-)MNIST files.

    Raises:
        DatasetFileError: naming the file, when it is truncated, not gzip as its name
            says, or its header does not describe its contents.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise _bad_file(path, f"cannot read it: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise _bad_file(path, "no IDX header of unsigned bytes (00 00 08 NDIM)")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if ndim == 0 or len(data) < offset:
        raise _bad_file(path, f"a header of {ndim} dimensions does not fit in it")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64))
    if len(data) - offset != size:
        raise _bad_file(
            path, f"its header says {shape} = {size} bytes, it holds {len(data) - offset}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape).copy()


def _check_labels(
    path: Path, labels: np.ndarray, num_images: int, num_classes: int = 10
) -> np.ndarray:
    """``labels`` as int64 after checking them against their images.

    Raises:
        DatasetFileError: naming ``path`` when the count differs from the images' or a
            label is outside ``0 .. num_classes - 1``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != num_images:
        raise _bad_file(path, f"{labels.shape} labels for {num_images} images")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise _bad_file(
            path, f"labels from {labels.min()} to {labels.max()}, not 0 .. {num_classes - 1}"
        )
    return labels.astype(np.int64)


def _find_idx_folder(folder: Path) -> Path | None:
    """The folder holding the four IDX files, looking in common layouts under ``folder``."""
    for candidate in (
        folder,
        folder / "fashion-mnist",
        folder / "fashion_mnist",
        folder / "FashionMNIST" / "raw",
    ):
        if all(
            (candidate / f).exists() or (candidate / f"{f}.gz").exists()
            for f in _FASHION_FILES.values()
        ):
            return candidate
    return None


def _read_fashion_mnist(root: str | None) -> tuple[np.ndarray, ...]:
    tried = []
    for folder in [Path(root)] if root else []:
        found = _find_idx_folder(folder)
        tried.append(str(folder))
        if found:
            return _read_idx_set(found)
    found = _find_idx_folder(DEBIAN_FASHION_MNIST)
    tried.append(str(DEBIAN_FASHION_MNIST))
    if found:
        return _read_idx_set(found)
    download_root = Path(root) if root else DEFAULT_DOWNLOAD_ROOT
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(download_root), train=True, download=True)
        FashionMNIST(str(download_root), train=False, download=True)
    except Exception as err:  # any network or disk failure: report every remedy at once
        raise DatasetNotFoundError(
            "Fashion-MNIST not found. Looked in: "
            + ", ".join(tried)
            + f"; torchvision's download into {download_root} failed ({err}). Remedies: "
            "(1) pass data_root= a folder holding the four official IDX files; "
            "(2) on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist; "
            "(3) connect to the internet so torchvision can download it."
        ) from err
    found = _find_idx_folder(download_root)
    assert found is not None, "torchvision reported success but left no IDX files"
    return _read_idx_set(found)


def _read_idx_set(folder: Path) -> tuple[np.ndarray, ...]:
    def path(key: str) -> Path:
        plain = folder / _FASHION_FILES[key]
        return plain if plain.exists() else plain.with_name(plain.name + ".gz")

    def images(key: str) -> np.ndarray:
        data = _read_idx(path(key))
        if data.ndim != 3:
            raise _bad_file(path(key), f"images of shape {data.shape}, not (N, H, W)")
        return data[:, None]

    train_images, test_images = images("train_images"), images("test_images")
    train_labels = _check_labels(
        path("train_labels"), _read_idx(path("train_labels")), len(train_images)
    )
    test_labels = _check_labels(
        path("test_labels"), _read_idx(path("test_labels")), len(test_images)
    )
    return train_images, train_labels, test_images, test_labels


# --- CIFAR-10 ------------------------------------------------------------------------------


def _read_cifar10(root: str | None) -> tuple[np.ndarray, ...]:
    """Read torchvision's ``cifar-10-batches-py`` layout without demanding its md5 sums.

    Offline rebuilds of that layout can hold the official pixels and labels without the
    per-image file names, which torchvision's integrity check rejects.
    """
    candidates = []
    if root:
        candidates += [Path(root) / "cifar-10-batches-py", Path(root)]
    candidates.append(DEFAULT_DOWNLOAD_ROOT / "cifar-10-batches-py")
    for folder in candidates:
        if (folder / "data_batch_1").exists() and (folder / "test_batch").exists():
            return _read_cifar_folder(folder)
    download_root = Path(root) if root else DEFAULT_DOWNLOAD_ROOT
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(download_root), train=True, download=True)
    except Exception as err:
        raise DatasetNotFoundError(
            "CIFAR-10 not found. Looked in: "
            + ", ".join(map(str, candidates))
            + f"; torchvision's download into {download_root} failed ({err}). Remedies: "
            "(1) pass data_root= a folder holding cifar-10-batches-py; "
            "(2) copy a cifar-10-batches-py folder from a machine that has one (no md5 check "
            "here) and pass its parent as data_root; "
            "(3) connect to the internet so torchvision can download it."
        ) from err
    return _read_cifar_folder(download_root / "cifar-10-batches-py")


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays (and plain containers, strings, bytes
    and numbers, which pickle makes without looking up anything): any other global a
    file names, a function or a class that could run code, is refused."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),  # protocol 5 arrays
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),  # how protocol 2 stores bytes read with encoding=latin1
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, and only numpy arrays are read from a batch"
            )
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images ``(N, 3, 32, 32)`` uint8 and int64 labels.

    The batch is a pickle; it is read with :class:`_DataUnpickler`, so a crafted file
    cannot run code.

    Args:
        path: e.g. ``cifar-10-batches-py/data_batch_1``.

    Raises:
        DatasetFileError: naming the file, when it is damaged, names anything but numpy
            arrays, or its images and labels do not fit.
    """
    try:
        with open(path, "rb") as f:
            batch = _DataUnpickler(io.BufferedReader(f), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise _bad_file(path, f"not a CIFAR-10 batch: {err}") from None
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise _bad_file(path, "no 'data' and 'labels' entries")
    try:
        data = np.asarray(batch["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"data of {data.dtype} {data.shape}, not uint8 (N, 3072)")
        labels = np.asarray(batch["labels"])
        if labels.dtype.kind not in "iu":
            raise ValueError(f"labels of {labels.dtype}, not integers")
    except (ValueError, TypeError) as err:
        raise _bad_file(path, str(err)) from None
    return data.reshape(-1, 3, 32, 32), _check_labels(path, labels, len(data))


def _read_cifar_folder(folder: Path) -> tuple[np.ndarray, ...]:
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        return read_cifar_batch(folder / name)

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    test_images, test_labels = read("test_batch")
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, test_images, test_labels
