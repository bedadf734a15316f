"""The shared trainer: one model, one optimizer, data on the device, and the primitives every
strategy drives.

Read top-down, as airbench's training script reads:

1. counters and results (small dataclasses);
2. ``Trainer.__init__``;
3. training: ``train_epoch`` (a given lr, or an lr per step), and ``run_epoch`` with a
   strategy's own per-minibatch step built from ``forward_backward`` / ``apply_update`` /
   ``loss_on``;
4. evaluation: ``evaluate`` and ``test``;
5. in-memory state: ``snapshot`` / ``restore``;
6. on-disk state: ``save_checkpoint`` / ``load_checkpoint``.

Speed choices (each measured by ``benchmarks/trainer_throughput.py``):

* data are tensors on the device and a minibatch is an index slice of one ``randperm`` per
  epoch: no ``DataLoader``, no Python per sample (the DataLoader costs ~13 % of an MNIST-1D CNN
  epoch and ~66 % of an MLP epoch on 2 CPU cores);
* the epoch's losses and outputs stay on the device and are reduced once per epoch (the
  metric over all of the epoch's outputs): one host-device synchronisation per epoch, not per
  step;
* data that do not fit on the device stream through a ``DataLoader`` over the same seeded
  per-epoch order (``StreamingSplits``); augmentation works on whole minibatches on the device
  (``Augment``);
* ``snapshot()`` copies into preallocated buffers with one ``torch._foreach_copy_`` per tensor
  list (no ``deepcopy``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainers._augment import Augment
from trainers._data import DataSplits
from trainers._lr_free import adapted_lr, has_modes
from trainers._metrics import Loss, Metric, get_loss, get_metric
from trainers._streaming import StreamingSplits
from trainers._validation import check_choice, check_range

Splits = DataSplits | StreamingSplits

LrArg = float | Callable[[int], float]

#: Training minibatches that recompute BatchNorm's statistics at Schedule-Free's evaluation
#: point (its authors use "a few"; 50 in their examples).
BN_RECOMPUTE_BATCHES = 50


class GradientPenalty(Protocol):
    """A differentiable term added to the training loss, applied through its gradient."""

    def add_gradient(self) -> None:
        """Add the term's gradient to the parameters' ``.grad`` (after the loss's backward)."""
        ...


StepFn = Callable[[Tensor, Tensor], "StepStats"]

# =============================================================================================
# 1. Counters and results
# =============================================================================================


@dataclass
class Counters:
    """What a budget is measured in.

    ``Trainer.counters`` follows the trajectory (``restore()`` rewinds it); ``Trainer.spent``
    counts all the work ever done, branches and rejected steps included, and is never rewound.

    Attributes:
        steps: Optimizer steps (one per minibatch).
        examples: Training examples seen.
        epochs: Completed passes over the training split.
        seconds: Wall time spent training (evaluation excluded).
    """

    steps: int = 0
    examples: int = 0
    epochs: int = 0
    seconds: float = 0.0

    def copy(self) -> Counters:
        return dataclasses.replace(self)

    def add(self, other: Counters) -> None:
        """Add ``other``'s work to this count (in place)."""
        self.steps += other.steps
        self.examples += other.examples
        self.epochs += other.epochs
        self.seconds += other.seconds


class StepStats(NamedTuple):
    """One minibatch's contribution to the epoch's statistics, as device tensors.

    Attributes:
        loss: The mean loss of the minibatch (a 0-dim tensor).
        outputs: The model's outputs on the minibatch (detached), for the epoch's metric.
    """

    loss: Tensor
    outputs: Tensor


@dataclass(frozen=True)
class EpochResult:
    """The outcome of one training epoch.

    Attributes:
        loss: Mean training loss over the epoch's minibatches (NaN/inf if it diverged).
        score: The task's metric over the epoch's training outputs (training accuracy, a
            fraction in [0, 1], by default).
        steps: Optimizer steps taken in this epoch.
        examples: Examples seen in this epoch.
        seconds: Wall time of the epoch.
        lr_mean: Mean lr over the epoch's steps (NaN when ``run_epoch`` set none).
        lr_min: Smallest lr used in the epoch.
        lr_max: Largest lr used in the epoch.
    """

    loss: float
    score: float
    steps: int
    examples: int
    seconds: float
    lr_mean: float = math.nan
    lr_min: float = math.nan
    lr_max: float = math.nan

    @property
    def diverged(self) -> bool:
        """True when the training loss is not finite."""
        return not math.isfinite(self.loss)


@dataclass(frozen=True)
class EvalResult:
    """Loss and score (the task's metric: accuracy, a fraction in [0, 1], by default) of the
    current weights on one split."""

    loss: float
    score: float


@dataclass
class Snapshot:
    """An in-memory copy of everything that determines how training continues.

    Made by ``Trainer.snapshot()`` and put back by ``Trainer.restore()``. Pass an old snapshot
    as ``out=`` to reuse its buffers: taking a snapshot every epoch then allocates nothing.
    """

    params: list[Tensor]
    buffers: list[Tensor]
    opt_keys: list[tuple[int, str]]  # (param index, state key) of each tensor in opt_tensors
    opt_tensors: list[Tensor]
    opt_values: dict[tuple[int, str], Any]  # non-tensor optimizer state
    opt_empty: list[bool]  # per param: True when the optimizer holds no state for it yet
    groups: list[dict[str, Any]]  # each param group's hyperparameters (lr, momentum, ...)
    data_rng: Tensor
    torch_rng: Tensor
    cuda_rng: Tensor | None
    counters: Counters = field(default_factory=Counters)

    def nbytes(self) -> int:
        """Bytes held by the snapshot's tensors."""
        tensors = [*self.params, *self.buffers, *self.opt_tensors]
        return sum(t.numel() * t.element_size() for t in tensors)

    def state_dict(self) -> dict[str, Any]:
        """The snapshot as tensors and plain Python values (``torch.save`` writes it and
        ``torch.load(weights_only=True)`` reads it back); ``Snapshot.from_state_dict`` inverts
        it."""
        return {
            "params": list(self.params),
            "buffers": list(self.buffers),
            "opt_keys": [list(k) for k in self.opt_keys],
            "opt_tensors": list(self.opt_tensors),
            "opt_on_cpu": [t.device.type == "cpu" for t in self.opt_tensors],
            "opt_values": [[i, key, value] for (i, key), value in self.opt_values.items()],
            "opt_empty": list(self.opt_empty),
            "groups": [dict(g) for g in self.groups],
            "data_rng": self.data_rng,
            "torch_rng": self.torch_rng,
            "cuda_rng": self.cuda_rng,
            "counters": dataclasses.asdict(self.counters),
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], *, device: torch.device | str | None = None
    ) -> Snapshot:
        """The snapshot ``state_dict`` described, its tensors moved to ``device`` (the random
        streams' states stay on the CPU, where torch keeps them)."""

        def moved(tensors: list[Tensor]) -> list[Tensor]:
            return [t if device is None else t.to(device) for t in tensors]

        return cls(
            params=moved(state["params"]),
            buffers=moved(state["buffers"]),
            opt_keys=[(int(i), str(k)) for i, k in state["opt_keys"]],
            opt_tensors=[  # a state tensor torch keeps on the CPU (Adam's step) stays there
                t if on_cpu or device is None else t.to(device)
                for t, on_cpu in zip(state["opt_tensors"], state["opt_on_cpu"])
            ],
            opt_values={(int(i), str(k)): v for i, k, v in state["opt_values"]},
            opt_empty=[bool(e) for e in state["opt_empty"]],
            groups=[dict(g) for g in state["groups"]],
            data_rng=state["data_rng"],
            torch_rng=state["torch_rng"],
            cuda_rng=state["cuda_rng"],
            counters=Counters(**state["counters"]),
        )


