"""Datasets as tensors: train / validation / test splits, ready to live on the device.

``load_dataset(name)`` knows:

* ``mnist1d`` (default): MNIST-1D generated offline by ``mnist1d.data.make_dataset`` (4,000
  train / 1,000 test signals of length 40, 10 classes); nothing is downloaded.
* ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes); 20 % is the test split.
* ``fashion_mnist``, ``cifar10``, ``cifar100``: through torchvision, from ``data_dir`` (or
  downloaded there with ``download=True``).

The validation split is held out of the training split (``val_fraction``, default 10 %) with a
fixed ``split_seed``, so every run of every strategy sees the same three splits. Inputs are
standardised with the training split's mean and standard deviation (per channel for images).
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainers._validation import check_range

DATASETS: tuple[str, ...] = ("mnist1d", "digits", "fashion_mnist", "cifar10", "cifar100")
#: The datasets made on the machine (generated, or shipped inside a package): nothing to
#: download and no ``data_dir``.
LOCAL_DATASETS: tuple[str, ...] = ("mnist1d", "digits")


@dataclass(frozen=True)
class DataSplits:
    """Train / validation / test tensors of one dataset, held on the device (the fast path).

    Classification has long labels in ``[0, num_classes)``; regression has float targets
    (`n` or `n x k`) and ``num_classes=None``. ``hpo.Task(data=...)`` builds one from a user's
    tensors (``make_splits``); ``StreamingSplits`` is the path for data that do not fit.

    Attributes:
        name: The dataset's name.
        x_train: A `n_train x ...` float tensor (e.g. `n x 1 x 40` for MNIST-1D).
        y_train: A `n_train` long tensor of labels, or a float tensor of targets.
        x_val, y_val: The validation split, held out of the training data.
        x_test, y_test: The test split (may be empty).
        num_classes: Number of classes; ``None`` for regression.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int | None

    @property
    def classification(self) -> bool:
        """Whether the targets are class labels (else regression targets)."""
        return self.num_classes is not None

    @property
    def num_outputs(self) -> int:
        """What a model's last layer must output: the classes, or the targets' width."""
        if self.num_classes is not None:
            return self.num_classes
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example, e.g. ``(1, 40)`` or ``(3, 32, 32)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_train(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def split_size(self, split: str) -> int:
        """Examples in ``"train"``, ``"val"`` or ``"test"``."""
        return int(self.split(split)[1].shape[0])

    def targets(self, split: str) -> Tensor:
        """The targets (labels) of a split, on the device."""
        return self.split(split)[1]

    def train_batches(self, perm: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The epoch's minibatches: index slices of ``perm`` into the training tensors."""
        x_all, y_all = self.x_train, self.y_train
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            yield x_all[idx], y_all[idx]

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """A split in order, ``batch_size`` examples at a time."""
        x_all, y_all = self.split(split)
        for i in range(0, len(y_all), batch_size):
            yield x_all[i : i + batch_size], y_all[i : i + batch_size]

    def chance_accuracy(self, split: str = "val") -> float:
        """The accuracy of always predicting the split's most frequent class: what a network
        that learned nothing scores.

        Example:
            >>> round(load_dataset("digits").chance_accuracy("val"), 3)
            0.118
        """
        _, y = self.split(split)
        if len(y) == 0 or self.num_classes is None:
            return float("nan")
        return float(torch.bincount(y, minlength=self.num_classes).max().item()) / len(y)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Minibatches of ``batch_size`` in one pass over the training split (the last one may
        be short)."""
        return -(-self.num_train // batch_size)

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"`split` must be one of 'train', 'val', 'test', but got {name!r}.")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def to(self, device: str | torch.device) -> DataSplits:
        """The same splits on ``device`` (``self`` when they are there already)."""
        device = torch.device(device)
        if self.x_train.device == device:
            return self
        moved = {
            f: getattr(self, f).to(device)
            for f in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
        }
        return replace(self, **moved)


def load_dataset(
    name: str = "mnist1d",
    *,
    val_fraction: float = 0.1,
    train_size: int | None = None,
    split_seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    device: str | torch.device = "cpu",
) -> DataSplits:
    """Load a dataset as train / validation / test tensors.

    Args:
        name: One of ``DATASETS``.
        val_fraction: Fraction of the training split held out for validation, in (0, 1).
        train_size: Keep only this many training examples (after the validation split is held
            out), for quick experiments; ``None`` keeps all.
        split_seed: Seeds the train/validation split (and the digits train/test split).
        data_dir: Where torchvision datasets live (default: ``$HPO_DATA_DIR`` or
            ``~/.cache/hpo/data``).
        download: Let torchvision download a missing dataset into ``data_dir``.
        device: Where the tensors go.

    Returns:
        The splits, standardised with the training split's statistics.

    Raises:
        ValueError: Unknown ``name`` (the message lists the known ones) or a bad fraction/size.
        RuntimeError: A torchvision dataset is not in ``data_dir`` and ``download`` is False.

    Example:
        >>> data = load_dataset("mnist1d")
        >>> data.input_shape, data.num_classes, data.num_train, len(data.y_val)
        ((1, 40), 10, 3600, 400)
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}.")
    check_range(
        "load_dataset", "val_fraction", val_fraction, 0.0, 1.0, low_closed=False, high_closed=False
    )
    if train_size is not None:
        check_range("load_dataset", "train_size", train_size, 1, integer=True)
    check_range("load_dataset", "split_seed", split_seed, 0, integer=True)

    if name == "mnist1d":
        x, y, x_test, y_test = _mnist1d()
        num_classes = 10
    elif name == "digits":
        x, y, x_test, y_test = _digits(split_seed)
        num_classes = 10
    else:
        root = os.fspath(data_dir) if data_dir is not None else _default_data_dir()
        x, y, x_test, y_test, num_classes = _torchvision(name, root, download)

    rng = np.random.default_rng(split_seed)
    perm = rng.permutation(len(y))
    n_val = max(1, int(round(val_fraction * len(y))))
    val_idx, train_idx = perm[:n_val], np.sort(perm[n_val:])
    if train_size is not None:
        train_idx = train_idx[:train_size]
    x_train, y_train = x[train_idx], y[train_idx]

    # Standardise with the training split's statistics (per channel for images).
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True) + 1e-8

    def tensor(a: np.ndarray) -> Tensor:
        return torch.from_numpy(((a - mean) / std).astype(np.float32)).to(device)

    def labels(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.astype(np.int64)).to(device)

    return DataSplits(
        name=name,
        x_train=tensor(x_train),
        y_train=labels(y_train),
        x_val=tensor(x[val_idx]),
        y_val=labels(y[val_idx]),
        x_test=tensor(x_test),
        y_test=labels(y_test),
        num_classes=num_classes,
    )


