"""``Callback``: observers of a strategy's run (MLflow logging, Optuna reporting, progress)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo._history import Decision, EpochRecord, History
    from trainers import Trainer


class Callback:
    """Base class of run observers: override any of the four no-op hooks.

    A callback that keeps state across epochs and must survive a resumed run
    (``hpo.run(..., checkpoint_dir=..., resume=True)``) also overrides ``state_dict`` and
    ``load_state_dict``: the state goes into every checkpoint and is loaded before
    ``on_run_start`` of the resumed run.

    A hook may raise to stop the run (``optuna.TrialPruned`` from ``on_epoch_end`` is how the
    Optuna glue prunes); the run then ends with status ``pruned`` (or ``failed``) and every
    callback still gets ``on_run_end``.

    Example:
        >>> class PrintValAcc(Callback):
        ...     def on_epoch_end(self, history, record):
        ...         print(f"{record.epoch}: {record.val_score:.1%}")
    """

    def on_run_start(self, history: History, trainer: Trainer) -> None:
        """Called when a strategy starts its run, before any training."""

    def on_epoch_end(self, history: History, record: EpochRecord) -> None:
        """Called when an epoch of the kept trajectory has been recorded."""

    def on_decision(self, history: History, decision: Decision) -> None:
        """Called when the strategy records a decision."""

    def on_run_end(self, history: History) -> None:
        """Called when the run ends, however it ends (``history.status`` says how)."""

    def state_dict(self) -> dict[str, Any] | None:
        """What a checkpoint keeps of this callback (tensors and plain Python values), or
        ``None`` (the default) for nothing."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()`` (called before ``on_run_start`` when resuming)."""
