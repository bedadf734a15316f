r"""``Distancing``: hills on past minima, and checkpoint ensembles (the seed
``002_7c5bc8840223c362.txt``, Algorithms 3 and 4; ``docs/algorithms.md`` §4)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from hpo import BaseStrategy, Budget, Callback, History
from hpo._recorder import add_figures, config_of
from hpo._validation import check_choice, check_range

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

    from hpo import EpochRecord
    from trainers import Trainer


# =============================================================================================
# The penalty
# =============================================================================================


class DistancePenalty:
    r"""A Gaussian hill at every stored checkpoint, added to the training loss:

    .. math::
        P(\theta) = \frac{s}{C} \sum_{c=1}^{C} e^{-d(\theta, \theta_c)^2 / 2\sigma^2},
        \qquad
        \nabla P = -\frac{s}{C\sigma^2} \sum_c e^{-d_c^2 / 2\sigma^2}
                   \, \nu \odot (\theta - \theta_c),

    with :math:`d^2 = \sum_i \nu_i (\theta_i - \theta_{c,i})^2`: plain :math:`L_2` over all
    parameters (:math:`\nu = 1`), or per-layer normalised (:math:`\nu = 1/\|\theta_{c,l}\|^2` on
    the elements of layer :math:`l`: each layer's relative change).

    The parameters are gathered into one flat tensor and the checkpoints are the rows of a
    `C x n` matrix, so the value and the gradient take a handful of single-kernel ops whatever
    the number of checkpoints (one matrix-vector product for the gradient), and nothing
    synchronises with the host.

    Args:
        params: The model's parameters (the gradient goes into their ``.grad``).
        strength: :math:`s \ge 0`.
        width: :math:`\sigma > 0`.
        distance: ``l2`` or ``layer`` (per-layer normalised).
        max_checkpoints: Keep at most this many (the oldest is dropped), >= 1.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        *,
        strength: float,
        width: float,
        distance: str = "l2",
        max_checkpoints: int = 3,
    ) -> None:
        self.params = list(params)
        self.strength = float(strength)
        self.width = float(width)
        self.distance = distance
        self.max_checkpoints = max_checkpoints
        first = self.params[0]
        self._sizes = [p.numel() for p in self.params]
        n = sum(self._sizes)
        self._flat = torch.empty(n, dtype=first.dtype, device=first.device)
        self._flat_views = self._views(self._flat)
        self._grad = torch.empty_like(self._flat)
        self._grad_views = self._views(self._grad)
        self.checkpoints = torch.empty(0, n, dtype=first.dtype, device=first.device)  # `C x n`
        # nu per row; None for ``l2``, where nu = 1 and the multiplications are skipped (exact)
        self._weights: Tensor | None = (
            torch.empty(0, n, dtype=first.dtype, device=first.device)
            if distance == "layer"
            else None
        )

    def _views(self, flat: Tensor) -> list[Tensor]:
        return [v.view_as(p) for v, p in zip(flat.split(self._sizes), self.params)]

    @torch.no_grad()
    def _gather(self) -> Tensor:
        torch._foreach_copy_(self._flat_views, self.params)
        return self._flat

    @torch.no_grad()
    def add_checkpoint(self) -> None:
        """Store the current parameters as a checkpoint (dropping the oldest beyond the max)."""
        theta = self._gather().clone().unsqueeze(0)  # `1 x n`
        self.checkpoints = torch.cat([self.checkpoints, theta])[-self.max_checkpoints :]
        if self._weights is not None:  # ``layer``
            nu = torch.cat(
                [
                    torch.full(
                        (p.numel(),),
                        1.0 / max(float(p.detach().pow(2).sum()), 1e-12),
                        dtype=theta.dtype,
                        device=theta.device,
                    )
                    for p in self.params
                ]
            ).unsqueeze(0)
            self._weights = torch.cat([self._weights, nu])[-self.max_checkpoints :]

    @property
    def count(self) -> int:
        return int(self.checkpoints.shape[0])

    def state_dict(self) -> dict[str, Tensor | None]:
        """The stored checkpoints (and their per-layer weights)."""
        return {"checkpoints": self.checkpoints, "weights": self._weights}

    def load_state_dict(self, state: dict[str, Tensor | None]) -> None:
        """Continue from a ``state_dict()``."""
        device = self._flat.device
        checkpoints = state["checkpoints"]
        assert checkpoints is not None
        self.checkpoints = checkpoints.to(device)
        weights = state["weights"]
        self._weights = None if weights is None else weights.to(device)

    def checkpoint_params(self, index: int) -> list[Tensor]:
        """Checkpoint ``index``'s parameters, shaped like ``params`` (views of its row)."""
        return self._views(self.checkpoints[index])

    @torch.no_grad()
    def distances(self) -> Tensor:
        """:math:`d(\\theta, \\theta_c)` for every checkpoint: a `C` tensor."""
        if self.count == 0:
            return torch.empty(0)
        diff = self._gather().unsqueeze(0) - self.checkpoints  # `C x n`
        squares = diff.square()
        if self._weights is not None:
            squares = squares * self._weights
        return squares.sum(1).sqrt()

    @torch.no_grad()
    def value(self, distances: Tensor | None = None) -> Tensor:
        """:math:`P(\\theta)` at the current parameters (0 without checkpoints).

        Args:
            distances: ``distances()`` at the current parameters, if the caller has them.
        """
        if self.count == 0:
            return torch.zeros(())
        d2 = (self.distances() if distances is None else distances).square()
        return self.strength * torch.exp(-d2 / (2 * self.width**2)).mean()

    @torch.no_grad()
    def add_gradient(self) -> None:
        """Add :math:`\\nabla P` to the parameters' gradients (a ``trainers`` hook)."""
        if self.count == 0 or self.strength == 0.0:
            return
        diff = self._gather().unsqueeze(0) - self.checkpoints  # `C x n`
        weighted = diff if self._weights is None else diff * self._weights  # nu (theta - theta_c)
        d2 = (diff * weighted).sum(1)  # `C`
        coef = torch.exp(-d2 / (2 * self.width**2)) * (
            -self.strength / (self.count * self.width**2)
        )  # `C`
        torch.mv(weighted.t(), coef, out=self._grad)  # `n`
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            for p, g in zip(self.params, grads):
                p.grad = g
        torch._foreach_add_(grads, self._grad_views)  # type: ignore[arg-type]