# =============================================================================================
# 2. The trainer
# =============================================================================================


class Trainer:
    """Trains one model with one optimizer on data that live on the device.

    The trainer knows nothing of strategies: it offers the primitives they are built from
    (train an epoch at an lr or an lr per step; a per-minibatch path; evaluation; in-memory
    snapshots; checkpoints) and counts the work done.

    Args:
        model: The network. It is moved to ``device``.
        optimizer: A ``torch.optim.Optimizer`` over ``model``'s parameters. Strategies set the
            lr of every step through ``param_groups``.
        data: The train / validation / test splits: ``DataSplits`` (tensors, moved to
            ``device``; a no-op when they are there already, so several trainers can share one
            copy) or ``StreamingSplits`` (Datasets fetched a minibatch at a time).
        batch_size: Minibatch size, >= 1.
        seed: Seeds the per-epoch permutation of the training split and the trainer's own
            stream of torch random numbers (dropout); the global RNG is left as it was.
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"``, or ``"bf16"`` for bf16 autocast of the forward pass on CUDA
            (ignored, with fp32 used, on other devices).
        eval_batch_size: Minibatch size of evaluation passes.
        loss: What training minimises: a name of ``trainers.LOSSES`` or a callable
            ``(outputs, targets) -> mean loss`` (default: cross-entropy).
        metric: The score of a split: a name of ``trainers.METRICS``, a ``Metric`` (default:
            accuracy).
        augment: Augment every training minibatch on the device (``Augment``), or ``None``.
        channels_last: Keep a conv net's weights and 4-d inputs in ``channels_last`` memory
            format (the layout tensor cores want); ``None``: on CUDA when the model has a
            ``Conv2d``.
        compile: Run the model through ``torch.compile`` (once per trainer; torch reuses the
            compiled code for clones of one architecture). Off by default: its cost is
            seconds to minutes of compilation, which pays only on long runs on a GPU
            (``benchmarks/gpu_check.sh`` measures both).

    Example:
        >>> import torch
        >>> from trainers import Trainer, load_dataset, build_model
        >>> data = load_dataset("digits")
        >>> model = build_model("mlp", data.input_shape, data.num_classes)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> trainer = Trainer(model, opt, data, batch_size=64, seed=0, device="cpu")
        >>> result = trainer.train_epoch(0.1)
        >>> trainer.counters.epochs
        1
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: DataSplits | StreamingSplits,
        *,
        batch_size: int = 100,
        seed: int = 0,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        eval_batch_size: int = 2048,
        loss: str | Loss | Callable[[Tensor, Tensor], Tensor] = "cross_entropy",
        metric: str | Metric = "accuracy",
        augment: Augment | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
    ) -> None:
        check_range("Trainer", "batch_size", batch_size, 1, integer=True)
        check_range("Trainer", "eval_batch_size", eval_batch_size, 1, integer=True)
        check_range("Trainer", "seed", seed, 0, integer=True)
        check_choice("Trainer", "precision", precision, ("fp32", "bf16"))
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.optimizer = optimizer
        self.data = data.to(self.device)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.precision = precision
        self._amp = precision == "bf16" and self.device.type == "cuda"
        #: The training loss (``Loss``) and the score of a split (``Metric``).
        self.loss = get_loss(loss)
        self.metric = get_metric(metric)
        if self.metric.classification and not self.data.classification:
            raise ValueError(
                f"Trainer: the metric {self.metric.name!r} needs class labels, but the data "
                "have regression targets."
            )
        self.augment = augment
        if augment is not None:
            augment.check_input(self.data.input_shape)

        if channels_last is None:
            channels_last = self.device.type == "cuda" and any(
                isinstance(m, nn.Conv2d) for m in self.model.modules()
            )
        if not isinstance(channels_last, bool) or not isinstance(compile, bool):
            raise TypeError(
                "Trainer: `channels_last` must be a bool or None and `compile` a bool, but got "
                f"channels_last={channels_last!r}, compile={compile!r}."
            )
        #: Whether weights and 4-d inputs are in ``channels_last`` memory format.
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.compiled = compile
        #: What the training and evaluation passes call: the model, or its compiled form.
        self._forward: Callable[[Tensor], Tensor] = (
            torch.compile(self.model) if compile else self.model  # type: ignore[assignment]
        )

        self._params = [p for p in self.model.parameters()]
        self._buffers = [b for b in self.model.buffers()]
        self._data_rng = torch.Generator(device=self.device)
        self._torch_rng: Tensor
        self._cuda_rng: Tensor | None
        self._seed_streams(seed)

        self.counters = Counters()
        self.spent = Counters()
        #: A term added to the training loss through its gradient: after every backward pass
        #: ``penalty.add_gradient()`` adds its gradient to the parameters' ``.grad`` (see
        #: ``strategies.Distancing``). ``None``: plain training.
        self.penalty: GradientPenalty | None = None
        self.model.train()

    # ------------------------------------------------------------------ convenience

    @property
    def steps_per_epoch(self) -> int:
        """Minibatches in one pass over the training split (the last one may be short)."""
        return self.data.steps_per_epoch(self.batch_size)

    @property
    def lr(self) -> float:
        """The lr of the first param group (what the next step uses unless told otherwise)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def set_hyperparameters(self, **values: Any) -> None:
        """Set optimizer hyperparameters (``lr``, ``momentum``, ``betas``...) of every group.

        Raises:
            ValueError: A name is not a hyperparameter of this optimizer.
        """
        for name, value in values.items():
            for group in self.optimizer.param_groups:
                if name not in group or name == "params":
                    allowed = sorted(k for k in group if k != "params")
                    raise ValueError(
                        f"Trainer.set_hyperparameters: {type(self.optimizer).__name__} has no "
                        f"hyperparameter {name!r}; it has {allowed}."
                    )
                group[name] = value

    def hyperparameters(self) -> dict[str, Any]:
        """The first param group's hyperparameters (``params`` excluded)."""
        return {k: v for k, v in self.optimizer.param_groups[0].items() if k != "params"}

    def set_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Replace the optimizer (e.g. a search over optimizers); it must hold this model's
        parameters. Snapshots taken with the old optimizer no longer apply."""
        mine = {id(p) for p in self._params}
        theirs = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if mine != theirs:
            raise ValueError(
                "Trainer.set_optimizer: the optimizer must hold this model's parameters."
            )
        self.optimizer = optimizer

    def reseed(self, seed: int) -> None:
        """Restart the data-order and dropout random streams from ``seed`` (weights untouched)."""
        check_range("Trainer.reseed", "seed", seed, 0, integer=True)
        self._seed_streams(seed)

    def _seed_streams(self, seed: int) -> None:
        """Start the data-order stream from ``seed`` and the trainer's own torch streams for
        stochastic layers (dropout) from ``seed + 1`` (CPU) and ``seed + 2`` (CUDA): they are
        swapped in around training so that neither the user's global RNG nor another
        trainer's stream is disturbed."""
        self._data_rng.manual_seed(seed)
        self._torch_rng = torch.Generator().manual_seed(seed + 1).get_state()
        self._cuda_rng = None
        if self.device.type == "cuda":
            with torch.random.fork_rng(devices=[self.device]):
                torch.cuda.manual_seed(seed + 2)
                self._cuda_rng = torch.cuda.get_rng_state(self.device)

    def clone(self, *, seed: int, reinitialize: bool = False) -> Trainer:
        """A new trainer on the same data tensors (shared, not copied).

        Args:
            seed: The clone's seed (data order, dropout, and initial weights when
                ``reinitialize``).
            reinitialize: Draw fresh initial weights (each module's ``reset_parameters``, seeded);
                otherwise the clone starts from a copy of this trainer's current weights.

        The clone gets a copy of the optimizer with the same hyperparameters and no state (any
        optimizer class: NOS optimizers included) and zeroed counters.
        """
        model, optimizer = _copy_model_and_optimizer(self.model, self.optimizer)
        if reinitialize:
            with torch.random.fork_rng(
                devices=[self.device] if self.device.type == "cuda" else []
            ):
                torch.manual_seed(seed)
                for module in model.modules():
                    reset = getattr(module, "reset_parameters", None)
                    if callable(reset):
                        reset()
        return Trainer(
            model,
            optimizer,
            self.data,
            batch_size=self.batch_size,
            seed=seed,
            device=self.device,
            precision=self.precision,
            eval_batch_size=self.eval_batch_size,
            loss=self.loss,
            metric=self.metric,
            augment=self.augment,
            channels_last=self.channels_last,
            compile=self.compiled,
        )

    # =========================================================================================
    # 3. Training
    # =========================================================================================

    def train_epoch(self, lr: LrArg | None = None) -> EpochResult:
        """Train one pass over the training split.

        Args:
            lr: The lr of every step (a float >= 0); or a callable that takes the trajectory's
                step count (``counters.steps`` before the step) and returns that step's lr;
                or ``None`` to keep the optimizer's current lr.

        Returns:
            The epoch's mean loss and accuracy, its cost, and the lrs used.
        """
        lr_fn: Callable[[int], float] | None = None
        if lr is None:
            lr = self.lr
        if callable(lr):
            lr_fn = lr
        else:
            check_range("Trainer.train_epoch", "lr", lr, 0.0)
            for g in self.optimizer.param_groups:
                g["lr"] = float(lr)

        self._optimizer_mode(train=True)
        model, opt, groups = self._forward, self.optimizer, self.optimizer.param_groups
        cl = self.channels_last
        penalty, loss_fn, augment = self.penalty, self.loss, self.augment
        first_step = self.counters.steps
        lrs: list[float] = []
        losses: list[Tensor] = []
        outputs = _EpochOutputs(self.data.num_train)
        start = time.perf_counter()
        with self._rng_scope():
            perm = self.epoch_order()
            for k, (x, y) in enumerate(self.data.train_batches(perm, self.batch_size)):
                if lr_fn is not None:
                    value = float(lr_fn(first_step + k))
                    for g in groups:
                        g["lr"] = value
                    lrs.append(value)
                if augment is not None:
                    x = augment(x)
                if cl and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                opt.zero_grad(set_to_none=True)
                with self._autocast():
                    out = model(x)
                    loss = loss_fn(out, y)
                loss.backward()
                if penalty is not None:
                    penalty.add_gradient()
                opt.step()
                losses.append(loss.detach())
                outputs.add(out.detach(), y)
        result = self._finish_epoch(losses, outputs, start)
        if lr_fn is None:
            lr_f = float(lr)  # type: ignore[arg-type]
            return dataclasses.replace(result, lr_mean=lr_f, lr_min=lr_f, lr_max=lr_f)
        return dataclasses.replace(
            result, lr_mean=math.fsum(lrs) / len(lrs), lr_min=min(lrs), lr_max=max(lrs)
        )

    def run_epoch(self, step: StepFn) -> EpochResult:
        """One pass over the training split with a strategy's own per-minibatch step.

        ``step(x, y)`` gets each minibatch (slices of this epoch's permutation, on the device,
        augmented when the trainer augments) and does whatever the strategy wants with the
        primitives ``forward_backward``, ``apply_update`` and ``loss_on``; it returns the
        minibatch's ``StepStats``. Each call counts as one optimizer step in ``counters`` and
        ``spent``.

        Returns:
            The epoch's mean loss and metric (from the returned stats) and its cost.
        """
        self._optimizer_mode(train=True)
        losses: list[Tensor] = []
        outputs = _EpochOutputs(self.data.num_train)
        augment = self.augment
        start = time.perf_counter()
        with self._rng_scope():
            perm = self.epoch_order()
            for x, y in self.data.train_batches(perm, self.batch_size):
                if augment is not None:
                    x = augment(x)
                stats = step(x, y)
                losses.append(stats.loss)
                outputs.add(stats.outputs, y)
        return self._finish_epoch(losses, outputs, start)

    def epoch_order(self) -> Tensor:
        """Draw the next epoch's order of the training split (a permutation on the device)
        from the data-order stream: what ``train_epoch`` and ``run_epoch`` do first. A batched
        population draws each member's order with it, so the order is the one the member's
        own ``train_epoch`` would have used."""
        return torch.randperm(self.data.num_train, device=self.device, generator=self._data_rng)

    def record_work(self, *, steps: int, examples: int, seconds: float) -> None:
        """Count one epoch of work done on this trainer's weights elsewhere (a batched
        population trained it): ``counters`` and ``spent`` advance as after ``train_epoch``."""
        for c in (self.counters, self.spent):
            c.steps += steps
            c.examples += examples
            c.epochs += 1
            c.seconds += seconds

    def _finish_epoch(
        self, losses: list[Tensor], outputs: _EpochOutputs, start: float
    ) -> EpochResult:
        """Reduce the epoch's per-step statistics (one synchronisation) and count the work."""
        n, bs = self.data.num_train, self.batch_size
        steps = len(losses)
        mean_loss = float(epoch_mean_loss(torch.stack(losses), n, bs).item())
        score = mean_loss if self.metric.fn is None else self.metric(*outputs.gathered())
        seconds = time.perf_counter() - start
        self.record_work(steps=steps, examples=n, seconds=seconds)
        return EpochResult(loss=mean_loss, score=score, steps=steps, examples=n, seconds=seconds)

    def forward_backward(self, x: Tensor, y: Tensor) -> StepStats:
        """Zero the gradients, then forward and backward on one minibatch in train mode.

        Args:
            x: A `b x ...` input batch on the device.
            y: A `b` tensor of class labels (or `b x ...` regression targets).

        Returns:
            The minibatch's mean loss and the model's outputs (both detached).
        """
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = self._forward(self._input(x))
            loss = self.loss(out, y)
        loss.backward()
        if self.penalty is not None:
            self.penalty.add_gradient()
        return StepStats(loss.detach(), out.detach())

    def apply_update(self, lr: float) -> None:
        """Take one optimizer step at ``lr`` with the gradients of the last backward pass."""
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.step()

    @torch.no_grad()
    def loss_on(self, x: Tensor, y: Tensor, *, train_mode: bool = False) -> Tensor:
        """The mean loss of the current weights on one minibatch, without gradients.

        Args:
            x: A `b x ...` input batch.
            y: A `b` tensor of labels.
            train_mode: Run the forward in train mode (BatchNorm on batch statistics, which
                also updates its running buffers: the caller restores them if it must).
                Default: eval mode.

        Returns:
            A 0-dim tensor on the device (no synchronisation).
        """
        with self._eval_mode(train_mode), self._autocast():
            return self.loss(self._forward(self._input(x)), y)

    @torch.no_grad()
    def error_on(self, x: Tensor, y: Tensor, *, train_mode: bool = False) -> Tensor:
        """The 0-1 error (fraction misclassified) of the current weights on one minibatch.

        Same conventions as ``loss_on``; returns a 0-dim float tensor on the device.

        Raises:
            ValueError: The data have regression targets (no classes to be wrong about).
        """
        if not self.data.classification:
            raise ValueError("Trainer.error_on: the 0-1 error needs class labels.")
        with self._eval_mode(train_mode):
            with self._autocast():
                wrong = self._forward(self._input(x)).argmax(1) != y
            return wrong.float().mean()

    # =========================================================================================
    # 4. Evaluation
    # =========================================================================================

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> EvalResult:
        """Loss and score (the metric) of the current weights on ``"val"``, ``"test"`` or
        ``"train"``; NaN for an empty split."""
        check_choice("Trainer.evaluate", "split", split, ("val", "test", "train"))
        n = self.data.split_size(split)
        if n == 0:
            return EvalResult(math.nan, math.nan)
        loss_sum = torch.zeros((), device=self.device)
        outputs = _EpochOutputs(n)
        with self._evaluation_point(), self._eval_mode():
            for x, y in self.data.eval_batches(split, self.eval_batch_size):
                with self._autocast():
                    out = self._forward(self._input(x))
                loss_sum += self.loss.total(out, y)
                outputs.add(out, y)
        loss = loss_sum.item() / n
        score = loss if self.metric.fn is None else self.metric(*outputs.gathered())
        return EvalResult(loss=loss, score=score)

    def test(self) -> EvalResult:
        """Loss and accuracy on the held-out test split."""
        return self.evaluate("test")

    @torch.no_grad()
    def predict(self, split: str = "val") -> Tensor:
        """The model's outputs on a split, in order: an `n x ...` tensor."""
        with self._evaluation_point(), self._eval_mode():
            out = [
                self._forward(self._input(x)).float()
                for x, _ in self.data.eval_batches(split, self.eval_batch_size)
            ]
        return torch.cat(out) if out else torch.empty(0, self.data.num_outputs)

    def predict_proba(self, split: str = "val") -> Tensor:
        """Softmax outputs of the current weights on a split: an `n x classes` tensor."""
        return F.softmax(self.predict(split), dim=1)

    # =========================================================================================
    # 5. In-memory state
    # =========================================================================================

    @torch.no_grad()
    def snapshot(self, out: Snapshot | None = None) -> Snapshot:
        """Copy parameters, buffers, optimizer state and hyperparameters, RNG states, counters.

        Args:
            out: A snapshot of this trainer to overwrite in place (no allocation when the
                optimizer state has the same layout); ``None`` allocates a new one.

        Returns:
            The snapshot (``out`` itself when it could be reused).
        """
        keys, tensors, values, empty = self._optimizer_state_layout()
        if out is not None and _same_layout(out, keys, tensors, self._params):
            torch._foreach_copy_(out.params, self._params)
            if self._buffers:
                torch._foreach_copy_(out.buffers, self._buffers)
            if tensors:
                torch._foreach_copy_(out.opt_tensors, tensors)
            out.data_rng.copy_(self._data_rng.get_state())
            out.torch_rng.copy_(self._torch_rng)
            if out.cuda_rng is not None and self._cuda_rng is not None:
                out.cuda_rng.copy_(self._cuda_rng)
            out.opt_values = values
            out.opt_empty = empty
            out.groups = self._group_hyperparameters()
            out.counters = self.counters.copy()
            return out
        return Snapshot(
            params=[p.detach().clone() for p in self._params],
            buffers=[b.detach().clone() for b in self._buffers],
            opt_keys=keys,
            opt_tensors=[t.detach().clone() for t in tensors],
            opt_values=values,
            opt_empty=empty,
            groups=self._group_hyperparameters(),
            data_rng=self._data_rng.get_state().clone(),
            torch_rng=self._torch_rng.clone(),
            cuda_rng=None if self._cuda_rng is None else self._cuda_rng.clone(),
            counters=self.counters.copy(),
        )

    @torch.no_grad()
    def restore(self, snap: Snapshot) -> None:
        """Put the trainer back to ``snap`` exactly (bit for bit).

        ``spent`` is not rewound: work done on a branch that is thrown away still counts.
        """
        if len(snap.params) != len(self._params):
            raise ValueError("Trainer.restore: the snapshot was taken from another model.")
        torch._foreach_copy_(self._params, snap.params)
        if self._buffers:
            torch._foreach_copy_(self._buffers, snap.buffers)
        state = self.optimizer.state
        for i, p in enumerate(self._params):
            if snap.opt_empty[i]:
                state.pop(p, None)
        dst: list[Tensor] = []
        for (i, key), src in zip(snap.opt_keys, snap.opt_tensors):
            p_state = state[self._params[i]]
            cur = p_state.get(key)
            if not isinstance(cur, Tensor) or cur.shape != src.shape or cur.dtype != src.dtype:
                p_state[key] = cur = src.clone()
            dst.append(cur)
        if dst:
            torch._foreach_copy_(dst, snap.opt_tensors)
        for (i, key), value in snap.opt_values.items():
            state[self._params[i]][key] = value
        for group, hp in zip(self.optimizer.param_groups, snap.groups):
            group.update(hp)
        self._data_rng.set_state(snap.data_rng)
        self._torch_rng.copy_(snap.torch_rng)
        if snap.cuda_rng is not None and self._cuda_rng is not None:
            self._cuda_rng.copy_(snap.cuda_rng)
        self.counters = snap.counters.copy()

    def optimizer_state_tensors(self) -> list[Tensor]:
        """The optimizer's state tensors (momentum buffers, Adam's moments and step counts),
        parameter by parameter in a fixed order; empty before the first step that creates any.

        torch's optimizers update these tensors in place, so a strategy that must undo a step
        exactly (SGD-SA) can copy them before the step and back after it.
        """
        return self._optimizer_state_layout()[1]

    def _optimizer_state_layout(
        self,
    ) -> tuple[list[tuple[int, str]], list[Tensor], dict[tuple[int, str], Any], list[bool]]:
        keys: list[tuple[int, str]] = []
        tensors: list[Tensor] = []
        values: dict[tuple[int, str], Any] = {}
        empty: list[bool] = []
        state = self.optimizer.state
        for i, p in enumerate(self._params):
            p_state = state.get(p)
            empty.append(not p_state)
            if not p_state:
                continue
            for key in sorted(p_state):
                v = p_state[key]
                if isinstance(v, Tensor):
                    keys.append((i, key))
                    tensors.append(v)
                else:
                    values[(i, key)] = v
        return keys, tensors, values, empty

    def _group_hyperparameters(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]

    def optimizer_signals(self) -> dict[str, float]:
        """What the optimizer adapts on its own, for the epoch's log: ``d`` and
        ``effective_lr`` (``d x lr``) of Prodigy and D-Adaptation; empty for the others."""
        return adapted_lr(self.optimizer)

    def _optimizer_mode(self, *, train: bool) -> None:
        """Schedule-Free optimizers: ``train()`` before training steps, ``eval()`` before an
        evaluation (a no-op for every other optimizer, and when already in that mode)."""
        if has_modes(self.optimizer):
            if train:
                self.optimizer.train()  # type: ignore[attr-defined]
            else:
                self.optimizer.eval()  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def _evaluation_point(self) -> Iterator[None]:
        """The weights an evaluation scores: Schedule-Free's ``eval()`` point, with BatchNorm's
        running statistics recomputed there (its authors' advice: they were gathered at the
        training point) from up to ``BN_RECOMPUTE_BATCHES`` training minibatches in order, and
        put back afterwards, so an evaluation leaves the training state as it was."""
        if not has_modes(self.optimizer):  # every optimizer but Schedule-Free: nothing to do
            yield
            return
        self._optimizer_mode(train=False)
        norms = [
            m
            for m in self.model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        ]
        if not norms:
            yield
            return
        saved = [(m, m.momentum, [b.clone() for b in m.buffers()]) for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches below
        n = min(self.data.num_train, BN_RECOMPUTE_BATCHES * self.batch_size)
        order = torch.arange(n, device=self.device)
        try:
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.no_grad(), self._autocast(), torch.random.fork_rng(devices=devices):
                for x, _ in self.data.train_batches(order, self.batch_size):
                    self._forward(self._input(x))
            for m, momentum, _ in saved:
                m.momentum = momentum
            yield
        finally:
            for m, momentum, buffers in saved:
                m.momentum = momentum
                for b, old in zip(m.buffers(), buffers):
                    b.copy_(old)

    def _input(self, x: Tensor) -> Tensor:
        """A minibatch in the memory format the model's weights are in."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        """bf16 autocast on CUDA when asked for; otherwise a no-op context (cheaper per step
        than a disabled ``torch.autocast``)."""
        if self._amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _eval_mode(self, train_mode: bool = False) -> Iterator[None]:
        """The model in eval mode inside the block (back to train mode after it); with
        ``train_mode`` the model is left in train mode."""
        if train_mode:
            yield
            return
        self.model.eval()
        try:
            yield
        finally:
            self.model.train()

    @contextlib.contextmanager
    def _rng_scope(self) -> Iterator[None]:
        """Swap the trainer's torch RNG stream in for the duration of a training pass."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self._torch_rng)
            if self._cuda_rng is not None:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)
            try:
                yield
            finally:
                self._torch_rng = torch.get_rng_state()
                if self._cuda_rng is not None:
                    self._cuda_rng = torch.cuda.get_rng_state(self.device)

    # =========================================================================================
    # 6. On-disk state
    # =========================================================================================

    def state_dict(self) -> dict[str, Any]:
        """Everything ``load_state_dict`` needs to continue training bit-identically: tensors
        and plain Python values only, so ``torch.load(weights_only=True)`` reads it."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_class": _class_name(self.optimizer),
            "data_rng": self._data_rng.get_state(),
            "torch_rng": self._torch_rng.clone(),
            "cuda_rng": None if self._cuda_rng is None else self._cuda_rng.clone(),
            "counters": dataclasses.asdict(self.counters),
            "spent": dataclasses.asdict(self.spent),
        }

    def load_state_dict(self, state: dict[str, Any], *, optimizer: bool = True) -> None:
        """Load what ``state_dict`` returned (tensors are moved to this trainer's device).

        Args:
            state: A ``state_dict()``.
            optimizer: Also load the optimizer's state. A strategy that replaced the optimizer
                (``set_optimizer``) loads the weights with ``optimizer=False`` and the state
                into its own optimizer.

        Raises:
            ValueError: The state holds another optimizer class's state.
        """
        self.model.load_state_dict(state["model"])
        if optimizer:
            saved = state.get("optimizer_class")
            if saved is not None and saved != _class_name(self.optimizer):
                raise ValueError(
                    f"Trainer.load_state_dict: the state is of a {saved} optimizer, but this "
                    f"trainer's optimizer is a {_class_name(self.optimizer)}."
                )
            self.optimizer.load_state_dict(state["optimizer"])
        self._data_rng.set_state(state["data_rng"].cpu())
        self._torch_rng = state["torch_rng"].cpu().clone()
        if state.get("cuda_rng") is not None and self._cuda_rng is not None:
            self._cuda_rng = state["cuda_rng"].cpu().clone()
        self.counters = Counters(**state["counters"])
        self.spent = Counters(**state["spent"])

    def save_checkpoint(self, path: str | os.PathLike[str], **extra: Any) -> None:
        """Write the trainer's state (and any ``extra`` values: tensors and plain Python
        containers, numbers and strings) to ``path`` atomically: into a temporary file beside
        it, flushed to disk, then renamed over ``path``, so a crash never leaves a half-written
        checkpoint.

        A run resumed with ``load_checkpoint`` continues exactly as if it had not stopped.
        """
        state = self.state_dict()
        state["extra"] = extra
        atomic_save(state, path)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Load a checkpoint written by ``save_checkpoint``; returns its ``extra`` values.

        The file is read with ``torch.load(weights_only=True)``: it cannot run code.
        """
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.load_state_dict(state)
        return dict(state.get("extra", {}))


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` atomically: written to ``<path>.tmp``, flushed to disk, and
    renamed over ``path`` (a crash leaves the old file or the new one, never half of one)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def epoch_mean_loss(losses: Tensor, n: int, batch_size: int) -> Tensor:
    """The epoch's mean loss per example from its minibatches' mean losses (`... x steps`;
    the last minibatch may be short, so each is weighted by its size): a `...` tensor."""
    losses = losses.float()
    steps = losses.shape[-1]
    if n % batch_size == 0:
        return losses.mean(-1)
    weights = torch.full((steps,), float(batch_size), device=losses.device)
    weights[-1] = n - batch_size * (steps - 1)
    return (losses * weights).sum(-1) / n


def _class_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


# =============================================================================================
# Helpers
# =============================================================================================


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` means CUDA when present, else CPU; anything else is passed to torch.

    Raises:
        ValueError: The device string is not one torch knows, or CUDA was asked for and is
            not available.
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"`device` must be a str or torch.device, but got device={device!r}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:N', but got device={device!r}."
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r}, but CUDA is not available on this machine.")
    return dev


