"""``Strategy``: the protocol every lr policy implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hpo._budget import Budget
    from hpo._callbacks import Callback
    from hpo._history import History
    from trainers import Trainer


@runtime_checkable
class Strategy(Protocol):
    """A policy that drives a ``Trainer`` and decides the learning rate while it trains.

    An implementation has a registered ``name`` (lower case with hyphens: ``"constant"``,
    ``"sgd-sa"``), a validated dataclass ``config``, and one method, ``run``. It reaches the
    trainer only through the trainer's primitives, and records what it does through an
    ``hpo.Recorder``, which checks the budget, detects divergence and notifies the callbacks.

    Optional members the framework uses when present: ``suggest(trial)`` (a classmethod: the
    strategy's Optuna search space, for ``hpo study``), ``plots(history)`` (figures of the run,
    logged to MLflow) and ``checkpointing = True`` (the strategy calls ``rec.checkpoint(...)``
    at its epoch boundaries and continues from ``rec.resumed``, so ``hpo.run(...,
    checkpoint_dir=..., resume=True)`` can resume it).

    Example:
        >>> import hpo
        >>> from strategies import Constant
        >>> isinstance(Constant(lr=0.1), hpo.Strategy)
        True
    """

    name: ClassVar[str]
    config: Any

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        """Train with ``trainer`` until ``budget`` is used up; return what happened."""
        ...