def make_splits(
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None = None,
    test: tuple[Tensor, Tensor] | None = None,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    name: str = "user",
    num_classes: int | None = None,
) -> DataSplits:
    """Splits from a user's tensors, as given (no standardisation).

    Args:
        train: ``(x, y)``: inputs `n x ...` and targets — integer labels (classification) or
            floats (regression, `n` or `n x k`).
        val: The validation split; ``None`` holds ``val_fraction`` of ``train`` out (seeded by
            ``split_seed``, as the built-in datasets).
        test: The test split; ``None``: no test split (test scores are NaN).
        val_fraction: Share of ``train`` held out when ``val`` is ``None``, in (0, 1).
        split_seed: Seeds that hold-out.
        name: The dataset's name in logs.
        num_classes: Classes of integer labels (default: the largest label + 1).

    Raises:
        ValueError: Mismatched lengths, an empty split, labels out of range, or a bad fraction.
        TypeError: Something other than a pair of tensors.

    Example:
        >>> import torch
        >>> data = make_splits((torch.randn(100, 3), torch.randn(100)))
        >>> data.num_train, data.split_size("val"), data.classification, data.num_outputs
        (90, 10, False, 1)
    """
    pairs = {"train": train, "val": val, "test": test}
    for split, pair in pairs.items():
        if pair is None:
            continue
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(t, Tensor) for t in pair)
        ):
            raise TypeError(
                f"`data` {split!r} must be a pair of tensors (inputs, targets), but got "
                f"{type(pair).__name__}."
            )
        x, y = pair
        if len(x) != len(y):
            raise ValueError(
                f"`data` {split!r}: inputs and targets differ in length ({len(x)} vs {len(y)})."
            )
    x, y = train
    if len(y) == 0:
        raise ValueError("`data` 'train' must not be empty.")
    if val is None:
        check_range(
            "make_splits",
            "val_fraction",
            val_fraction,
            0.0,
            1.0,
            low_closed=False,
            high_closed=False,
        )
        perm = torch.from_numpy(np.random.default_rng(split_seed).permutation(len(y)))
        n_val = max(1, int(round(val_fraction * len(y))))
        val_idx, train_idx = perm[:n_val], perm[n_val:].sort().values
        val, (x, y) = (x[val_idx], y[val_idx]), (x[train_idx], y[train_idx])
    if test is None:
        test = (x[:0], y[:0])
    classification = not torch.is_floating_point(y)
    if classification:
        labels = torch.cat([y.reshape(-1), val[1].reshape(-1), test[1].reshape(-1)])
        if len(labels) and int(labels.min()) < 0:
            raise ValueError("`data`: class labels must be >= 0.")
        found = int(labels.max()) + 1 if len(labels) else 0
        if num_classes is None:
            num_classes = found
        elif found > num_classes:
            raise ValueError(f"`data`: a label is {found - 1}, beyond num_classes={num_classes}.")
    else:
        num_classes = None
    return DataSplits(
        name=name,
        x_train=x,
        y_train=y if classification else y.float(),
        x_val=val[0],
        y_val=val[1] if classification else val[1].float(),
        x_test=test[0],
        y_test=test[1] if classification else test[1].float(),
        num_classes=num_classes,
    )


