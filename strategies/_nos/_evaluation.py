"""The NOS surrogate evaluation of one candidate optimizer: an lr sweep, then a final run; and
the pruner that stops losers with the paper's thresholds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import optuna

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from hpo._validation import check_range
from strategies._nos._ops import base_lr
from strategies._nos._optimizer import GraphOptimizer
from strategies._nos._space import Genome

if TYPE_CHECKING:
    from trainers import Trainer

PAPER_SWEEP = (10.0, 1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5)


@dataclass(frozen=True, kw_only=True)
class NOSEvaluationConfig:
    """Configuration of ``NOSEvaluation``.

    Args:
        genome: The candidate, as ``Genome.to_json()``.
        equation: Its readable form (filled in from ``genome``; logged to MLflow).
        sweep_lrs: The peak lrs tried before the final run (the paper's 7, 10 .. 1e-5).
        sweep_epochs: Epochs of each sweep run (the paper: 800 steps, i.e. the warm-up only).
        sweep_stop: From this epoch on (0-based), a sweep run stops once its training
            accuracy is below ``sweep_threshold`` (the paper: 2).
        sweep_threshold: The sweep's bar (the paper: 0.25).
        warmup: The one-cycle schedule's warm-up, a fraction of the final run (the paper: 0.1).
        seed: Seeds the dropout ops of the graph.
    """

    genome: str
    equation: str = ""
    sweep_lrs: tuple[float, ...] = PAPER_SWEEP
    sweep_epochs: int = 2
    sweep_stop: int = 2
    sweep_threshold: float = 0.25
    warmup: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        owner = "NOSEvaluationConfig"
        try:
            genome = Genome.from_json(self.genome)
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{owner}.`genome` must be a Genome's JSON: {err}") from err
        object.__setattr__(self, "equation", genome.equation())
        object.__setattr__(self, "sweep_lrs", tuple(self.sweep_lrs))
        if not self.sweep_lrs:
            raise ValueError(f"{owner}.`sweep_lrs` must not be empty.")
        for lr in self.sweep_lrs:
            check_range(owner, "sweep_lrs", lr, 0.0, low_closed=False)
        check_range(owner, "sweep_epochs", self.sweep_epochs, 1, integer=True)
        check_range(owner, "sweep_stop", self.sweep_stop, 0, integer=True)
        check_range(owner, "sweep_threshold", self.sweep_threshold, 0.0, 1.0)
        check_range(owner, "warmup", self.warmup, 0.0, 1.0, high_closed=False)
        check_range(owner, "seed", self.seed, 0, integer=True)


class NOSEvaluation(BaseStrategy):
    r"""Train with a candidate optimizer as the NOS surrogate evaluation does.

    1. **lr sweep**: for each peak lr of ``sweep_lrs``, from the same initial weights, train
       ``sweep_epochs`` epochs with the candidate (``GraphOptimizer``) under the one-cycle
       schedule of the *final* run's length (so the sweep covers its warm-up, as in the paper);
       a run stops early once its training accuracy is below ``sweep_threshold`` from epoch
       ``sweep_stop`` on, or diverges. Each lr's best training accuracy is recorded as a decision
       carrying ``report=``: through ``hpo.objective`` it reaches the trial, where ``NOSPruner``
       prunes the candidate if none reached the threshold (the paper's early stopping 1).
    2. **final run** at the lr with the best training accuracy, for the budget's epochs;
       ``hpo.objective(..., report="train_acc")`` reports its training accuracy each epoch, and
       ``NOSPruner`` stops it once that falls below 40 % after the warm-up epochs (early
       stopping 2). The fitness is its best validation accuracy.

    All sweep epochs count as spent steps.
    """

    name: ClassVar[str] = "nos-evaluation"
    config_class: ClassVar[type] = NOSEvaluationConfig
    config: NOSEvaluationConfig
    checkpointing: ClassVar[bool] = True

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        cfg = self.config
        epochs = budget.require_epochs("NOSEvaluation", "the length of its lr schedule")
        genome = Genome.from_json(cfg.genome)
        per_epoch = trainer.steps_per_epoch
        total = epochs * per_epoch
        warmup = max(1, round(cfg.warmup * total))
        multipliers = base_lr(np.arange(total + per_epoch), total, warmup)
        initial = trainer.snapshot()

        def use(lr: float) -> None:
            trainer.set_optimizer(
                GraphOptimizer(
                    trainer.model.parameters(),
                    genome,
                    lr,
                    total_steps=total,
                    warmup_steps=warmup,
                    seed=cfg.seed,
                )
            )

        def schedule(peak: float, start: int):  # noqa: ANN202
            return lambda step: peak * float(multipliers[min(step - start, len(multipliers) - 1)])

        # the paper's bars are training accuracies: with another metric the sweep only ranks
        metric = trainer.metric
        bars = metric.key == "acc"
        base_optimizer = trainer.optimizer
        with Recorder(self, trainer, budget, callbacks) as rec:
            # a resumed run: the sweep goes on after its last lr, or the final run after its
            # last epoch (its optimizer is ours to put back: the recorder restored the weights)
            saved = rec.resumed or {"phase": "sweep", "swept": 0, "best_lr": math.nan}
            best_lr = float(saved["best_lr"])
            best = -math.inf if not math.isfinite(best_lr) else float(saved["best"])
            for done, lr in enumerate(cfg.sweep_lrs):
                if saved["phase"] == "final" or done < saved["swept"]:
                    continue
                trainer.restore(initial)
                use(lr)
                lr_fn = schedule(lr, trainer.counters.steps)
                signed = -math.inf
                for epoch in range(cfg.sweep_epochs):
                    result = trainer.train_epoch(lr_fn)
                    if result.diverged or not math.isfinite(result.score):
                        signed = -math.inf
                        break
                    signed = max(signed, metric.signed(result.score))
                    if bars and epoch >= cfg.sweep_stop and result.score < cfg.sweep_threshold:
                        break
                reached = metric.signed(signed) if math.isfinite(signed) else math.nan
                if signed > best:
                    best_lr, best = lr, signed
                rec.decide(
                    lr,
                    math.isfinite(signed) and (not bars or reached >= cfg.sweep_threshold),
                    f"sweep lr {lr:g}: best train {metric.key} "
                    + (metric.format(reached) if math.isfinite(reached) else "diverged"),
                    report=reached if math.isfinite(reached) else (0.0 if bars else math.nan),
                )
                if rec.checkpointing:  # an lr of the sweep is done: back to the start, save
                    trainer.set_optimizer(base_optimizer)
                    trainer.restore(initial)
                    rec.checkpoint(
                        {"phase": "sweep", "swept": done + 1, "best_lr": best_lr, "best": best}
                    )
            rec.history.info["sweep_best_lr"] = best_lr
            if not math.isfinite(best):
                rec.history.status = "diverged"
                rec.history.diverged_reason = "non-finite loss at every lr of the sweep"
                return rec.history
            if saved["phase"] == "final":
                use(best_lr)
                trainer.optimizer.load_state_dict(saved["optimizer"])
                start = int(saved["start"])
            else:
                trainer.restore(initial)
                use(best_lr)
                start = trainer.counters.steps
            lr_fn = schedule(best_lr, start)
            # at least one epoch, even when the sweep used the budget up
            trained = saved["phase"] == "final"
            while not (trained and rec.done):
                trained = True
                result = trainer.train_epoch(lr_fn)
                rec.end_epoch(result, metrics={"sweep_lr": best_lr})
                rec.checkpoint(
                    lambda: {
                        "phase": "final",
                        "best_lr": best_lr,
                        "best": best,
                        "start": start,
                        "optimizer": trainer.optimizer.state_dict(),
                    }
                )
        return rec.history


class NOSPruner(optuna.pruners.BasePruner):
    """The paper's early stopping as an Optuna pruner, for trials run by ``NOSEvaluation``.

    Intermediate values 0 .. ``sweep_steps - 1`` are the sweep's best training accuracies: the
    trial is pruned at the last of them if none reached ``sweep_threshold`` (25 %). Later values
    are the final run's training accuracy per epoch: the trial is pruned once one falls below
    ``final_threshold`` (40 %) after ``final_warmup`` epochs (the paper: from the 5th epoch).

    Args:
        sweep_steps: How many sweep values come first (the number of sweep lrs).
        sweep_threshold: The sweep's bar.
        final_threshold: The final run's bar.
        final_warmup: Final-run epochs exempt from the bar.
    """

    def __init__(
        self,
        *,
        sweep_steps: int = len(PAPER_SWEEP),
        sweep_threshold: float = 0.25,
        final_threshold: float = 0.40,
        final_warmup: int = 4,
    ) -> None:
        check_range("NOSPruner", "sweep_steps", sweep_steps, 0, integer=True)
        check_range("NOSPruner", "sweep_threshold", sweep_threshold, 0.0, 1.0)
        check_range("NOSPruner", "final_threshold", final_threshold, 0.0, 1.0)
        check_range("NOSPruner", "final_warmup", final_warmup, 0, integer=True)
        self.sweep_steps = sweep_steps
        self.sweep_threshold = sweep_threshold
        self.final_threshold = final_threshold
        self.final_warmup = final_warmup

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        values = trial.intermediate_values
        if step < self.sweep_steps:
            if step == self.sweep_steps - 1:
                sweep = [values[s] for s in range(self.sweep_steps) if s in values]
                return not sweep or max(sweep) < self.sweep_threshold
            return False
        epoch = step - self.sweep_steps  # 1-based epoch of the final run
        return epoch > self.final_warmup and values[step] < self.final_threshold
