"""``Task``: the training problem, everything apart from the lr policy.

A task is either built from the project's registry (``dataset=``, ``model=`` names) or from a
user's own parts: a model factory, data (tensors, Datasets, or ``DataSplits``), a loss and a
metric with its direction. Any part may be an import path ``"package.module:function"``; a task
whose parts are all names or import paths serialises to plain params (``to_params``) and is
rebuilt from them (``Task.from_params``), so Optuna workers on other machines can rebuild it.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from hpo._budget import MAX_EPOCHS, Budget
from hpo._validation import check_choice, check_range, check_type

if TYPE_CHECKING:
    from torch import nn

    from trainers import DataSplits, Loss, Metric, StreamingSplits, Trainer

Splits = Any  # DataSplits | StreamingSplits (kept loose: torch loads lazily)

#: The largest seed (NumPy's and Optuna's seeds are 32-bit).
MAX_SEED = 2**32 - 1
#: The largest share of the data held out for validation: a run needs data to train on.
MAX_VAL_FRACTION = 0.9


@dataclass(frozen=True, kw_only=True)
class Task:
    """Dataset, model, loss, metric, base optimizer, batch size, epochs, seed and device.

    A task builds a fresh ``Trainer`` (``build_trainer``) and flattens to MLflow params
    (``to_params``). The learning rate is not part of it: that is the strategy's job.

    Args:
        dataset: One of ``trainers.DATASETS`` (default the embedded MNIST-1D); ignored when
            ``data`` is given.
        model: A name of ``trainers.MODELS``; a factory returning an ``nn.Module`` (called
            with ``model_options`` as keyword arguments, inside a seeded RNG scope, so the same
            seed gives the same initial weights); or an import path
            ``"package.module:function"`` to such a factory.
        data: The user's data instead of ``dataset``: ``trainers.DataSplits``; a mapping
            ``{"train": ..., "val": ..., "test": ...}`` or a sequence ``(train, val[, test])``
            whose values are ``(inputs, targets)`` tensor pairs or map-style ``Dataset`` s (a
            missing validation split is held out of ``train``); or an import path to a function
            returning one of these. Integer targets are class labels, float targets regression.
        loss: What training minimises: a name of ``trainers.LOSSES`` (``cross_entropy``,
            ``mse``, ``l1``, ``smooth_l1``), a callable ``(outputs, targets) -> mean loss``, or an
            import path; ``None``: cross-entropy for class labels, MSE for regression.
        metric: The score strategies, Optuna and comparisons optimise: a name of
            ``trainers.METRICS`` (``accuracy``, ``error``, ``loss``, ``mse``, ``mae``, ``r2``),
            a ``trainers.Metric``, a callable ``(outputs, targets) -> score`` over a whole split
            (with ``direction``), or an import path; ``None``: accuracy for class labels, MSE
            for regression.
        direction: ``"maximize"`` or ``"minimize"``: the metric's direction (needed for a
            callable; a named metric knows its own).
        optimizer: One of ``trainers.OPTIMIZERS``, or ``nos:NAME`` for a discovered NOS optimizer
            (``nos:opt1``..``nos:opt10``, ``nos:a1``..``nos:a5``, ``nos:qhm``, ``nos:powersign``,
            ``nos:addsign``), or ``nos:genome:<JSON>`` for any searched genome; NOS optimizers are
            built for the run's ``epochs`` x steps.
        batch_size: Minibatch size, >= 1.
        epochs: Epochs of a run (the default budget), in [1, 1e6].
        seed: Seeds model initialisation and data order, in [0, 2**32 - 1].
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast on CUDA).
        channels_last: Keep a conv net's weights and inputs in ``channels_last`` memory format;
            ``None``: on CUDA for models with 2-d convolutions.
        compile: Run the model through ``torch.compile`` (off: it pays only on long GPU runs).
        weight_decay: The optimizer's weight decay; ``None`` for its default.
        momentum: Momentum for momentum/nesterov/rmsprop; ``None`` for the default.
        val_fraction: Share of the training data held out for validation, in (0, 0.9].
        train_size: Use only this many training examples of a built-in dataset; ``None``: all.
        data_dir: Where torchvision datasets are (or are downloaded to).
        download: Allow torchvision to download a missing dataset.
        model_options: Extra model arguments, e.g. ``{"base": 16}`` for the ConvNet (or the
            keyword arguments of a model factory).
        augment: Augment every training minibatch on the device: ``"crop"`` (random crop with
            padding) or ``"crop-flip"`` (and a horizontal flip; images only); ``None``: off.
        augment_padding: The crop's padding in pixels; ``None``: an eighth of the inputs' size
            (at least 1).
        streaming: Datasets in ``data``: ``None`` loads them into device memory when they fit
            (2 GiB), else streams them; ``True`` always streams; ``False`` always loads.
        num_workers: ``DataLoader`` worker processes of the streaming path, >= 0.

    Raises:
        ValueError: A field is out of range, names an unknown dataset/model/optimizer/loss/
            metric, or an import path does not resolve.
        TypeError: A part of the wrong kind (an ``nn.Module`` instance as ``model``...).

    Example:
        >>> task = Task(epochs=3, train_size=500, device="cpu")
        >>> trainer = task.build_trainer()
        >>> task.to_params()["dataset"], trainer.data.num_train, trainer.metric.key
        ('mnist1d', 500, 'acc')
    """

    dataset: str = "mnist1d"
    model: Any = "cnn"
    data: Any = field(default=None, compare=False)
    loss: Any = None
    metric: Any = None
    direction: str | None = None
    optimizer: str = "adam"
    batch_size: int = 100
    epochs: int = 40
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool | None = None
    compile: bool = False
    weight_decay: float | None = None
    momentum: float | None = None
    val_fraction: float = 0.1
    train_size: int | None = None
    data_dir: str | None = None
    download: bool = False
    model_options: Mapping[str, Any] = field(default_factory=dict)
    augment: str | None = None
    augment_padding: int | None = None
    streaming: bool | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        from trainers import (
            AUGMENTATIONS,
            DATASETS,
            LOSSES,
            METRICS,
            MODELS,
            OPTIMIZERS,
            check_optimizer,
        )

        if isinstance(self.optimizer, str) and self.optimizer not in OPTIMIZERS:
            import strategies  # noqa: F401  (registers its optimizer families, nos:*, in trainers)

        owner = "Task"
        if self.data is None:
            check_type(owner, "dataset", self.dataset, str)
            check_choice(owner, "dataset", self.dataset, DATASETS)
        elif isinstance(self.data, str):
            _resolve(self.data, "data")
        _check_part("model", self.model, MODELS, factory=True)
        if self.loss is not None:
            _check_part("loss", self.loss, tuple(LOSSES))
        if self.metric is not None:
            _check_metric(self.metric, self.direction, METRICS)
        if self.direction is not None:
            check_choice(owner, "direction", self.direction, ("maximize", "minimize"))
        check_type(owner, "optimizer", self.optimizer, str)
        check_optimizer(self.optimizer, momentum=self.momentum, weight_decay=self.weight_decay)
        check_range(owner, "batch_size", self.batch_size, 1, integer=True)
        check_range(owner, "epochs", self.epochs, 1, MAX_EPOCHS, integer=True)
        check_range(owner, "seed", self.seed, 0, MAX_SEED, integer=True)
        check_type(owner, "device", self.device, str)
        _check_device(self.device)
        check_choice(owner, "precision", self.precision, ("fp32", "bf16"))
        if self.weight_decay is not None:
            check_range(owner, "weight_decay", self.weight_decay, 0.0)
        if self.momentum is not None:
            check_range(owner, "momentum", self.momentum, 0.0, 1.0, high_closed=False)
            from trainers._optimizers import MOMENTUM_OPTIMIZERS

            if self.optimizer not in MOMENTUM_OPTIMIZERS:
                names = ", ".join(repr(n) for n in MOMENTUM_OPTIMIZERS)
                raise ValueError(
                    f"Task.`momentum` applies to the optimizers {names}, "
                    f"but got optimizer={self.optimizer!r}."
                )
        check_range(
            owner, "val_fraction", self.val_fraction, 0.0, MAX_VAL_FRACTION, low_closed=False
        )
        if self.train_size is not None:
            check_range(owner, "train_size", self.train_size, 1, integer=True)
        check_type(owner, "download", self.download, bool)
        check_type(owner, "model_options", self.model_options, Mapping)
        _check_model_options(self.model, self.model_options)
        if self.augment is not None:
            check_choice(owner, "augment", self.augment, AUGMENTATIONS)
        if self.augment_padding is not None:
            check_range(owner, "augment_padding", self.augment_padding, 1, integer=True)
        if self.streaming is not None:
            check_type(owner, "streaming", self.streaming, bool)
        if self.channels_last is not None:
            check_type(owner, "channels_last", self.channels_last, bool)
        check_type(owner, "compile", self.compile, bool)
        check_range(owner, "num_workers", self.num_workers, 0, integer=True)
        self._warn_ignored()

    def _warn_ignored(self) -> None:
        """Say so when an option given has no effect for this task."""
        from trainers import LOCAL_DATASETS

        def given(*names: str) -> list[str]:
            return [f"{n}={getattr(self, n)!r}" for n in names if getattr(self, n) != _DEFAULTS[n]]

        reasons = []
        if self.data is not None:
            if names := given("dataset", "train_size", "data_dir", "download"):
                reasons.append((names, "the task trains on its own `data`"))
        else:
            if self.dataset in LOCAL_DATASETS and (names := given("data_dir", "download")):
                reasons.append(
                    (names, f"the dataset {self.dataset!r} is made here, nothing is downloaded")
                )
            if names := given("streaming", "num_workers"):
                reasons.append(
                    (names, "a built-in dataset is held in memory (streaming is for `data`)")
                )
        for names, why in reasons:
            warnings.warn(
                f"Task: {', '.join(names)} {'is' if len(names) == 1 else 'are'} ignored: {why}.",
                UserWarning,
                stacklevel=4,
            )

    # ---------------------------------------------------------------- building

    #: The fields ``load_data`` reads: tasks that agree on them train on the same splits.
    DATA_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "dataset",
            "data",
            "val_fraction",
            "train_size",
            "data_dir",
            "download",
            "device",
            "streaming",
            "num_workers",
        }
    )

    def load_data(self) -> DataSplits | StreamingSplits:
        """The task's splits, on the task's device (a built-in dataset, or ``data``).

        Raises:
            ValueError, TypeError: ``data`` (or what its import path returns) is not splits,
                tensors or Datasets of the accepted shapes (the message names ``data``).
        """
        from trainers import as_splits, load_dataset, resolve_device

        device = resolve_device(self.device)
        if self.data is None:
            return load_dataset(
                self.dataset,
                val_fraction=self.val_fraction,
                train_size=self.train_size,
                data_dir=self.data_dir,
                download=self.download,
                device=device,
            )
        data = self.data
        if isinstance(data, str):
            data = _resolve(data, "data")()
        return as_splits(
            data,
            val_fraction=self.val_fraction,
            streaming=self.streaming,
            num_workers=self.num_workers,
            device=device,
            name=self._data_name(),
        )

    def build_trainer(
        self, data: DataSplits | StreamingSplits | None = None, *, seed: int | None = None
    ) -> Trainer:
        """A fresh trainer: the model initialised from ``seed`` (default ``self.seed``).

        Args:
            data: Splits to share (loaded with ``load_data`` when omitted). Several trainers
                built from one ``data`` share its tensors.
            seed: Overrides the task's seed (model initialisation and data order).

        The global torch RNG is left as it was: the model is initialised inside
        ``torch.random.fork_rng``.

        Raises:
            ValueError, TypeError: A model factory that does not return an ``nn.Module``, or a
                loss / metric that does not fit the data (the message names the argument).
        """
        import torch

        from trainers import Augment, Trainer, make_optimizer, resolve_device

        seed = self.seed if seed is None else seed
        data = self.load_data() if data is None else data
        device = resolve_device(self.device)
        loss, metric = self.resolve_loss(data), self.resolve_metric(data)  # before any work
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self._build_model(data)
        optimizer = make_optimizer(
            self.optimizer,
            model.parameters(),
            total_steps=self.epochs * data.steps_per_epoch(self.batch_size),
            seed=seed,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
        )
        augment = None
        if self.augment is not None:
            padding = self.augment_padding or max(1, min(data.input_shape[1:] or (8,)) // 8)
            augment = Augment(self.augment, padding)
        return Trainer(
            model,
            optimizer,
            data,
            batch_size=self.batch_size,
            seed=seed,
            device=device,
            precision=self.precision,
            channels_last=self.channels_last,
            compile=self.compile,
            loss=loss,
            metric=metric,
            augment=augment,
        )

    def resolve_loss(self, data: DataSplits | StreamingSplits) -> Loss:
        """The training loss for ``data`` (the default follows the targets' kind)."""
        from trainers import get_loss

        loss = self.loss
        if loss is None:
            loss = "cross_entropy" if data.classification else "mse"
        elif isinstance(loss, str) and ":" in loss:
            loss = _resolve(loss, "loss")
        return get_loss(loss)

    def resolve_metric(self, data: DataSplits | StreamingSplits) -> Metric:
        """The metric for ``data`` (the default follows the targets' kind).

        Raises:
            ValueError: A classification metric on regression targets.
        """
        from trainers import get_metric

        metric = self.metric
        if metric is None:
            metric = "accuracy" if data.classification else "mse"
        elif isinstance(metric, str) and ":" in metric:
            metric = _resolve(metric, "metric")
        resolved = get_metric(metric, direction=self.direction)
        if resolved.classification and not data.classification:
            raise ValueError(
                f"Task.`metric` {resolved.name!r} needs class labels, but `data` has regression "
                "targets: use 'mse', 'mae', 'r2' or 'loss'."
            )
        return resolved

    def budget(self) -> Budget:
        """The default budget: ``epochs`` epochs."""
        return Budget(epochs=self.epochs)

    def replace(self, **changes: Any) -> Task:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- logging

    @property
    def serializable(self) -> bool:
        """Whether every part is a name or an import path (``to_params`` rebuilds it)."""
        return all(
            v is None or isinstance(v, str)
            for v in (self.model, self.data, self.loss, self.metric)
        )

    def to_params(self) -> dict[str, Any]:
        """Flat params for MLflow: ``model_options`` become ``model.<name>`` entries; a user's
        callable or data object is described (its qualified name), not serialised."""
        params: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "model_options":
                params.update({f"model.{k}": v for k, v in sorted(value.items())})
            elif f.name == "dataset" and self.data is not None:
                params["dataset"] = self._data_name()
            elif f.name in ("model", "data", "loss", "metric") and not (
                value is None or isinstance(value, str)
            ):
                params[f.name] = _describe(value)
            else:
                params[f.name] = value
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Task:
        """The task ``to_params`` described (every part a name or an import path).

        Raises:
            ValueError: A part was a user's object (``<...>``), which params cannot carry.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for key, value in params.items():
            if key.startswith("model."):
                options[key[len("model.") :]] = value
            elif key in fields:
                values[key] = value
        for part in ("model", "data", "loss", "metric"):
            if isinstance(values.get(part), str) and values[part].startswith("<"):
                raise ValueError(
                    f"Task.from_params: `{part}` was a Python object ({values[part]}); give an "
                    "import path 'package.module:function' to rebuild the task elsewhere."
                )
        if values.get("data") is not None:
            values.pop("dataset", None)
        return cls(**values, model_options=options)

    def _data_name(self) -> str:
        if self.data is None:
            return self.dataset
        return self.data if isinstance(self.data, str) else _describe(self.data)

    def _build_model(self, data: DataSplits | StreamingSplits) -> nn.Module:
        from torch import nn

        from trainers import build_model

        model = self.model
        if isinstance(model, str) and ":" not in model:
            return build_model(
                model, data.input_shape, data.num_outputs, **dict(self.model_options)
            )
        factory = _resolve(model, "model") if isinstance(model, str) else model
        built = factory(**dict(self.model_options))
        if not isinstance(built, nn.Module):
            raise TypeError(
                f"Task.`model` must build an nn.Module, but {_describe(factory)} returned "
                f"{type(built).__name__}."
            )
        return built


# =============================================================================================
# Helpers
# =============================================================================================


def _resolve(path: str, what: str) -> Any:
    """The object an import path ``"package.module:attribute"`` names.

    Raises:
        ValueError: A malformed path, a module that does not import, or a missing attribute
            (the message names the argument ``what``).
    """
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise ValueError(
            f"Task.`{what}` as an import path must be 'package.module:function', but got "
            f"{what}={path!r}."
        )
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"Task.`{what}`: cannot import {module!r} ({err}).") from err
    for name in attr.split("."):
        if not hasattr(obj, name):
            raise ValueError(f"Task.`{what}`: {module!r} has no attribute {attr!r}.")
        obj = getattr(obj, name)
    if not callable(obj):
        raise ValueError(f"Task.`{what}`: {path!r} is not callable.")
    return obj


def _check_device(device: str) -> None:
    """``auto`` or a device string torch parses as CPU, CUDA or MPS (whether CUDA is there is
    checked when the trainer is built)."""
    import torch

    try:
        kind = "auto" if device == "auto" else torch.device(device).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in ("auto", "cpu", "cuda", "mps"):
        raise ValueError(
            f"Task.`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', "
            f"but got device={device!r}."
        )


def _check_model_options(model: Any, options: Mapping[str, Any]) -> None:
    """The options must be ones the model takes: a named model's own, or the keyword
    arguments of a factory (anything, when it takes ``**kwargs``)."""
    import inspect

    if not options:
        return
    if isinstance(model, str) and ":" not in model:
        from trainers import model_options

        allowed: tuple[str, ...] | None = model_options(model)
    else:
        factory = _resolve(model, "model") if isinstance(model, str) else model
        try:
            params = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):  # a builtin or C callable: nothing to read
            return
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return
        allowed = tuple(
            p.name
            for p in params
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        )
    unknown = sorted(set(options) - set(allowed or ()))
    if unknown:
        raise ValueError(
            f"Task.`model_options` has {', '.join(map(repr, unknown))}, which the model "
            f"{model if isinstance(model, str) else getattr(model, '__name__', model)!r} does "
            f"not take; it takes {list(allowed or ()) or 'no options'}, but got "
            f"model_options={dict(options)!r}."
        )


def _check_part(what: str, value: Any, names: tuple[str, ...], *, factory: bool = False) -> None:
    """A model or loss: a known name, an import path that resolves, or a callable."""
    if isinstance(value, str):
        if ":" in value:
            _resolve(value, what)
        else:
            check_choice("Task", what, value, names)
        return
    if factory:
        from torch import nn

        if isinstance(value, nn.Module):
            raise TypeError(
                "Task.`model` must be a name, an import path or a factory returning a module, "
                f"but got an nn.Module instance ({type(value).__name__}): pass "
                f"`lambda: {type(value).__name__}(...)` so that each seed gets its own "
                "initial weights."
            )
    if not callable(value):
        raise TypeError(
            f"Task.`{what}` must be a name ({', '.join(names)}), an import path "
            f"'package.module:function' or a callable, but got {what}={value!r}."
        )
    if not factory:
        from trainers import get_loss

        get_loss(value)  # checks it takes (outputs, targets)


def _check_metric(metric: Any, direction: str | None, names: Mapping[str, Any]) -> None:
    from trainers import get_metric

    if isinstance(metric, str) and ":" in metric:
        _resolve(metric, "metric")
        if direction is None:
            raise ValueError(
                f"Task.`metric` {metric!r} is a callable: give `direction` ('maximize' or "
                "'minimize')."
            )
        return
    if isinstance(metric, str) and metric not in names:
        check_choice("Task", "metric", metric, tuple(names))
    try:
        get_metric(metric, direction=direction)
    except (ValueError, TypeError) as err:
        raise type(err)(f"Task.`metric`: {err}") from err


def _describe(value: Any) -> str:
    """A user's object in params: ``<module.qualname>`` for callables, its type otherwise."""
    if isinstance(value, str):
        return value
    if callable(value) and hasattr(value, "__qualname__"):
        return f"<{getattr(value, '__module__', '?')}.{value.__qualname__}>"
    return f"<{type(value).__name__}>"


def resolved_params(task: Task) -> dict[str, Any]:
    """The task's params as they run: ``device`` resolved (``auto`` -> ``cpu`` or ``cuda``), and
    ``channels_last`` where that settles it (off on the CPU; on CUDA it depends on the model)."""
    from trainers import resolve_device

    params = task.to_params()
    try:
        params["device"] = str(resolve_device(task.device))
    except ValueError:  # CUDA asked for and absent: the runs will say so
        pass
    if params.get("channels_last") is None and params["device"] == "cpu":
        params["channels_last"] = False
    return params


#: Each field's default (to tell what a user gave).
_DEFAULTS: dict[str, Any] = {
    f.name: f.default if f.default is not dataclasses.MISSING else None
    for f in dataclasses.fields(Task)
}