# ---------------------------------------------------------------------------------------------
# The sources. Each returns numpy arrays: x of shape `n x channels x ...`, y of shape `n`.
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D with the package's default arguments (5,000 signals, seed 42, 80/20 split).

    ``make_dataset`` seeds the global ``random`` / ``numpy.random`` generators; their states are
    put back afterwards so that loading data never changes the user's random numbers. The result
    is cached per process (it takes ~1.7 s to generate) and returned read-only.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (d["x"][:, None, :], d["y"], d["x_test"][:, None, :], d["y_test"])
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _digits(split_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images[:, None, :, :].astype(np.float64)
    y = bunch.target
    perm = np.random.default_rng(split_seed + 1).permutation(len(y))
    n_test = len(y) // 5
    test, train = perm[:n_test], np.sort(perm[n_test:])
    return x[train], y[train], x[test], y[test]


def _torchvision(
    name: str, root: str, download: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    from torchvision import datasets

    cls: Any = {
        "fashion_mnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
    }[name]
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
    except RuntimeError as err:
        raise RuntimeError(
            f"Dataset {name!r} was not found in {root!r} ({err}). Pass download=True "
            f"(--download on the command line) to fetch it, or data_dir= to point at a copy."
        ) from err

    def arrays(ds: Any) -> tuple[np.ndarray, np.ndarray]:
        data = np.asarray(ds.data)
        x = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)  # NHWC -> NCHW
        return x.astype(np.float32) / 255.0, np.asarray(ds.targets, dtype=np.int64)

    x, y = arrays(train)
    x_test, y_test = arrays(test)
    return x, y, x_test, y_test, len(train.classes)


def _default_data_dir() -> str:
    return os.environ.get("HPO_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "hpo", "data"
    )
