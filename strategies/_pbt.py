"""``PBT``: Population Based Training (Jaderberg et al., 2017) inside one process."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from hpo._validation import check_choice, check_lr_bounds, check_range, check_type
from strategies._util import finite_or_worst, format_hyperparameters
from trainers import make_population

if TYPE_CHECKING:
    import optuna

    from trainers import Counters, EpochResult, EvalResult, Snapshot, Trainer

#: A search space: name -> (low, high, log-scale).
Space = Mapping[str, tuple[float, float, bool]]
HYPERPARAMETERS = ("lr", "momentum", "weight_decay")


class Member(Protocol):
    """What PBT needs of a population member (a trainer, or the paper's toy worker)."""

    def hyperparameters(self) -> dict[str, float]:
        """The member's current hyperparameters."""
        ...

    def set_hyperparameters(self, values: Mapping[str, float]) -> None:
        """Set the member's hyperparameters."""
        ...

    def copy_from(self, other: Any) -> None:
        """Become an exact copy of ``other`` (weights, optimizer state and hyperparameters)."""
        ...


class Explorer(Protocol):
    """Chooses an exploiting member's new hyperparameters from what the population has seen
    (PB2's GP bandit); PBT itself perturbs at random and needs none."""

    def observe(self, round_: int, scores: Sequence[float]) -> None:
        """The members' scores at the end of a round (before exploit)."""
        ...

    def explore(
        self, values: Mapping[str, float], source_score: float, rng: np.random.Generator
    ) -> tuple[dict[str, float], tuple[str, ...]]:
        """New values for a member that copied a source with ``values`` and ``source_score``."""
        ...

    def restart(
        self, round_: int, hyperparameters: Sequence[Mapping[str, float]], scores: Sequence[float]
    ) -> None:
        """Each member's values and score as the next round starts (after exploit)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what ``state_dict`` returned."""
        ...


@dataclass(frozen=True)
class LineageEvent:
    """One exploit-and-explore step: ``member`` took ``source``'s state and new values."""

    epoch: int
    member: int
    source: int
    member_score: float  # the metric, negated when it is minimised: higher is better
    source_score: float
    hyperparameters: dict[str, float]
    resampled: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PopulationConfig:
    """What PBT and PB2 share: the population, its rhythm and what it tunes.

    Args:
        population: Members trained side by side, >= 2.
        interval: Epochs between exploit/explore steps, >= 1.
        quantile: Fraction of the population in the bottom (and top) group, in (0, 0.5].
            Ray Tune: 0.25; the lr-sweep seed describes 20 %.
        lr_min: Lower end of the log-uniform lr range, > 0.
        lr_max: Upper end, > ``lr_min``.
        hyperparameters: What is tuned: ``lr`` and optionally ``momentum`` (optimizers that
            have it: momentum, nesterov, rmsprop) and ``weight_decay``.
        seed: Seeds initial values, partners and perturbations (with the task's seed).
        batched: Train the members as one batched computation (``trainers.Population``) when
            the architecture allows, else one after another (logged once). The two agree to
            float rounding; ``False`` always trains them one after another.
    """

    population: int = 8
    interval: int = 2
    quantile: float = 0.25  # Ray Tune's quantile_fraction
    lr_min: float = 1e-4
    lr_max: float = 1.0
    hyperparameters: tuple[str, ...] = ("lr",)
    seed: int = 0
    batched: bool = True

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "population", self.population, 2, integer=True)
        check_range(owner, "interval", self.interval, 1, integer=True)
        check_range(owner, "quantile", self.quantile, 0.0, 0.5, low_closed=False)
        check_lr_bounds(owner, self.lr_min, self.lr_max)
        object.__setattr__(self, "hyperparameters", tuple(self.hyperparameters))
        if "lr" not in self.hyperparameters:
            raise ValueError(f"{owner}.`hyperparameters` must include 'lr'.")
        for name in self.hyperparameters:
            check_choice(owner, "hyperparameters", name, HYPERPARAMETERS)
        check_range(owner, "seed", self.seed, 0, integer=True)
        check_type(owner, "batched", self.batched, bool)

    def space(self) -> dict[str, tuple[float, float, bool]]:
        """The search space of the tuned hyperparameters."""
        full = {
            "lr": (self.lr_min, self.lr_max, True),
            "momentum": (0.5, 0.99, False),
            "weight_decay": (1e-6, 1e-2, True),
        }
        return {name: full[name] for name in self.hyperparameters}


