"""``Recorder``: the bookkeeping every strategy shares.

A strategy's ``run`` opens a ``Recorder`` as a context manager and reports each epoch of the
trajectory it keeps; the recorder evaluates on the validation split, fills the ``History``,
checks the budget, detects divergence, keeps a copy of the best weights, tells the callbacks,
and on exit scores the final and the best weights on the test split. However the block is left
(normally, on divergence, by an exception, by Optuna pruning) the history gets its status and
every callback its ``on_run_end``.

With an ``hpo.Checkpoint`` among the callbacks, the recorder also writes the run's state at the
epoch boundaries the strategy marks with ``checkpoint(...)``, and a resumed run starts from it:
the trainer, the History, the best weights, the callbacks' and the strategy's state
(``resumed``) are put back before the strategy continues.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from hpo._checkpoint import Checkpoint
from hpo._divergence import DivergenceMonitor, DivergenceRule
from hpo._history import Decision, EpochRecord, History, _json_default
from hpo.exceptions import StopRun

if TYPE_CHECKING:
    from hpo._budget import Budget
    from hpo._callbacks import Callback
    from trainers import Counters, EpochResult, EvalResult, Snapshot, Trainer


class Recorder:
    """Records a strategy's run into a ``History`` and notifies callbacks.

    Args:
        strategy: The strategy (its ``name`` and ``config`` go into the history).
        trainer: The trainer of the kept trajectory.
        budget: The run's limits.
        callbacks: Observers of the run.
        keep_best: Keep an in-memory copy of the weights with the best validation score so
            far (in the direction of the trainer's metric), to score them on the test split at
            the end.
        spent: A function giving the work spent so far, when it is not ``trainer.spent`` (a
            population of trainers).
        divergence: When an epoch counts as diverged (``hpo.DivergenceRule``: a non-finite
            loss, a training loss above 10x the initial validation loss, or a validation
            score back at chance for 3 epochs after the run had learned). The initial
            weights are evaluated once when the block is entered, for the initial loss.

    Checkpoints: with an ``hpo.Checkpoint`` among ``callbacks`` the strategy marks its epoch
    boundaries with ``rec.checkpoint(state)``, ``state`` being everything of its own that the
    next epochs depend on (tensors and plain Python values; a callable that returns them, so
    nothing is built when no checkpoint is kept). When the run is resumed, ``rec.resumed`` is
    that state (``None`` for a fresh run, or one killed before its first checkpoint); the
    recorder has already put back its trainer (weights, optimizer state when the optimizer is
    of the same class, random streams, counters), the History, the best weights, the
    divergence monitor and the callbacks' state. Other trainers (a population, branches) are
    the strategy's to save.

    Example:
        >>> import hpo
        >>> from strategies import Constant
        >>> trainer = hpo.testing.boring_task().build_trainer()
        >>> with hpo.Recorder(Constant(lr=0.05), trainer, hpo.Budget(epochs=2)) as rec:
        ...     while not rec.done:
        ...         _ = rec.end_epoch(trainer.train_epoch(0.05))
        ...         rec.checkpoint()
        >>> rec.history.status, rec.history.epochs
        ('finished', 2)
    """

    def __init__(
        self,
        strategy: Any,
        trainer: Trainer,
        budget: Budget,
        callbacks: Sequence[Callback] = (),
        *,
        keep_best: bool = True,
        spent: Callable[[], Counters] | None = None,
        divergence: DivergenceRule | None = None,
    ) -> None:
        self.history = History(
            strategy=getattr(strategy, "name", type(strategy).__name__),
            config=config_of(strategy, trainer),
            metric=trainer.metric.key,
            maximize=trainer.metric.maximize,
        )
        self.strategy = strategy
        self.trainer = trainer
        self.budget = budget
        self.callbacks = list(callbacks)
        self._keep_best = keep_best
        self._spent = spent
        self._rule = DivergenceRule() if divergence is None else divergence
        self._monitor: DivergenceMonitor | None = None
        self._best: Snapshot | None = None
        self._best_owned = False  # whether self._best may be overwritten in place
        self._end_on_best = False
        self._pending: list[Decision] = []
        self._start = time.perf_counter()
        self._started = False
        self._root = trainer  # the trainer whose state the checkpoints hold
        self._checkpoint = next((cb for cb in self.callbacks if isinstance(cb, Checkpoint)), None)
        #: The strategy's state from the checkpoint a resumed run started from, else ``None``.
        self.resumed: dict[str, Any] | None = None

    # ---------------------------------------------------------------- context

    def __enter__(self) -> Recorder:
        saved = None
        if self._checkpoint is not None and self._checkpoint.resume:
            saved = self._checkpoint.load()
        if saved is None:
            self._monitor = DivergenceMonitor(self.trainer, self._rule)
            self._start = time.perf_counter()
        else:
            self._load(saved)
        self._started = True
        for cb in self.callbacks:
            cb.on_run_start(self.history, self.trainer)
        if saved is None:
            self.checkpoint()  # before the first epoch: the callbacks' state (MLflow run id)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        h = self.history
        stopped = isinstance(exc, StopRun)
        if stopped:
            h.info["stopped"] = str(exc)
            exc = None
        if exc is None:
            if h.status == "running":
                h.status = "finished"
        else:
            h.status = _status_of(exc)
            if h.status == "failed":
                h.error = f"{type(exc).__name__}: {exc}"
        if self._pending:  # decisions after the last epoch stay in the history
            (h.records[-1].decisions if h.records else h.decisions).extend(self._pending)
            self._pending = []
        if exc is None or h.status == "pruned":
            self._score_on_test()
            if self._end_on_best and self._best is not None:
                self.trainer.restore(self._best)
                h.info["trainer_holds"] = f"best (epoch {h.best_epoch})"
        add_figures(h, getattr(self.strategy, "plots", None))
        for cb in self.callbacks:
            cb.on_run_end(h)
        return stopped  # swallow StopRun: the run ended normally

    # ---------------------------------------------------------------- what strategies call

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self._start

    @property
    def done(self) -> bool:
        """True when the run diverged or the budget is used up."""
        if self.history.status != "running":
            return True
        spent = self.spent
        return self.budget.reached(
            epochs=self.history.epochs,
            spent_steps=spent.steps,
            spent_examples=spent.examples,
            seconds=self.elapsed,
        )

    @property
    def spent(self) -> Counters:
        """The work spent so far (all branches, members and rejected steps)."""
        return self.trainer.spent if self._spent is None else self._spent()

    def end_on_best(self) -> None:
        """Leave the trainer on the best-validation weights when the run ends (after both the
        final and the best weights were scored on the test split)."""
        self._end_on_best = True

    def decide(self, lr: float, accepted: bool, reason: str, **details: Any) -> Decision:
        """Record a decision; it is attached to the next epoch's record."""
        decision = Decision(
            epoch=self.history.epochs,
            lr=float(lr),
            accepted=bool(accepted),
            reason=reason,
            details=details,
        )
        self._pending.append(decision)
        for cb in self.callbacks:
            cb.on_decision(self.history, decision)
        return decision

    def end_epoch(
        self,
        result: EpochResult,
        *,
        val: EvalResult | None = None,
        metrics: dict[str, float] | None = None,
        counters: Counters | None = None,
        weights: Snapshot | None = None,
    ) -> EpochRecord:
        """Record one epoch of the kept trajectory.

        By default the epoch is the recorder's trainer in its current state. A population
        sets ``rec.trainer`` to the member that leads before each call (its weights are the
        epoch's, and the ones scored on the test split at the end); a strategy that replays a
        trajectory it trained earlier passes that epoch's ``val`` and ``counters``, and the
        ``weights`` of the epoch when it may be the best.

        Args:
            result: What ``train_epoch`` / ``run_epoch`` returned for the kept trajectory.
            val: The validation score, if the strategy has it already (computed otherwise).
            metrics: Strategy-specific signals to log with the epoch.
            counters: The trajectory's counters at this epoch (default: ``rec.trainer``'s).
            weights: A snapshot of this epoch's weights when they are not ``rec.trainer``'s
                current weights (used if the epoch is the best so far).

        Returns:
            The record. If the epoch diverged (see ``divergence``), the history's status
            becomes ``diverged`` with the reason in ``history.diverged_reason``, the epoch is
            never the best, and ``done`` turns True.
        """
        trainer = self.trainer
        if val is None:
            val = trainer.evaluate() if not result.diverged else nan_eval()
        spent = self.spent
        c = trainer.counters if counters is None else counters
        record = EpochRecord(
            epoch=self.history.epochs + 1,
            lr=result.lr_mean,
            lr_min=result.lr_min,
            lr_max=result.lr_max,
            train_loss=result.loss,
            train_score=result.score,
            val_loss=val.loss,
            val_score=val.score,
            steps=c.steps,
            examples=c.examples,
            spent_steps=spent.steps,
            spent_examples=spent.examples,
            wall_time=self.elapsed,
            decisions=self._pending,
            metrics={**trainer.optimizer_signals(), **(metrics or {})},
        )
        self._pending = []
        h = self.history
        h.records.append(record)
        why = self._check_divergence(record)
        if why is not None:
            h.status = "diverged"
            h.diverged_epoch = record.epoch
            h.diverged_reason = why
        elif math.isfinite(record.val_score) and (
            h.best_epoch is None
            or h.is_better(record.val_score, h.records[h.best_epoch - 1].val_score)
        ):
            h.best_epoch = record.epoch
            if self._keep_best and weights is not None:
                self._best, self._best_owned = weights, False  # the strategy's own copy
            elif self._keep_best:
                self._best = trainer.snapshot(out=self._best if self._best_owned else None)
                self._best_owned = True
        for cb in self.callbacks:
            cb.on_epoch_end(h, record)
        return record

    @property
    def checkpointing(self) -> bool:
        """Whether ``checkpoint`` writes anything (an ``hpo.Checkpoint`` is among the
        callbacks)."""
        return self._checkpoint is not None

    def checkpoint(
        self, state: Callable[[], dict[str, Any]] | dict[str, Any] | None = None
    ) -> None:
        """Mark an epoch boundary: with an ``hpo.Checkpoint`` among the callbacks, write the
        run's state and the strategy's ``state`` (or what the callable returns); otherwise do
        nothing (the callable is not called).

        Call it when everything the next epoch depends on is settled: after ``end_epoch`` and
        the strategy's own bookkeeping of that epoch (decisions for the next record included).
        """
        ck = self._checkpoint
        if ck is None:
            return
        epoch = self.history.epochs
        if epoch % ck.every and not self.done:
            return
        own = state() if callable(state) else state
        counts: Counter[str] = Counter()
        callbacks: dict[str, Any] = {}
        for cb in self.callbacks:
            key = _callback_key(cb, counts)
            cb_state = cb.state_dict()
            if cb_state is not None:
                callbacks[key] = cb_state
        best = self._best.state_dict() if self._best is not None else None
        ck.save(
            {
                "trainer": self._root.state_dict(),
                "history": self.history.to_json(),
                "pending": json.dumps([asdict(d) for d in self._pending], default=_json_default),
                "monitor": None if self._monitor is None else self._monitor.state_dict(),
                "best": best,
                "end_on_best": self._end_on_best,
                "elapsed": self.elapsed,
                "callbacks": callbacks,
                "strategy": own,
            },
            epoch=epoch,
        )

    def _load(self, saved: dict[str, Any]) -> None:
        """Put the run back as ``checkpoint`` saved it (``__enter__`` of a resumed run)."""
        from trainers import Snapshot
        from trainers._trainer import _class_name

        trainer = self._root
        same_optimizer = saved["trainer"].get("optimizer_class") == _class_name(trainer.optimizer)
        trainer.load_state_dict(saved["trainer"], optimizer=same_optimizer)
        self.history = History.from_json(saved["history"])
        self._pending = [Decision(**d) for d in json.loads(saved["pending"])]
        self._monitor = DivergenceMonitor(
            trainer, self._rule, initial_loss=float(saved["monitor"]["initial_loss"])
        )
        self._monitor.load_state_dict(saved["monitor"])
        if saved["best"] is not None:
            self._best = Snapshot.from_state_dict(saved["best"], device=trainer.device)
            self._best_owned = True
        self._end_on_best = bool(saved["end_on_best"])
        self._start = time.perf_counter() - float(saved["elapsed"])
        counts: Counter[str] = Counter()
        for cb in self.callbacks:
            key = _callback_key(cb, counts)
            if key in saved["callbacks"]:
                cb.load_state_dict(saved["callbacks"][key])
        self.resumed = saved["strategy"]

    def _check_divergence(self, record: EpochRecord) -> str | None:
        if self._monitor is None:  # used without ``with``: only non-finite losses count
            return "non-finite loss" if record.diverged else None
        return self._monitor.check(
            train_loss=record.train_loss, val_loss=record.val_loss, score=record.val_score
        )

    # ---------------------------------------------------------------- end of run

    def _score_on_test(self) -> None:
        h, trainer = self.history, self.trainer
        if h.status != "diverged" and h.records:
            final = trainer.test()
            h.test_loss, h.test_score = final.loss, final.score
        if h.best_epoch is None:
            return
        if h.best_epoch == h.epochs and h.status != "diverged":
            h.best_test_loss, h.best_test_score = h.test_loss, h.test_score
        elif self._best is not None:
            current = trainer.snapshot()
            trainer.restore(self._best)
            best = trainer.test()
            trainer.restore(current)
            h.best_test_loss, h.best_test_score = best.loss, best.score


def config_of(strategy: Any, trainer: Trainer) -> dict[str, Any]:
    """The strategy's config as it runs on ``trainer`` (``resolved_config`` when the strategy
    has it: the task-dependent defaults filled in), else its config dataclass as a dict."""
    resolved = getattr(strategy, "resolved_config", None)
    if callable(resolved):
        return dict(resolved(trainer))
    config = getattr(strategy, "config", None)
    return asdict(config) if is_dataclass(config) else {}  # type: ignore[arg-type]


def add_figures(history: History, plots: Callable[[History], dict[str, Any]] | None) -> None:
    """Add a strategy's figures, ``plots(history)``, to ``history.figures``.

    Nothing happens without ``plots`` or without a record. A plot that raises must never hide
    the run's own outcome: its error goes to ``history.info["plot_error"]`` instead.
    """
    if not callable(plots) or not history.records:
        return
    try:
        history.figures.update(plots(history))
    except Exception as err:
        history.info["plot_error"] = f"{type(err).__name__}: {err}"


def _callback_key(cb: Callback, counts: Counter[str]) -> str:
    """``<class name>#<n>``: the n-th callback of its class (stable across a resume)."""
    name = type(cb).__qualname__
    counts[name] += 1
    return f"{name}#{counts[name]}"


def nan_eval() -> EvalResult:
    """The validation score of a diverged epoch: NaN loss and score."""
    from trainers import EvalResult

    return EvalResult(math.nan, math.nan)


def _status_of(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    try:
        from optuna.exceptions import TrialPruned
    except ImportError:  # pragma: no cover - optuna is a dependency
        return "failed"
    return "pruned" if isinstance(exc, TrialPruned) else "failed"
