"""Losses and metrics: what the trainer minimises, and the score strategies optimise.

A ``Loss`` is what backpropagation minimises (cross-entropy by default); a ``Metric`` is the
score of a model's outputs on a whole split, with a direction. Both come by name or wrap a
user's callable:

==============  =========  ======================================  ======  ========  =====
metric          key        value                                   better  chance    ideal
==============  =========  ======================================  ======  ========  =====
``accuracy``    ``acc``    share of argmax == label                higher  majority  1
``error``       ``error``  1 - accuracy                            lower   1 - maj.  0
``loss``        ``loss``   the task's loss on the split            lower   -         -
``mse``         ``mse``    mean squared error                      lower   var(y)    0
``mae``         ``mae``    mean absolute error                     lower   MAD(y)    0
``r2``          ``r2``     1 - SSE / SST                           higher  0         1
==============  =========  ======================================  ======  ========  =====

*chance* is what a model that learned nothing scores (always the most frequent class; always
the mean or median target), *ideal* a perfect model's score; divergence checks and the bench's
normalised scores use them, and a user's metric may give them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]
MetricFn = Callable[[Tensor, Tensor], "Tensor | float"]


# =============================================================================================
# Losses
# =============================================================================================


@dataclass(frozen=True)
class Loss:
    """A training loss: ``loss(outputs, targets)`` is the mean over the batch (what the
    optimizer minimises); ``loss.total(outputs, targets)`` the sum (for a split's mean).

    Args:
        name: Its name (``cross_entropy``, ``mse``, ``l1``, ``smooth_l1``, or the callable's).
        fn: ``(outputs, targets) -> mean loss`` (a 0-dim tensor).
        sum_fn: ``(outputs, targets) -> summed loss``; default: the mean times the batch size.

    Example:
        >>> import torch
        >>> loss = get_loss("mse")
        >>> float(loss(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0])))
        2.5
    """

    name: str
    fn: LossFn = field(repr=False)
    sum_fn: LossFn | None = field(default=None, repr=False)

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.fn(outputs, targets)

    def total(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """The loss summed over the batch."""
        if self.sum_fn is not None:
            return self.sum_fn(outputs, targets)
        return self.fn(outputs, targets) * len(targets)


def _aligned(outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """A regression model's `n x 1` outputs against `n` targets: drop the trailing 1, so the
    two broadcast element by element (not to `n x n`)."""
    if outputs.ndim == targets.ndim + 1 and outputs.shape[-1] == 1:
        outputs = outputs.squeeze(-1)
    return outputs, targets.to(outputs.dtype)


def _regression_loss(fn: Callable[..., Tensor]) -> tuple[LossFn, LossFn]:
    def mean(outputs: Tensor, targets: Tensor) -> Tensor:
        return fn(*_aligned(outputs, targets))

    def total(outputs: Tensor, targets: Tensor) -> Tensor:
        return fn(*_aligned(outputs.float(), targets), reduction="sum")

    return mean, total


def _cross_entropy_sum(outputs: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(outputs.float(), targets, reduction="sum")


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss("cross_entropy", F.cross_entropy, _cross_entropy_sum),
    **{
        name: Loss(name, *_regression_loss(fn))
        for name, fn in (("mse", F.mse_loss), ("l1", F.l1_loss), ("smooth_l1", F.smooth_l1_loss))
    },
}


def get_loss(loss: str | Loss | LossFn) -> Loss:
    """A ``Loss`` by name, or wrapping a callable ``(outputs, targets) -> mean loss``.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
        TypeError: Neither a name nor a callable.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"Unknown loss {loss!r}; known losses: {', '.join(LOSSES)}.")
        return LOSSES[loss]
    if callable(loss):
        _check_arity("loss", loss)
        return Loss(_name_of(loss), loss)
    raise TypeError(
        f"`loss` must be a name ({', '.join(LOSSES)}) or a callable (outputs, targets) -> "
        f"loss, but got loss={loss!r}."
    )


# =============================================================================================
# Metrics
# =============================================================================================


@dataclass(frozen=True)
class Metric:
    """The score of a model on a split, with its direction.

    Args:
        name: Its name (``accuracy``, ``mse``...).
        key: The short name in columns and MLflow metrics (``val_<key>``): ``acc`` for
            accuracy, else the name.
        fn: ``(outputs, targets) -> score`` over a whole split (`n x ...` outputs, `n ...`
            targets); ``None`` for ``loss``, whose score is the split's mean loss.
        maximize: Whether higher is better.
        chance: ``targets -> score`` of a model that learned nothing, or ``None`` (unknown).
        ideal: A perfect model's score, or ``None`` (unknown).

    Example:
        >>> import torch
        >>> m = get_metric("accuracy")
        >>> m.key, m.maximize, m(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
        ('acc', True, 0.5)
        >>> m.signed(0.5), get_metric("mse").signed(0.5)
        (0.5, -0.5)
    """

    name: str
    key: str
    fn: MetricFn | None = field(repr=False)
    maximize: bool
    chance: Callable[[Tensor], float] | None = field(default=None, repr=False)
    ideal: float | None = None

    def __call__(self, outputs: Tensor, targets: Tensor) -> float:
        """The score of ``outputs`` against ``targets`` (a Python float)."""
        if self.fn is None:
            raise TypeError("The `loss` metric is the split's mean loss: the trainer computes it.")
        value = self.fn(outputs, targets)
        return float(value.item() if isinstance(value, Tensor) else value)

    def signed(self, score: float) -> float:
        """``score`` when higher is better, else ``-score``: larger always means better."""
        return score if self.maximize else -score

    @property
    def classification(self) -> bool:
        """Whether the metric reads outputs as class scores (accuracy, error)."""
        return self.name in ("accuracy", "error")

    def chance_score(self, targets: Tensor) -> float:
        """What a model that learned nothing scores on ``targets`` (NaN when unknown)."""
        if self.chance is None or len(targets) == 0:
            return float("nan")
        return float(self.chance(targets))

    def format(self, score: float) -> str:
        """``score`` for a person: a percentage for accuracy and error, else 4 digits."""
        return format_score(score, self.key)

    def to_params(self) -> str:
        """The metric for MLflow params and error messages: its name and direction."""
        return f"{self.name} ({'max' if self.maximize else 'min'})"