# =============================================================================================
# Ensembles
# =============================================================================================


def ensemble_accuracy(probabilities: Sequence[Tensor], labels: Tensor) -> float:
    """Accuracy of the average of the members' softmax outputs.

    Args:
        probabilities: One `n x classes` tensor of probabilities per member.
        labels: A `n` tensor of class labels.

    Example:
        >>> p1 = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
        >>> p2 = torch.tensor([[0.2, 0.8], [0.3, 0.7]])
        >>> ensemble_accuracy([p1, p2], torch.tensor([0, 1]))  # mean: [.55, .45], [.45, .55]
        1.0
    """
    if not probabilities:
        raise ValueError("ensemble_accuracy needs at least one member.")
    mean = torch.stack(list(probabilities)).mean(0)
    return float((mean.argmax(1) == labels).float().mean())


# =============================================================================================
# The strategy
# =============================================================================================


@dataclass(frozen=True, kw_only=True)
class DistancingConfig:
    """Configuration of ``Distancing``.

    The seed gives no values for s and sigma; the defaults are the best of
    ``studies/distancing.py`` on the MNIST-1D CNN, where a cycle's minimum ends 5–8 (L2) from
    the previous checkpoint without hills and 7.5–12 with these. sigma is in units of the
    distance, which grows with the model's size: retune it for other models.

    Args:
        s: Strength of the hills (the penalty at distance 0), >= 0. 0 is plain training.
        sigma: Width of the hills, > 0, in units of the distance.
        checkpoints: When to store a checkpoint: ``restarts`` (at each warm restart of the inner
            strategy's cosine-with-restarts schedule), ``every`` (every ``every`` epochs) or
            ``epochs`` (at the end of the epochs in ``at``).
        every: The period of ``checkpoints="every"``, in epochs.
        at: The epochs of ``checkpoints="epochs"`` (1-based).
        max_checkpoints: Checkpoints kept (the oldest is dropped), >= 1.
        distance: ``l2`` over all parameters, or ``layer``: per-layer normalised.
        ensemble: At the end, score the ensemble of the checkpoints and the final weights.
    """

    s: float = 1.0
    sigma: float = 4.0
    checkpoints: str = "restarts"
    every: int = 10
    at: tuple[int, ...] = ()
    max_checkpoints: int = 3
    distance: str = "l2"
    ensemble: bool = True

    def __post_init__(self) -> None:
        owner = "DistancingConfig"
        check_range(owner, "s", self.s, 0.0)
        check_range(owner, "sigma", self.sigma, 0.0, low_closed=False)
        check_choice(owner, "checkpoints", self.checkpoints, ("restarts", "every", "epochs"))
        check_range(owner, "every", self.every, 1, integer=True)
        object.__setattr__(self, "at", tuple(self.at))
        for e in self.at:
            check_range(owner, "at", e, 1, integer=True)
        if self.checkpoints == "epochs" and not self.at:
            raise ValueError(f"{owner}: `checkpoints='epochs'` needs the epochs in `at`.")
        check_range(owner, "max_checkpoints", self.max_checkpoints, 1, integer=True)
        check_choice(owner, "distance", self.distance, ("l2", "layer"))


