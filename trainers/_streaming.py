"""Data that do not fit on the device: map-style ``Dataset`` splits streamed in minibatches,
and ``as_splits``, which turns whatever a user hands ``hpo.Task(data=...)`` into splits.

The streamed minibatches are the in-memory path's, in the same order: each epoch the trainer
draws one seeded ``randperm`` of the training split (the same draw as the in-memory path), and a
``DataLoader`` fetches its slices (``batch_sampler``), with worker processes and pinned memory
when asked. So snapshots, restores and checkpoints keep their guarantees, and the same seed
gives the same batches whichever path the data take.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from trainers._data import DataSplits, make_splits

SPLITS = ("train", "val", "test")


class StreamingSplits:
    """Train / validation / test ``Dataset`` s, fetched a minibatch at a time.

    Each item of a dataset is ``(input, target)``: a tensor (or array) and a class label or a
    regression target. Everything ``Trainer`` asks of ``DataSplits`` is here too, so the trainer
    runs on either.

    Args:
        train: The training split.
        val: The validation split.
        test: The test split, or ``None`` (test scores are NaN).
        num_classes: Classes of integer labels (default: found from the labels, one pass over
            the validation and training targets); ``None`` with float targets (regression).
        name: The dataset's name in logs.
        num_workers: ``DataLoader`` worker processes for the training split (0: in the main
            process); workers are kept alive between epochs.
        pin_memory: Pin host batches before copying them to a CUDA device (default: when the
            device is CUDA).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> ds = TensorDataset(torch.randn(20, 3), torch.arange(20) % 2)
        >>> s = StreamingSplits(ds, ds, None)
        >>> s.num_train, s.num_classes, s.input_shape, s.steps_per_epoch(8)
        (20, 2, (3,), 3)
    """

    def __init__(
        self,
        train: Dataset[Any],
        val: Dataset[Any],
        test: Dataset[Any] | None = None,
        *,
        num_classes: int | None = None,
        name: str = "stream",
        num_workers: int = 0,
        pin_memory: bool | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        for split, ds in (("train", train), ("val", val)):
            if not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__"):
                raise TypeError(
                    f"`data` {split!r} must be a map-style Dataset (with __getitem__ and "
                    f"__len__), but got {type(ds).__name__}."
                )
            if len(ds) == 0:  # type: ignore[arg-type]
                raise ValueError(f"`data` {split!r} must not be empty.")
        self.name = name
        self.datasets: dict[str, Dataset[Any] | None] = {"train": train, "val": val, "test": test}
        self.num_workers = int(num_workers)
        self.device = torch.device(device)
        self.pin_memory = pin_memory
        x0, y0 = _item(train, 0)
        self._input_shape = tuple(x0.shape)
        self._target_shape = tuple(y0.shape)
        self._classification = not torch.is_floating_point(y0)
        if self._classification and num_classes is None:
            num_classes = int(torch.cat([self.targets("train"), self.targets("val")]).max()) + 1
        self.num_classes = num_classes if self._classification else None
        self._sampler = _EpochBatches()
        self._loader: DataLoader[Any] | None = None

    # ---------------------------------------------------------------- what the trainer asks

    @property
    def classification(self) -> bool:
        return self._classification

    @property
    def num_outputs(self) -> int:
        if self.num_classes is not None:
            return self.num_classes
        return 1 if not self._target_shape else int(self._target_shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    @property
    def num_train(self) -> int:
        return self.split_size("train")

    def split_size(self, split: str) -> int:
        ds = self.datasets[_check_split(split)]
        return 0 if ds is None else len(ds)  # type: ignore[arg-type]

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-self.num_train // batch_size)

    def to(self, device: str | torch.device) -> StreamingSplits:
        """The same splits, delivering their batches to ``device``."""
        self.device = torch.device(device)
        return self

    def train_batches(self, perm: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The epoch's minibatches, ``perm``'s slices of the training split, on the device."""
        self._sampler.set(perm.tolist(), batch_size)
        if self._loader is None:
            self._loader = DataLoader(
                self.datasets["train"],  # type: ignore[arg-type]
                batch_sampler=self._sampler,
                num_workers=self.num_workers,
                pin_memory=self._pin(),
                persistent_workers=self.num_workers > 0,
            )
        yield from self._to_device(self._loader)

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """A split in order, ``batch_size`` examples at a time, on the device."""
        ds = self.datasets[_check_split(split)]
        if ds is None:
            return
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, pin_memory=self._pin())
        yield from self._to_device(loader)

    def targets(self, split: str) -> Tensor:
        """The targets of a split, in order (one pass over its items)."""
        ds = self.datasets[_check_split(split)]
        if ds is None or len(ds) == 0:  # type: ignore[arg-type]
            return torch.empty(0)
        return torch.stack(
            [torch.as_tensor(_item(ds, i)[1]) for i in range(len(ds))]  # type: ignore[arg-type]
        )

    def chance_accuracy(self, split: str = "val") -> float:
        """The accuracy of always predicting the split's most frequent class."""
        y = self.targets(split)
        if len(y) == 0 or self.num_classes is None:
            return float("nan")
        return float(torch.bincount(y.long(), minlength=self.num_classes).max()) / len(y)

    def materialize(self) -> DataSplits:
        """The splits as tensors (one pass over every item): the in-memory path."""
        tensors = {}
        for split in SPLITS:
            ds = self.datasets[split]
            if ds is None:
                continue
            xs, ys = zip(*(_item(ds, i) for i in range(len(ds))))  # type: ignore[arg-type]
            tensors[split] = (torch.stack(xs), torch.stack(ys))
        return make_splits(
            tensors["train"],
            tensors["val"],
            tensors.get("test"),
            name=self.name,
            num_classes=self.num_classes,
        ).to(self.device)

    # ---------------------------------------------------------------- helpers

    def _pin(self) -> bool:
        return self.device.type == "cuda" if self.pin_memory is None else self.pin_memory

    def _to_device(self, loader: DataLoader[Any]) -> Iterator[tuple[Tensor, Tensor]]:
        blocking = not self._pin()
        for x, y in loader:
            yield (
                x.to(self.device, non_blocking=not blocking),
                y.to(self.device, non_blocking=not blocking),
            )


