"""Tiny torchvision datasets written in their real on-disk formats (no network)."""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

N_TRAIN, N_TEST = 40, 20


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_fashion_mnist(root: Path, rng: np.random.Generator) -> None:
    """``FashionMNIST/raw/*-idx?-ubyte``: big-endian IDX headers, then uint8 payload."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">ii", 2049, n) + labels.tobytes()
        )


def write_cifar(
    root: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, classes: int
) -> None:
    """The python-pickle batches of CIFAR-10/100; the classes' md5 lists are pointed at them."""
    from torchvision import datasets

    if classes == 10:
        cls, folder = datasets.CIFAR10, "cifar-10-batches-py"
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta_file, label_key, names_key = (
            ["test_batch"],
            "batches.meta",
            "labels",
            "label_names",
        )
    else:
        cls, folder = datasets.CIFAR100, "cifar-100-python"
        train_files, test_files, meta_file = ["train"], ["test"], "meta"
        label_key, names_key = "fine_labels", "fine_label_names"
    base = root / folder
    base.mkdir(parents=True)

    def batch(name: str, n: int) -> None:
        entry = {
            "data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
            label_key: [int(i % classes) for i in range(n)],
        }
        with open(base / name, "wb") as f:
            pickle.dump(entry, f)

    for name in train_files:
        batch(name, N_TRAIN // len(train_files))
    for name in test_files:
        batch(name, N_TEST)
    with open(base / meta_file, "wb") as f:
        pickle.dump({names_key: [f"class{i}" for i in range(classes)]}, f)
    # torchvision verifies every file's md5 against the real dataset's; point it at ours.
    monkeypatch.setattr(cls, "train_list", [[n, _md5(base / n)] for n in train_files])
    monkeypatch.setattr(cls, "test_list", [[n, _md5(base / n)] for n in test_files])
    monkeypatch.setattr(
        cls, "meta", {"filename": meta_file, "key": names_key, "md5": _md5(base / meta_file)}
    )


@pytest.fixture
def torchvision_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data_dir holding tiny FashionMNIST, CIFAR-10 and CIFAR-100 files."""
    rng = np.random.default_rng(0)
    write_fashion_mnist(tmp_path, rng)
    write_cifar(tmp_path, rng, monkeypatch, 10)
    write_cifar(tmp_path, rng, monkeypatch, 100)
    return tmp_path