class Distancing(BaseStrategy):
    r"""Distancing (Algorithms 3 and 4 of the seed): train normally, store checkpoints, and from
    then on add a hill :math:`s \cdot \text{mean}_c \exp(-\|\theta - \theta_c\|^2 / 2\sigma^2)` at
    every stored minimum to the training loss, so the optimizer leaves them while keeping
    performance.

    Distancing wraps the *loss*; the learning-rate policy is another strategy's (``inner``,
    default: cosine with warm restarts, whose restarts are natural checkpoint times). So
    ``hpo.compare`` can run e.g. ``Schedule(kind="restarts")`` with and without distancing.

    Per epoch it logs the distance to each checkpoint (``distance_c0`` ..., the seed's Fig. 3.1
    and 3.5), the penalty at the epoch's weights and the number of checkpoints. With
    ``ensemble=True`` it scores, at the end, the average of the softmax outputs of the stored
    checkpoints and the final weights on validation and test, against the best single member
    (Fig. 3.7–3.8): ``history.info["ensemble"]``.

    Args:
        inner: The lr strategy to wrap (default ``Schedule(kind="restarts")``).
        config: The configuration; or pass its fields as keyword arguments.

    Example:
        >>> import hpo
        >>> from strategies import Distancing, Schedule
        >>> s = Distancing(Schedule(kind="restarts", lr=0.02, period=0.5), s=0.5, sigma=1.0)
        >>> h = hpo.run(hpo.testing.boring_task(epochs=4), s, tracking=False)
        >>> h.strategy, h.records[-1].metrics["checkpoints"]
        ('distancing', 1.0)
    """

    name: ClassVar[str] = "distancing"
    config_class: ClassVar[type] = DistancingConfig
    config: DistancingConfig

    @property
    def checkpointing(self) -> bool:  # type: ignore[override]
        """Whether runs can be resumed: the inner strategy's say (the penalty's checkpoints
        are saved by the callback that keeps them)."""
        return bool(getattr(self.inner, "checkpointing", False))

    def __init__(
        self, inner: Any = None, config: DistancingConfig | None = None, **kwargs: Any
    ) -> None:
        from strategies._schedule import Schedule

        super().__init__(config, **kwargs)
        self.inner = Schedule(kind="restarts") if inner is None else inner
        if isinstance(self.inner, Distancing):
            raise TypeError("Distancing cannot wrap another Distancing.")

    def __repr__(self) -> str:
        return f"Distancing({self.inner!r}, {asdict(self.config)})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Distancing)
            and other.config == self.config
            and other.inner == self.inner
        )

    def __hash__(self) -> int:
        return hash((Distancing, self.config))

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> Distancing:
        """Strength and width (log-uniform) and how many checkpoints are kept."""
        return cls(
            s=trial.suggest_float("s", 1e-3, 10.0, log=True),
            sigma=trial.suggest_float("sigma", 0.1, 10.0, log=True),
            max_checkpoints=trial.suggest_int("max_checkpoints", 1, 5),
        )

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        cfg = self.config
        epochs = self._checkpoint_epochs(trainer, budget)
        penalty = DistancePenalty(
            list(trainer.model.parameters()),
            strength=cfg.s,
            width=cfg.sigma,
            distance=cfg.distance,
            max_checkpoints=cfg.max_checkpoints,
        )
        watcher = _Watcher(self, trainer, penalty, epochs)
        previous = trainer.penalty
        trainer.penalty = penalty if cfg.s > 0 else None
        try:
            return self.inner.run(trainer, budget, callbacks=[watcher, *callbacks])
        finally:
            trainer.penalty = previous

    def _checkpoint_epochs(self, trainer: Trainer, budget: Budget) -> set[int] | int:
        """The epochs after which a checkpoint is stored (an int: every that many epochs)."""
        cfg = self.config
        if cfg.checkpoints == "every":
            return cfg.every
        if cfg.checkpoints == "epochs":
            return set(cfg.at)
        from strategies._schedule import Schedule

        inner = self.inner
        if not isinstance(inner, Schedule) or inner.config.kind != "restarts":
            raise ValueError(
                "Distancing(checkpoints='restarts') needs an inner Schedule(kind='restarts'); "
                f"got {inner!r}. Use checkpoints='every' or 'epochs' with other strategies."
            )
        epochs = budget.require_epochs(
            "Distancing(checkpoints='restarts')", "to place the checkpoints at the restarts"
        )
        schedule = inner.config.build(inner.config.lr or trainer.lr)
        return {round(e) for e in schedule.restart_epochs(epochs)}

    def plots(self, history: History) -> dict[str, Figure]:
        """Validation accuracy with the checkpoint epochs, and the distance to each checkpoint
        (the seed's Fig. 3.1)."""
        from matplotlib.figure import Figure

        from hpo._plots import score_axis

        fig = Figure(figsize=(7, 5.5), layout="constrained")
        ax_acc, ax_d = fig.subplots(2, 1, sharex=True)
        epochs = history.column("epoch")
        scale, ylabel = score_axis(history.metric)
        ax_acc.plot(epochs, [scale * a for a in history.column("val_score")], label="validation")
        for e in history.info.get("checkpoint_epochs", []):
            ax_acc.axvline(e, color="grey", ls=":", lw=1)
            ax_d.axvline(e, color="grey", ls=":", lw=1)
        ax_acc.set_ylabel(ylabel)
        ax_acc.grid(alpha=0.3)
        for c in range(self.config.max_checkpoints):
            key = f"distance_c{c}"
            values = history.column(key)
            if any(math.isfinite(v) for v in values):
                ax_d.plot(epochs, values, label=f"to checkpoint {c}")
        ax_d.set_xlabel("epoch")
        ax_d.set_ylabel("L2 distance" if self.config.distance == "l2" else "distance")
        ax_d.grid(alpha=0.3)
        if ax_d.get_lines():
            ax_d.legend(loc="best")
        ax_acc.set_title(f"distancing (s={self.config.s:g}, sigma={self.config.sigma:g})")
        return {"distancing": fig}