@dataclass(frozen=True, kw_only=True)
class PBTConfig(PopulationConfig):
    """Configuration of ``PBT``; defaults as Ray Tune's ``PopulationBasedTraining``.

    Args:
        resample_probability: Chance that explore redraws a hyperparameter from its initial
            distribution instead of perturbing it, in [0, 1].
        factors: Explore multiplies a hyperparameter by one of these, chosen uniformly.
        population, interval, quantile, lr_min, lr_max, hyperparameters, seed, batched: As in
            ``PopulationConfig``.
    """

    resample_probability: float = 0.25  # Ray Tune's resample_probability
    factors: tuple[float, float] = (1.2, 0.8)  # Ray Tune's perturbation_factors

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = "PBTConfig"
        check_range(owner, "resample_probability", self.resample_probability, 0.0, 1.0)
        object.__setattr__(self, "factors", tuple(self.factors))
        if not self.factors:
            raise ValueError(f"{owner}.`factors` must not be empty.")
        for f in self.factors:
            check_range(owner, "factors", f, 0.0, low_closed=False)


class PBT(BaseStrategy):
    r"""Population Based Training in one process.

    ``population`` trainers share the dataset tensors and train side by side, each with its own
    hyperparameters. Every ``interval`` epochs the members are ranked by validation score (the
    task's metric, in its direction);
    each member of the bottom ``quantile`` copies the weights, optimizer state and
    hyperparameters of a random member of the top ``quantile`` (*exploit*, through
    ``snapshot()`` / ``restore()``), then *explores*: each hyperparameter is redrawn from its
    initial distribution with probability ``resample_probability``, else multiplied by a random
    element of ``factors`` (clipped to its range). The group size is
    :math:`\min(\lceil K q \rceil, \lfloor K/2 \rfloor)`, as in Ray Tune.

    The kept trajectory is, at each epoch, the member with the best validation accuracy; the
    cost (``spent_steps``) is the whole population's. ``history.info["lineage"]`` lists every
    exploit step (who copied whom, with which new values).

    Example:
        >>> import hpo
        >>> from strategies import PBT
        >>> h = hpo.run(hpo.testing.boring_task(epochs=2), PBT(population=3, interval=1),
        ...             tracking=False)
        >>> h.final.spent_steps == 3 * h.final.steps, len(h.info["lineage"]) >= 1
        (True, True)
    """

    name: ClassVar[str] = "pbt"
    config_class: ClassVar[type] = PBTConfig
    config: Any  # PBTConfig (a PopulationConfig in subclasses)
    checkpointing: ClassVar[bool] = True

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> PBT:
        """Population (4..16), interval (1..5 epochs), quantile and resample probability."""
        return cls(
            population=trial.suggest_int("population", 4, 16),
            interval=trial.suggest_int("interval", 1, 5),
            quantile=trial.suggest_float("quantile", 0.1, 0.5),
            resample_probability=trial.suggest_float("resample_probability", 0.0, 0.5),
        )

    # ---------------------------------------------------------------- the PBT rule

    def exploit_and_explore(
        self,
        members: Sequence[Member],
        scores: Sequence[float],
        rng: np.random.Generator,
        space: Space,
        *,
        epoch: int = 0,
        explorer: Explorer | None = None,
    ) -> list[LineageEvent]:
        """One PBT step over any members (the strategy's trainers or the paper's toy workers).

        Args:
            members: The population.
            scores: Each member's score, higher is better (NaN ranks last).
            rng: The random stream of partners and perturbations.
            space: The hyperparameters' ranges (explore's clip bounds and resampling law).
            epoch: Stamped on the lineage events.
            explorer: Chooses each exploiting member's new values (PB2's GP bandit); ``None``:
                PBT's random perturbation (``explore``).

        Returns:
            One event per member that exploited another.
        """
        k = len(members)
        n = min(math.ceil(k * self.config.quantile), k // 2)
        if n == 0:
            return []
        safe = [finite_or_worst(s) for s in scores]
        order = sorted(range(k), key=lambda i: (safe[i], -i))  # worst first, ties: later worse
        bottom, top = order[:n], order[-n:]
        events = []
        for loser in bottom:
            winner = int(rng.choice(top))
            members[loser].copy_from(members[winner])
            source = members[winner].hyperparameters()
            if explorer is None:
                values, resampled = self.explore(source, rng, space)
            else:
                values, resampled = explorer.explore(source, safe[winner], rng)
            members[loser].set_hyperparameters(values)
            events.append(
                LineageEvent(
                    epoch, loser, winner, scores[loser], scores[winner], values, resampled
                )
            )
        return events

    def explore(
        self, values: Mapping[str, float], rng: np.random.Generator, space: Space
    ) -> tuple[dict[str, float], tuple[str, ...]]:
        """Perturb (x factor) or resample each hyperparameter of ``space``; clip to its range."""
        out, resampled = dict(values), []
        for name, (low, high, log) in space.items():
            if rng.random() < self.config.resample_probability:
                out[name] = _draw(rng, low, high, log)
                resampled.append(name)
            else:
                factor = self.config.factors[int(rng.integers(len(self.config.factors)))]
                out[name] = min(max(values[name] * factor, low), high)
        return out, tuple(resampled)

    def make_explorer(self, space: Space) -> Explorer | None:
        """The explore step's model for one run: none for PBT (random perturbation)."""
        return None

    # ---------------------------------------------------------------- the strategy

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        cfg = self.config
        space = cfg.space()
        for name in space:
            if name != "lr" and name not in trainer.hyperparameters():
                raise ValueError(
                    f"PBT cannot tune {name!r}: the optimizer "
                    f"{type(trainer.optimizer).__name__} has no such hyperparameter."
                )
        rng = np.random.default_rng([cfg.seed, trainer.seed])
        trainers = [trainer] + [
            trainer.clone(seed=trainer.seed * 1000 + i, reinitialize=True)
            for i in range(1, cfg.population)
        ]
        members = [_TrainerMember(t) for t in trainers]
        population = make_population(trainers, batched=cfg.batched)
        for m in members:
            m.set_hyperparameters(
                {n: _draw(rng, lo, hi, log) for n, (lo, hi, log) in space.items()}
            )
        explorer = self.make_explorer(space)

        def spent() -> Counters:
            from trainers import Counters

            total = Counters()
            for t in trainers:
                total.steps += t.spent.steps
                total.examples += t.spent.examples
                total.epochs += t.spent.epochs
                total.seconds += t.spent.seconds
            return total

        lineage: list[dict[str, Any]] = []
        metric = trainer.metric
        with Recorder(self, trainer, budget, callbacks, spent=spent) as rec:
            epoch = 0
            if rec.resumed is not None:  # the recorder put back trainers[0]; the rest is ours
                saved = rec.resumed
                rng.bit_generator.state = saved["rng"]
                for t, state in zip(trainers[1:], saved["members"]):
                    t.load_state_dict(state)
                epoch, lineage = saved["epoch"], list(saved["lineage"])
                rec.trainer = trainers[saved["lead"]]
                if explorer is not None:
                    explorer.load_state_dict(saved["explorer"])

            def state() -> dict[str, Any]:
                return {
                    "rng": rng.bit_generator.state,
                    "members": [t.state_dict() for t in trainers[1:]],
                    "epoch": epoch,
                    "lineage": lineage,
                    "lead": trainers.index(rec.trainer),
                    "explorer": None if explorer is None else explorer.state_dict(),
                }

            while not rec.done:
                epoch += 1
                results: list[EpochResult] = population.train_epoch()
                vals: list[EvalResult | None] = [
                    None if r.diverged else v for r, v in zip(results, population.evaluate())
                ]
                scores = [math.nan if v is None else v.score for v in vals]
                ranks = [metric.signed(s) for s in scores]  # higher is better, NaN stays NaN
                lead = max(range(len(trainers)), key=lambda i: (finite_or_worst(ranks[i]), -i))
                # every member diverged: no score to average (np.nanmean would warn)
                scored = any(math.isfinite(s) for s in scores)
                key = metric.key
                worst = min(ranks, key=finite_or_worst) if scored else math.nan
                mean = float(np.nanmean(scores)) if scored else math.nan
                metrics = {
                    f"population_val_{key}_mean": mean,
                    f"population_val_{key}_worst": metric.signed(worst),
                    "population_diverged": float(sum(v is None for v in vals)),
                    "lead_member": float(lead),
                }
                for i, t in enumerate(trainers):
                    metrics[f"member_{i}_lr"] = t.lr
                    metrics[f"member_{i}_val_{key}"] = scores[i]
                rec.trainer = trainers[lead]  # the kept trajectory is the leading member's
                rec.end_epoch(results[lead], val=vals[lead], metrics=metrics)
                if epoch % cfg.interval or rec.done:
                    rec.checkpoint(state)
                    continue
                round_ = epoch // cfg.interval
                if explorer is not None:
                    explorer.observe(round_, ranks)
                events = self.exploit_and_explore(
                    members, ranks, rng, space, epoch=epoch, explorer=explorer
                )
                if explorer is not None:  # a member that copied starts from its source's score
                    after = list(ranks)
                    for ev in events:
                        after[ev.member] = ranks[ev.source]
                    explorer.restart(round_, [m.hyperparameters() for m in members], after)
                for ev in events:
                    # a copy would otherwise follow its source's data order from now on
                    trainers[ev.member].reseed(int(rng.integers(2**31 - 1)))
                    lineage.append(ev.__dict__)
                    rec.decide(
                        ev.hyperparameters["lr"],
                        True,
                        f"member {ev.member} (val {metric.format(metric.signed(ev.member_score))})"
                        f" <- member {ev.source} "
                        f"(val {metric.format(metric.signed(ev.source_score))}), "
                        + format_hyperparameters(ev.hyperparameters)
                        + (f" (resampled {', '.join(ev.resampled)})" if ev.resampled else ""),
                        member=ev.member,
                        source=ev.source,
                    )
                rec.checkpoint(state)
            rec.history.info["lineage"] = lineage
            rec.history.info["members"] = [m.hyperparameters() for m in members]
            rec.history.info["best_member"] = trainers.index(rec.trainer)
        return rec.history


class _TrainerMember:
    """A trainer seen as a PBT member."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self._buffer: Snapshot | None = None

    def hyperparameters(self) -> dict[str, float]:
        hp = self.trainer.hyperparameters()
        out = {"lr": float(hp["lr"])}
        for name in ("momentum", "weight_decay"):
            if name in hp:
                out[name] = float(hp[name])
        return out

    def set_hyperparameters(self, values: Mapping[str, float]) -> None:
        self.trainer.set_hyperparameters(**values)

    def copy_from(self, other: _TrainerMember) -> None:
        self._buffer = other.trainer.snapshot(out=self._buffer)
        self.trainer.restore(self._buffer)


def _draw(rng: np.random.Generator, low: float, high: float, log: bool) -> float:
    if log:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))