#: The metric keys whose scores are fractions shown as percentages.
PERCENT_KEYS = ("acc", "error")


def format_score(score: float, key: str) -> str:
    """A score for a person: ``93.5%`` for accuracy and error (keys ``acc``, ``error``),
    ``0.1234`` otherwise.

    Example:
        >>> format_score(0.935, "acc"), format_score(0.123456, "mse")
        ('93.5%', '0.1235')
    """
    return f"{score:.1%}" if key in PERCENT_KEYS else f"{score:.4g}"


def _correct(outputs: Tensor, targets: Tensor) -> Tensor:
    return (outputs.argmax(1) == targets).sum()


def _accuracy(outputs: Tensor, targets: Tensor) -> float:
    # the integer count divided in Python: exactly count / n, whatever the device's float
    return int(_correct(outputs, targets).item()) / len(targets)


def _error(outputs: Tensor, targets: Tensor) -> float:
    return 1.0 - _accuracy(outputs, targets)


def _majority(targets: Tensor) -> float:
    return float(torch.bincount(targets.reshape(-1).long()).max().item()) / len(targets)


def _mse(outputs: Tensor, targets: Tensor) -> Tensor:
    out, y = _aligned(outputs.double(), targets)
    return ((out - y) ** 2).mean()


def _mae(outputs: Tensor, targets: Tensor) -> Tensor:
    out, y = _aligned(outputs.double(), targets)
    return (out - y).abs().mean()


def _r2(outputs: Tensor, targets: Tensor) -> Tensor:
    out, y = _aligned(outputs.double(), targets)
    sst = ((y - y.mean(0)) ** 2).sum()
    return 1.0 - ((out - y) ** 2).sum() / sst


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "acc", _accuracy, True, _majority, 1.0),
        Metric("error", "error", _error, False, lambda y: 1.0 - _majority(y), 0.0),
        Metric("loss", "loss", None, False),
        Metric("mse", "mse", _mse, False, lambda y: float(y.double().var(0, False).mean()), 0.0),
        Metric(
            "mae",
            "mae",
            _mae,
            False,
            lambda y: float((y.double() - y.double().median(0).values).abs().mean()),
            0.0,
        ),
        Metric("r2", "r2", _r2, True, lambda y: 0.0, 1.0),
    )
}


def get_metric(metric: str | Metric | MetricFn, *, direction: str | None = None) -> Metric:
    """A ``Metric`` by name, or wrapping a callable ``(outputs, targets) -> score``.

    Args:
        metric: A name of ``METRICS``, a ``Metric``, or a callable over a whole split.
        direction: ``"maximize"`` or ``"minimize"``; needed for a callable, optional for a name
            (where it must agree with the metric's own).

    Raises:
        ValueError: Unknown name, a bad or conflicting direction, or a callable without one.
        TypeError: Neither a name, a ``Metric`` nor a callable.

    Example:
        >>> get_metric("r2").maximize, get_metric(lambda o, t: 0.0, direction="minimize").key
        (True, 'lambda')
    """
    if direction is not None and direction not in ("maximize", "minimize"):
        raise ValueError(
            f"`direction` must be 'maximize' or 'minimize', but got direction={direction!r}."
        )
    if isinstance(metric, Metric):
        found = metric
    elif isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"Unknown metric {metric!r}; known metrics: {', '.join(METRICS)}.")
        found = METRICS[metric]
    elif callable(metric):
        _check_arity("metric", metric)
        if direction is None:
            raise ValueError(
                f"A callable `metric` ({_name_of(metric)}) needs a `direction`: 'maximize' or "
                "'minimize'."
            )
        name = _name_of(metric)
        return Metric(name, name, metric, direction == "maximize")
    else:
        raise TypeError(
            f"`metric` must be a name ({', '.join(METRICS)}), a Metric or a callable "
            f"(outputs, targets) -> score, but got metric={metric!r}."
        )
    if direction is not None and (direction == "maximize") != found.maximize:
        raise ValueError(
            f"The metric {found.name!r} is {'maximized' if found.maximize else 'minimized'}, "
            f"but got direction={direction!r}."
        )
    return found


def _name_of(fn: Any) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "lambda" if name == "<lambda>" else str(name)


def _check_arity(what: str, fn: Any) -> None:
    """Raise ``TypeError`` unless ``fn`` can be called with two positional arguments."""
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError as err:
        raise TypeError(
            f"`{what}` must take (outputs, targets), but {_name_of(fn)} does not: {err}."
        ) from err
    except ValueError:  # a builtin without a signature: trust it
        pass
