"""``RandomSearch``: every epoch, try N random learning rates from one snapshot; keep the best."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from hpo._validation import check_lr_bounds, check_range, check_type
from trainers import Branches

if TYPE_CHECKING:
    import optuna

    from trainers import Trainer


@dataclass(frozen=True, kw_only=True)
class RandomSearchConfig:
    """Configuration of ``RandomSearch``.

    Args:
        n_candidates: Learning rates tried per epoch, >= 1. Hyperdyn's "random 5x" baseline
            tries 5x the 2 branches Hyperdyn trains per epoch: 10.
        lr_min: Lower end of the log-uniform lr range, > 0.
        lr_max: Upper end, > ``lr_min``.
        seed: Seeds the lr draws (together with the task's seed).
        batched: Train the epoch's branches as one batched computation
            (``trainers.Population``) when the architecture allows, else one after another
            (logged once). The two agree to float rounding; ``False`` always trains them one
            after another.
    """

    n_candidates: int = 10  # Hyperdyn §4 "random 5x": 5 x 2 branches per epoch
    lr_min: float = 1e-4  # Hyperdyn's default search space, 1e-4..1
    lr_max: float = 1.0
    seed: int = 0
    batched: bool = True

    def __post_init__(self) -> None:
        owner = "RandomSearchConfig"
        check_range(owner, "n_candidates", self.n_candidates, 1, integer=True)
        check_lr_bounds(owner, self.lr_min, self.lr_max)
        check_range(owner, "seed", self.seed, 0, integer=True)
        check_type(owner, "batched", self.batched, bool)


class RandomSearch(BaseStrategy):
    r"""Online random search: at every epoch, train ``n_candidates`` branches from one snapshot,
    each at an lr drawn log-uniformly from ``[lr_min, lr_max]``, and continue from the branch
    with the best validation accuracy.

    Every branch is real work: an epoch costs ``n_candidates`` epochs of compute (``spent_steps``
    in the history). This is Hyperdyn's "random 5x" baseline with ``n_candidates = 10``. "Best"
    follows the task's metric and its direction.

    Example:
        >>> import hpo
        >>> from strategies import RandomSearch
        >>> h = hpo.run(hpo.testing.boring_task(epochs=2), RandomSearch(n_candidates=3),
        ...             tracking=False)
        >>> h.final.spent_steps == 3 * h.final.steps
        True
    """

    name: ClassVar[str] = "random-search"
    config_class: ClassVar[type] = RandomSearchConfig
    checkpointing: ClassVar[bool] = True
    config: RandomSearchConfig

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> RandomSearch:
        """The number of candidates (2..16) and the lr range's ends."""
        return cls(
            n_candidates=trial.suggest_int("n_candidates", 2, 16),
            lr_min=trial.suggest_float("lr_min", 1e-6, 1e-3, log=True),
            lr_max=trial.suggest_float("lr_max", 1e-2, 10.0, log=True),
        )

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, trainer.seed])
        lo, hi = math.log(cfg.lr_min), math.log(cfg.lr_max)
        metric = trainer.metric
        branches = Branches(trainer, cfg.n_candidates, batched=cfg.batched)
        with Recorder(self, trainer, budget, callbacks) as rec:
            if rec.resumed is not None:
                rng.bit_generator.state = rec.resumed["rng"]
            while not rec.done:
                lrs = np.exp(rng.uniform(lo, hi, size=cfg.n_candidates)).tolist()
                outcomes = branches.train(lrs)
                vals = [v for _, v in outcomes]
                scored = [i for i, v in enumerate(vals) if v is not None]
                if not scored:  # every branch diverged: keep the last one, recorded as diverged
                    branches.keep(len(lrs) - 1)
                    rec.end_epoch(outcomes[-1][0])
                    rec.checkpoint(lambda: {"rng": rng.bit_generator.state})
                    continue
                # the first of the best, as when the branches were trained one after another
                best_i = max(scored, key=lambda i: (metric.signed(vals[i].score), -i))  # type: ignore[union-attr]
                branches.keep(best_i)
                lr, (result, val) = lrs[best_i], outcomes[best_i]
                assert val is not None
                scores = [v.score for v in vals if v is not None]
                rec.decide(
                    lr,
                    True,
                    f"best of {cfg.n_candidates} random lrs: {lr:.3g} "
                    f"(val {metric.format(val.score)})",
                    candidates=lrs,
                    val_scores=[None if v is None else v.score for v in vals],
                )
                rec.end_epoch(
                    result,
                    val=val,
                    metrics={
                        f"candidates_val_{metric.key}_mean": float(np.mean(scores)),
                        "candidates_diverged": float(len(lrs) - len(scores)),
                    },
                )
                rec.checkpoint(lambda: {"rng": rng.bit_generator.state})
        return rec.history