def _copy_model_and_optimizer(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """Deep copies of ``model`` and of ``optimizer`` over the copy's parameters, with the
    optimizer's hyperparameters and without its state.

    Both are copied in one ``deepcopy`` so that the optimizer's references to the parameters
    (param groups, and any list a subclass keeps) map to the copied model's. The optimizer is
    copied attribute by attribute: torch's ``Optimizer.__getstate__`` keeps only ``defaults``,
    ``state`` and ``param_groups``, which would lose a subclass's own attributes (a NOS
    optimizer's program). Its state is not copied (the memo maps it to an empty dict), and
    loading an empty state clears whatever the optimizer derived from it (a NOS optimizer's
    flat layout).
    """
    memo: dict[int, Any] = {id(optimizer.state): {}}
    new_model, attrs = copy.deepcopy((model, vars(optimizer)), memo)
    new_optimizer = type(optimizer).__new__(type(optimizer))
    vars(new_optimizer).update(attrs)
    groups = new_optimizer.state_dict()["param_groups"]
    new_optimizer.load_state_dict({"state": {}, "param_groups": groups})
    return new_model, new_optimizer


def _same_layout(
    snap: Snapshot, keys: list[tuple[int, str]], tensors: list[Tensor], params: list[Tensor]
) -> bool:
    return (
        len(snap.params) == len(params)
        and snap.opt_keys == keys
        and all(a.shape == b.shape for a, b in zip(snap.opt_tensors, tensors))
    )


class _EpochOutputs:
    """The outputs and targets of a pass, for the metric over the whole pass: written into one
    preallocated buffer per pass (laid out at the first minibatch, when the output's shape is
    known) rather than reduced per step."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.filled = 0
        self.outputs: Tensor | None = None
        self.targets: Tensor | None = None

    def add(self, outputs: Tensor, targets: Tensor) -> None:
        if self.outputs is None or self.targets is None:
            self.outputs = outputs.new_empty((self.n, *outputs.shape[1:]))
            self.targets = targets.new_empty((self.n, *targets.shape[1:]))
        i, b = self.filled, len(targets)
        self.outputs[i : i + b].copy_(outputs)
        self.targets[i : i + b].copy_(targets)
        self.filled += b

    def gathered(self) -> tuple[Tensor, Tensor]:
        if self.outputs is None or self.targets is None:
            raise ValueError("No minibatch was seen.")
        return self.outputs[: self.filled], self.targets[: self.filled]