class _Watcher(Callback):
    """Takes the checkpoints at epoch ends, logs distances and the penalty, and at the end
    scores the checkpoint ensemble. First in the callback list, so the MLflow callback sees
    the strategy's name and the metrics it adds."""

    def __init__(
        self,
        strategy: Distancing,
        trainer: Trainer,
        penalty: DistancePenalty,
        epochs: set[int] | int,
    ) -> None:
        self.strategy = strategy
        self.trainer = trainer
        self.penalty = penalty
        self.epochs = epochs
        # the buffers of each ensemble member; its parameters are the penalty's checkpoint rows
        self.member_buffers: list[list[Tensor]] = []
        self.taken: list[int] = []

    def on_run_start(self, history: History, trainer: Trainer) -> None:
        history.strategy = self.strategy.name
        inner = config_of(self.strategy.inner, trainer)
        history.config = {
            **asdict(self.strategy.config),
            "inner": getattr(self.strategy.inner, "name", type(self.strategy.inner).__name__),
            **{f"inner.{k}": v for k, v in inner.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        """The penalty's checkpoints, when they were taken and the ensemble members' buffers."""
        return {
            "penalty": self.penalty.state_dict(),
            "taken": list(self.taken),
            "member_buffers": [list(b) for b in self.member_buffers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.trainer.device
        self.penalty.load_state_dict(state["penalty"])
        self.taken = [int(e) for e in state["taken"]]
        self.member_buffers = [[b.to(device) for b in bs] for bs in state["member_buffers"]]

    def on_epoch_end(self, history: History, record: EpochRecord) -> None:
        due = (
            (record.epoch % self.epochs == 0)
            if isinstance(self.epochs, int)
            else (record.epoch in self.epochs)
        )
        if due and math.isfinite(record.train_loss):
            self.penalty.add_checkpoint()
            self.taken.append(record.epoch)
            if self.strategy.config.ensemble:
                self.member_buffers.append(
                    [b.detach().clone() for b in self.trainer.model.buffers()]
                )
                self.member_buffers = self.member_buffers[-self.penalty.max_checkpoints :]
        distances = self.penalty.distances()
        for c, d in enumerate(distances.tolist()):
            record.metrics[f"distance_c{c}"] = d
        record.metrics["penalty"] = float(self.penalty.value(distances))
        record.metrics["checkpoints"] = float(self.penalty.count)

    def on_run_end(self, history: History) -> None:
        history.info["checkpoint_epochs"] = list(self.taken)
        add_figures(history, self.strategy.plots)
        if not (self.strategy.config.ensemble and self.member_buffers and history.records):
            return
        if history.status not in ("finished", "pruned"):
            return
        members = [
            (self.penalty.checkpoint_params(c), buffers)
            for c, buffers in enumerate(self.member_buffers)
        ]
        history.info["ensemble"] = score_ensemble(self.trainer, members)
        summary = history.info.setdefault("summary_metrics", {})
        key = self.trainer.metric.key
        for name in ("val", "test", "best_single_val", "best_single_test"):
            summary[f"ensemble_{name}_{key}"] = history.info["ensemble"][f"{name}_score"]


@torch.no_grad()
def score_ensemble(
    trainer: Trainer, members: Sequence[tuple[list[Tensor], list[Tensor]]]
) -> dict[str, Any]:
    """Score the ensemble of ``members`` (parameter and buffer copies) and the trainer's current
    weights on validation and test, by the trainer's metric; the trainer is left as it was.

    The ensemble averages the members' softmax outputs for class labels (its outputs are the
    log of that average, so accuracy takes their argmax and the loss is the mixture's
    likelihood) and their outputs for regression.

    Returns:
        ``members`` (count), ``val_score`` and ``test_score`` of the ensemble, and the best
        single member (by validation score) with its ``best_single_val_score`` /
        ``best_single_test_score``, and every member's ``single_val_scores``.
    """
    model = trainer.model
    params, buffers = list(model.parameters()), list(model.buffers())
    current = ([p.detach().clone() for p in params], [b.detach().clone() for b in buffers])
    everyone = [*members, current]
    outputs: dict[str, list[Tensor]] = {"val": [], "test": []}
    singles = []
    classification = trainer.data.classification
    try:
        for p_copy, b_copy in everyone:
            torch._foreach_copy_(params, p_copy)
            if buffers:
                torch._foreach_copy_(buffers, b_copy)
            for split in ("val", "test"):
                out = trainer.predict(split)
                outputs[split].append(out.softmax(1) if classification else out)
            singles.append((trainer.evaluate("val").score, trainer.evaluate("test").score))
    finally:
        torch._foreach_copy_(params, current[0])
        if buffers:
            torch._foreach_copy_(buffers, current[1])
    metric = trainer.metric
    best = max(range(len(singles)), key=lambda i: (metric.signed(singles[i][0]), i))
    scores = {}
    for split in ("val", "test"):
        mean = torch.stack(outputs[split]).mean(0)
        scores[split] = _score(trainer, mean.log() if classification else mean, split)
    return {
        "members": len(everyone),
        "val_score": scores["val"],
        "test_score": scores["test"],
        "best_single": best,
        "best_single_val_score": singles[best][0],
        "best_single_test_score": singles[best][1],
        "single_val_scores": [v for v, _ in singles],
    }


def _score(trainer: Trainer, outputs: Tensor, split: str) -> float:
    """The trainer's metric of ``outputs`` on a split (NaN when it is empty)."""
    targets = trainer.data.targets(split)
    if len(targets) == 0:
        return math.nan
    if trainer.metric.fn is None:  # the loss metric
        return float(trainer.loss.total(outputs, targets)) / len(targets)
    return trainer.metric(outputs, targets)