class _EpochBatches:
    """A batch sampler whose order is set before each epoch (the trainer's ``randperm``), so
    one ``DataLoader`` with persistent workers serves every epoch."""

    def __init__(self) -> None:
        self.order: list[int] = []
        self.batch_size = 1

    def set(self, order: list[int], batch_size: int) -> None:
        self.order, self.batch_size = order, batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(0, len(self.order), self.batch_size):
            yield self.order[i : i + self.batch_size]

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)


def as_splits(
    data: Any,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    streaming: bool | None = None,
    max_bytes: int = 2**31,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    name: str = "user",
) -> DataSplits | StreamingSplits:
    """Whatever a user hands ``hpo.Task(data=...)``, as splits.

    Accepted: ``DataSplits`` or ``StreamingSplits`` (as they are); a mapping with ``"train"``
    and optionally ``"val"`` / ``"test"``, or a sequence ``(train, val[, test])``, whose values
    are ``(inputs, targets)`` tensor pairs or map-style ``Dataset`` s. A missing validation
    split is held out of the training split (``val_fraction``, seeded by ``split_seed``).

    Datasets take the in-memory path when they fit (their tensors under ``max_bytes``,
    estimated from the first item) unless ``streaming=True``; ``streaming=False`` always loads
    them into memory.

    Raises:
        ValueError: A missing ``"train"``, an unknown split name, empty or mismatched splits.
        TypeError: A value that is neither a pair of tensors nor a Dataset.
    """
    if isinstance(data, (DataSplits, StreamingSplits)):
        if streaming and isinstance(data, DataSplits):
            raise ValueError("`streaming=True` needs Datasets; these splits are tensors already.")
        return data.to(device)
    if isinstance(data, Mapping):
        unknown = set(data) - set(SPLITS)
        if unknown or "train" not in data:
            raise ValueError(
                f"`data` as a mapping needs 'train' and may have 'val' and 'test', but got "
                f"keys {sorted(map(str, data))}."
            )
        parts = [data.get(s) for s in SPLITS]
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and 2 <= len(data) <= 3:
        if all(isinstance(t, Tensor) for t in data):  # a bare (x, y): the training split
            parts = [tuple(data), None, None]
        else:
            parts = [*data, None][:3]
    else:
        raise TypeError(
            "`data` must be DataSplits, a mapping {'train': ..., 'val': ..., 'test': ...} or a "
            "sequence (train, val[, test]) of (inputs, targets) tensor pairs or Datasets, "
            f"but got {type(data).__name__}."
        )
    for split, part in zip(SPLITS, parts):
        if part is not None and not isinstance(part, (tuple, list)) and not _is_dataset(part):
            raise TypeError(
                f"`data` {split!r} must be a pair of tensors (inputs, targets) or a map-style "
                f"Dataset, but got {type(part).__name__}."
            )
    datasets = [p for p in parts if p is not None and not isinstance(p, (tuple, list))]
    if not datasets:  # tensors: the in-memory path
        if streaming:
            raise ValueError("`streaming=True` needs Datasets; `data` holds tensors.")
        return make_splits(
            parts[0],  # type: ignore[arg-type]  # pairs: checked above
            parts[1],  # type: ignore[arg-type]
            parts[2],  # type: ignore[arg-type]
            val_fraction=val_fraction,
            split_seed=split_seed,
            name=name,
        ).to(device)
    if len(datasets) != sum(p is not None for p in parts):
        raise TypeError("`data` must hold either tensor pairs or Datasets, not a mix.")
    train, val, test = parts
    if train is None:
        raise ValueError("`data` must hold a 'train' split, but it is None.")
    if val is None:  # hold out val_fraction of train, as the built-in datasets do
        perm = np.random.default_rng(split_seed).permutation(len(train))
        n_val = max(1, int(round(val_fraction * len(train))))
        val, train = (
            Subset(train, perm[:n_val].tolist()),
            Subset(train, np.sort(perm[n_val:]).tolist()),
        )
    stream = StreamingSplits(train, val, test, name=name, num_workers=num_workers, device=device)
    if streaming is None:
        x0, y0 = _item(train, 0)
        per_item = x0.element_size() * x0.numel() + y0.element_size() * max(y0.numel(), 1)
        total = sum(stream.split_size(s) for s in SPLITS) * per_item
        streaming = total > max_bytes
    return stream if streaming else stream.materialize()


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__")


def _item(ds: Any, i: int) -> tuple[Tensor, Tensor]:
    item = ds[i]
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(
            f"A Dataset item must be (input, target), but item {i} is {type(item).__name__}."
        )
    return torch.as_tensor(item[0]), torch.as_tensor(item[1])


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of 'train', 'val', 'test', but got {split!r}.")
    return split
