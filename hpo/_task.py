"""``Task``: the training problem, everything apart from the lr policy."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from hpo._budget import Budget
from hpo._validation import check_choice, check_range, check_type

if TYPE_CHECKING:
    from trainers import DataSplits, Trainer


@dataclass(frozen=True, kw_only=True)
class Task:
    """Dataset, model, base optimizer, batch size, epochs, seed and device.

    A task builds a fresh ``Trainer`` (``build_trainer``) and flattens to MLflow params
    (``to_params``). The learning rate is not part of it: that is the strategy's job.

    Args:
        dataset: One of ``trainers.DATASETS``; default the embedded MNIST-1D.
        model: One of ``trainers.MODELS``.
        optimizer: One of ``trainers.OPTIMIZERS``, or ``nos:NAME`` for a discovered NOS optimizer
            (``nos:opt1``..``nos:opt10``, ``nos:a1``..``nos:a5``, ``nos:qhm``, ``nos:powersign``,
            ``nos:addsign``), or ``nos:genome:<JSON>`` for any searched genome; NOS optimizers are
            built for the run's ``epochs`` x steps.
        batch_size: Minibatch size, >= 1.
        epochs: Epochs of a run (the default budget), >= 1.
        seed: Seeds model initialisation and data order, >= 0.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast on CUDA).
        weight_decay: The optimizer's weight decay; ``None`` for its default.
        momentum: Momentum for momentum/nesterov/rmsprop; ``None`` for the default.
        val_fraction: Share of the training data held out for validation, in (0, 1).
        train_size: Use only this many training examples (quick experiments); ``None``: all.
        data_dir: Where torchvision datasets are (or are downloaded to).
        download: Allow torchvision to download a missing dataset.
        model_options: Extra model arguments, e.g. ``{"base": 16}`` for the ConvNet.

    Raises:
        ValueError: A field is out of range or names an unknown dataset/model/optimizer.

    Example:
        >>> task = Task(epochs=3, train_size=500, device="cpu")
        >>> trainer = task.build_trainer()
        >>> task.to_params()["dataset"], trainer.data.num_train
        ('mnist1d', 500)
    """

    dataset: str = "mnist1d"
    model: str = "cnn"
    optimizer: str = "adam"
    batch_size: int = 100
    epochs: int = 40
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    weight_decay: float | None = None
    momentum: float | None = None
    val_fraction: float = 0.1
    train_size: int | None = None
    data_dir: str | None = None
    download: bool = False
    model_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from trainers import DATASETS, MODELS, OPTIMIZERS

        check_type("Task", "dataset", self.dataset, str)
        check_choice("Task", "dataset", self.dataset, DATASETS)
        check_type("Task", "model", self.model, str)
        check_choice("Task", "model", self.model, MODELS)
        check_type("Task", "optimizer", self.optimizer, str)
        if self.optimizer.startswith("nos:"):
            from strategies._nos._spec import check_nos_spec

            spec = check_nos_spec(self.optimizer)  # a genome, or a registered optimizer's name
            if isinstance(spec, str) and (
                self.momentum is not None or self.weight_decay is not None
            ):
                raise ValueError(
                    "Task: `momentum` and `weight_decay` do not apply to NOS optimizers "
                    f"(optimizer={self.optimizer!r})."
                )
        else:
            check_choice("Task", "optimizer", self.optimizer, OPTIMIZERS)
        check_range("Task", "batch_size", self.batch_size, 1, integer=True)
        check_range("Task", "epochs", self.epochs, 1, integer=True)
        check_range("Task", "seed", self.seed, 0, integer=True)
        check_type("Task", "device", self.device, str)
        check_choice("Task", "precision", self.precision, ("fp32", "bf16"))
        if self.weight_decay is not None:
            check_range("Task", "weight_decay", self.weight_decay, 0.0)
        if self.momentum is not None:
            check_range("Task", "momentum", self.momentum, 0.0, 1.0, high_closed=False)
            if self.optimizer not in ("momentum", "nesterov", "rmsprop"):
                raise ValueError(
                    "Task.`momentum` applies to the optimizers 'momentum', 'nesterov' and "
                    f"'rmsprop', but got optimizer={self.optimizer!r}."
                )
        check_range(
            "Task",
            "val_fraction",
            self.val_fraction,
            0.0,
            1.0,
            low_closed=False,
            high_closed=False,
        )
        if self.train_size is not None:
            check_range("Task", "train_size", self.train_size, 1, integer=True)
        check_type("Task", "download", self.download, bool)
        check_type("Task", "model_options", self.model_options, Mapping)
        if not (self.device == "auto" or self.device.startswith(("cpu", "cuda", "mps"))):
            raise ValueError(
                f"Task.`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', "
                f"but got device={self.device!r}."
            )

    # ---------------------------------------------------------------- building

    #: The fields ``load_data`` reads: tasks that agree on them train on the same splits.
    DATA_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"dataset", "val_fraction", "train_size", "data_dir", "download", "device"}
    )

    def load_data(self) -> DataSplits:
        """The task's dataset splits, on the task's device."""
        from trainers import load_dataset, resolve_device

        return load_dataset(
            self.dataset,
            val_fraction=self.val_fraction,
            train_size=self.train_size,
            data_dir=self.data_dir,
            download=self.download,
            device=resolve_device(self.device),
        )

    def build_trainer(self, data: DataSplits | None = None, *, seed: int | None = None) -> Trainer:
        """A fresh trainer: the model initialised from ``seed`` (default ``self.seed``).

        Args:
            data: Splits to share (loaded with ``load_data`` when omitted). Several trainers
                built from one ``data`` share its tensors.
            seed: Overrides the task's seed (model initialisation and data order).

        The global torch RNG is left as it was: the model is initialised inside
        ``torch.random.fork_rng``.
        """
        import torch

        from trainers import Trainer, build_model, build_optimizer, resolve_device

        seed = self.seed if seed is None else seed
        data = self.load_data() if data is None else data
        device = resolve_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(
                self.model, data.input_shape, data.num_classes, **dict(self.model_options)
            )
        optimizer: torch.optim.Optimizer
        if self.optimizer.startswith("nos:"):
            from strategies._nos._spec import build_nos_spec_optimizer

            optimizer = build_nos_spec_optimizer(
                self.optimizer,
                model.parameters(),
                total_steps=self.epochs * data.steps_per_epoch(self.batch_size),
                seed=seed,
            )
        else:
            optimizer = build_optimizer(
                self.optimizer,
                model.parameters(),
                weight_decay=self.weight_decay,
                momentum=self.momentum,
            )
        return Trainer(
            model,
            optimizer,
            data,
            batch_size=self.batch_size,
            seed=seed,
            device=device,
            precision=self.precision,
        )

    def budget(self) -> Budget:
        """The default budget: ``epochs`` epochs."""
        return Budget(epochs=self.epochs)

    def replace(self, **changes: Any) -> Task:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- logging

    def to_params(self) -> dict[str, Any]:
        """Flat params for MLflow: ``model_options`` become ``model.<name>`` entries."""
        params: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "model_options":
                params.update({f"model.{k}": v for k, v in sorted(value.items())})
            else:
                params[f.name] = value
        return params
