"""``Static``: black-box HPO of one lr for the whole run, by an Optuna sampler across trials."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hpo import BaseStrategy, Budget, Callback, DivergenceMonitor, History, Recorder
from hpo._validation import check_choice, check_lr_bounds, check_range
from trainers import Counters, EpochResult, EvalResult

if TYPE_CHECKING:
    import optuna

    from trainers import Snapshot, Trainer

SAMPLERS = ("tpe", "gp", "cmaes", "random", "grid")
SCHEDULES = ("constant", "step", "cosine", "one-cycle", "restarts")
PRUNERS = ("none", "median", "hyperband")


@dataclass(frozen=True, kw_only=True)
class StaticConfig:
    """Configuration of ``Static``.

    Args:
        sampler: The Optuna sampler: ``tpe``, ``gp``, ``cmaes``, ``random`` or ``grid`` (a
            log-spaced grid of ``n_trials`` lrs).
        n_trials: Full training runs tried, >= 1.
        lr_min: Lower end of the log-uniform lr range, > 0.
        lr_max: Upper end, > ``lr_min``.
        optimizers: Also choose the optimizer among these names (``trainers.OPTIMIZERS``);
            empty: keep the task's optimizer.
        schedule: Each trial's lr policy: ``constant`` (the searched lr for the whole run), or
            a ``Schedule`` kind (``step``, ``cosine``, ``one-cycle``, ``restarts``) at its
            default shape, whose base (peak) lr is the searched one.
        pruner: Stop poor trials early: ``none``, ``median`` (Optuna's MedianPruner) or
            ``hyperband`` (HyperbandPruner: the Hyperband-style baseline).
        seed: Seeds the sampler (together with the task's seed).
    """

    sampler: str = "tpe"
    n_trials: int = 8
    lr_min: float = 1e-4
    lr_max: float = 1.0
    optimizers: tuple[str, ...] = ()
    schedule: str = "constant"
    pruner: str = "none"
    seed: int = 0

    def __post_init__(self) -> None:
        from trainers import OPTIMIZERS

        owner = "StaticConfig"
        check_choice(owner, "sampler", self.sampler, SAMPLERS)
        check_range(owner, "n_trials", self.n_trials, 1, integer=True)
        check_lr_bounds(owner, self.lr_min, self.lr_max)
        object.__setattr__(self, "optimizers", tuple(self.optimizers))
        for name in self.optimizers:
            check_choice(owner, "optimizers", name, OPTIMIZERS)
        if self.optimizers and self.sampler == "grid":
            raise ValueError(
                f"{owner}: the `grid` sampler searches the lr only, not `optimizers`."
            )
        check_choice(owner, "schedule", self.schedule, SCHEDULES)
        check_choice(owner, "pruner", self.pruner, PRUNERS)
        check_range(owner, "seed", self.seed, 0, integer=True)


class Static(BaseStrategy):
    """What users do today: train ``n_trials`` full runs, each at one constant lr (and
    optionally optimizer) proposed by an Optuna sampler, and keep the best. With
    ``schedule="one-cycle"`` (or another kind) the searched lr is the peak of that schedule:
    the tuned-schedule baseline.

    Every trial starts from the same initial weights. The kept trajectory is the best trial's
    (by its best validation score, in the task metric's direction); its records are written
    once the search is over, so their ``spent_steps`` show the whole search's cost — the price
    of the answer. Diverged trials (``hpo.DivergenceRule``: a non-finite or exploding loss, or a
    score back at chance) are told to Optuna as failed and never win. With
    ``pruner="hyperband"`` this is the Hyperband-style baseline (poor trials are stopped early,
    at epochs Hyperband chooses).

    Note: Optuna's CMA-ES does not handle a one-dimensional search space and falls back to
    independent (random) sampling there, with a warning.

    Example:
        >>> import hpo
        >>> from strategies import Static
        >>> h = hpo.run(hpo.testing.boring_task(epochs=2), Static(n_trials=3, sampler="random"),
        ...             tracking=False)
        >>> len(h.info["trials"]), h.final.spent_steps == 3 * h.final.steps
        (3, True)
    """

    name: ClassVar[str] = "static"
    config_class: ClassVar[type] = StaticConfig
    checkpointing: ClassVar[bool] = True
    config: StaticConfig

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> Static:
        """The sampler and the number of trials (4..16)."""
        return cls(
            sampler=trial.suggest_categorical("sampler", ["tpe", "gp", "random"]),
            n_trials=trial.suggest_int("n_trials", 4, 16),
        )

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        from hpo._optuna import quiet_optuna

        with quiet_optuna():  # the inner study's INFO lines would drown the outer run's
            return self._run(trainer, budget, callbacks)

    def _run(self, trainer: Trainer, budget: Budget, callbacks: Sequence[Callback]) -> History:
        import optuna

        from trainers import build_optimizer

        cfg = self.config
        epochs = budget.require_epochs("Static", "epochs per trial")
        # a fixed name: Hyperband assigns trials to brackets by hashing the study's name (a
        # random one would make the search differ from run to run under the same seeds)
        metric = trainer.metric
        study = optuna.create_study(
            study_name=f"hpo-static-{cfg.seed}-{trainer.seed}",
            direction="maximize" if metric.maximize else "minimize",
            sampler=self._sampler(trainer.seed),
            pruner=self._pruner(epochs),
        )
        if cfg.sampler == "grid":
            for lr in self._grid():
                study.enqueue_trial({"lr": lr})
        initial = trainer.snapshot()
        divergence = DivergenceMonitor(trainer)  # a trial that explodes fails, and never wins
        base_optimizer = trainer.optimizer
        best: dict[str, Any] | None = None
        trials: list[dict[str, Any]] = []
        replay: list[tuple[EpochResult, EvalResult, Counters]] = []
        best_weights: Snapshot | None = None  # the best trial's best-epoch weights
        best_final: Snapshot | None = None  # the best trial's final weights

        reports: list[list[float]] = []  # each trial's reported values, to replay the study

        def saved_state() -> dict[str, Any]:
            return {
                "trials": trials,
                "reports": reports,
                "best": best,
                "replay": [[asdict(r), asdict(v), asdict(c)] for r, v, c in replay],
                "best_weights": None if best_weights is None else best_weights.state_dict(),
                "best_final": None if best_final is None else best_final.state_dict(),
            }

        with Recorder(self, trainer, budget, callbacks) as rec:
            if rec.resumed is not None:  # trials are resumed whole: the study is replayed
                saved = rec.resumed
                trials, reports, best = saved["trials"], saved["reports"], saved["best"]
                replay = [
                    (EpochResult(**r), EvalResult(**v), Counters(**c))
                    for r, v, c in saved["replay"]
                ]
                best_weights = _snapshot(saved["best_weights"], trainer)
                best_final = _snapshot(saved["best_final"], trainer)
                for info, reported in zip(trials, reports):
                    self._replay(study, info, reported)
            for number in range(len(trials), cfg.n_trials):
                # no record is written before the search ends, so only the budget's steps,
                # examples and seconds can be reached here
                if number and rec.done:
                    break
                trial = study.ask()
                lr, opt_name = self._ask(trial)
                values: list[float] = []
                trainer.set_optimizer(base_optimizer)
                trainer.restore(initial)
                if opt_name is not None:
                    trainer.set_optimizer(build_optimizer(opt_name, trainer.model.parameters()))
                policy = self._policy(lr, trainer.counters.steps, trainer.steps_per_epoch, epochs)
                epochs_run: list[tuple[EpochResult, EvalResult, Counters]] = []
                trial_best: tuple[float, int, Snapshot] | None = None
                state = optuna.trial.TrialState.COMPLETE
                divergence.reset()
                trained = 0
                for epoch in range(1, epochs + 1):
                    result = trainer.train_epoch(policy)
                    trained += 1
                    if result.diverged:
                        state = optuna.trial.TrialState.FAIL
                        break
                    val = trainer.evaluate()
                    why = divergence.check(
                        train_loss=result.loss, val_loss=val.loss, score=val.score
                    )
                    if why is not None:
                        state = optuna.trial.TrialState.FAIL
                        break
                    epochs_run.append((result, val, trainer.counters.copy()))
                    if trial_best is None or metric.signed(val.score) > metric.signed(
                        trial_best[0]
                    ):
                        snap = trial_best[2] if trial_best else None
                        trial_best = (val.score, epoch, trainer.snapshot(out=snap))
                    trial.report(val.score, epoch)
                    values.append(val.score)
                    if trial.should_prune():
                        state = optuna.trial.TrialState.PRUNED
                        break
                score = trial_best[0] if trial_best else math.nan
                if state == optuna.trial.TrialState.COMPLETE:
                    study.tell(trial, score)
                else:
                    study.tell(trial, state=state)
                info = {
                    "number": number,
                    "lr": lr,
                    "optimizer": opt_name,
                    "state": state.name,
                    "best_val_score": score,
                    "epochs": trained,
                }
                trials.append(info)
                better = (
                    state == optuna.trial.TrialState.COMPLETE
                    and trial_best is not None
                    and (
                        best is None
                        or metric.signed(score) > metric.signed(best["best_val_score"])
                    )
                )
                rec.decide(
                    lr,
                    better,
                    f"trial {number}: lr {lr:.3g}"
                    + (f" {opt_name}" if opt_name else "")
                    + f" -> {state.name.lower()}, best val {metric.format(score)}"
                    + (" (new best)" if better else ""),
                    trial=number,
                )
                if better and trial_best is not None:
                    best = info
                    replay, best_weights = epochs_run, trial_best[2]
                    best_final = trainer.snapshot(out=best_final)
                reports.append(values)
                if rec.checkpointing:  # a trial boundary: back to the start, then save
                    trainer.set_optimizer(base_optimizer)
                    trainer.restore(initial)
                    rec.checkpoint(saved_state)

            rec.history.info["trials"] = trials
            if best is None:  # every trial diverged or was pruned: record the last attempt
                rec.history.status = "diverged"
                rec.history.diverged_reason = "every trial diverged or was pruned"
                return rec.history
            # End on the best trial: its optimizer and final weights; its trajectory is
            # replayed into the history (with its best-epoch weights for the best record).
            if best["optimizer"] is not None:
                trainer.set_optimizer(
                    build_optimizer(best["optimizer"], trainer.model.parameters())
                )
            else:
                trainer.set_optimizer(base_optimizer)
            trainer.restore(best_final)  # type: ignore[arg-type]
            best_epoch = max(
                range(len(replay)), key=lambda i: (metric.signed(replay[i][1].score), -i)
            )
            for i, (result, val, counters) in enumerate(replay):
                rec.end_epoch(
                    result,
                    val=val,
                    counters=counters,
                    weights=best_weights if i == best_epoch else None,
                    metrics={"trial": float(best["number"])},
                )
            rec.history.info["best_trial"] = best
        return rec.history

    # ---------------------------------------------------------------- helpers

    def _ask(self, trial: optuna.Trial) -> tuple[float, str | None]:
        """A trial's lr (and optimizer, when the search has several)."""
        cfg = self.config
        lr = trial.suggest_float("lr", cfg.lr_min, cfg.lr_max, log=True)
        opt_name = (
            trial.suggest_categorical("optimizer", list(cfg.optimizers))
            if cfg.optimizers
            else None
        )
        return lr, opt_name

    def _replay(self, study: optuna.Study, info: dict[str, Any], values: list[float]) -> None:
        """Ask, report and tell one trial of a resumed search as it went the first time: the
        sampler (seeded) proposes what it did then, and ends in the same state.

        Raises:
            ValueError: The sampler proposes another lr (the checkpoint is of another search).
        """
        import optuna

        trial = study.ask()
        lr, opt_name = self._ask(trial)
        if lr != info["lr"] or opt_name != info["optimizer"]:
            raise ValueError(
                f"Static: replaying trial {info['number']} of the checkpoint proposed lr={lr!r} "
                f"({opt_name}), but the checkpoint has lr={info['lr']!r} ({info['optimizer']}): "
                "it is of another search."
            )
        for epoch, value in enumerate(values, start=1):
            trial.report(value, epoch)
        state = optuna.trial.TrialState[info["state"]]
        if state == optuna.trial.TrialState.COMPLETE:
            study.tell(trial, info["best_val_score"])
        else:
            study.tell(trial, state=state)

    def _policy(
        self, lr: float, first: int, per_epoch: int, epochs: int
    ) -> float | Callable[[int], float]:
        """A trial's ``train_epoch`` argument: ``lr``, or the schedule's lr per step."""
        if self.config.schedule == "constant":
            return lr
        from strategies._schedule import ScheduleConfig

        schedule = ScheduleConfig(kind=self.config.schedule).build(lr)
        return lambda step: schedule((step - first) / per_epoch, float(epochs))

    def _sampler(self, task_seed: int) -> optuna.samplers.BaseSampler:
        import optuna

        cfg = self.config
        seed = cfg.seed * 1_000_003 + task_seed
        if cfg.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(4, cfg.n_trials))
        if cfg.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(4, cfg.n_trials))
        if cfg.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        # random, and grid: the points are enqueued (see `_grid`); optuna's GridSampler calls
        # study.stop() when the grid is exhausted, which the ask/tell interface does not allow
        return optuna.samplers.RandomSampler(seed=seed)

    def _grid(self) -> list[float]:
        """``n_trials`` lrs, log-spaced from ``lr_min`` to ``lr_max``."""
        cfg = self.config
        n = cfg.n_trials
        lo, hi = math.log10(cfg.lr_min), math.log10(cfg.lr_max)
        grid = [10 ** (lo + (hi - lo) * i / max(n - 1, 1)) for i in range(n)]
        return [min(max(v, cfg.lr_min), cfg.lr_max) for v in grid]

    def _pruner(self, epochs: int) -> optuna.pruners.BasePruner:
        import optuna

        if self.config.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
        if self.config.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
        return optuna.pruners.NopPruner()


def _snapshot(state: dict[str, Any] | None, trainer: Trainer) -> Snapshot | None:
    from trainers import Snapshot

    return None if state is None else Snapshot.from_state_dict(state, device=trainer.device)
