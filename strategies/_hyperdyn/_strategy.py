"""``Hyperdyn``: per-epoch Bayesian optimisation of the learning rate with a wait-and-watch test
(the seed ``004_929f4831ab1459e0.txt``; ``docs/algorithms.md`` §1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from hpo._recorder import nan_eval
from hpo._validation import check_choice, check_lr_bounds, check_range
from strategies._hyperdyn._model import DTYPE
from strategies._hyperdyn._model import suggest as bo_suggest
from strategies._hyperdyn._trend import check_accuracy_trend, keep_log_probability
from strategies._util import finite_or_worst
from strategies._util import format_hyperparameters as _fmt

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

    from trainers import EpochResult, EvalResult, Snapshot, Trainer

HYPERPARAMETERS = ("lr", "momentum", "beta1", "beta2")


@dataclass(frozen=True, kw_only=True)
class HyperdynConfig:
    """Configuration of ``Hyperdyn``; the defaults are the paper's.

    Args:
        hyperparameters: What BO tunes: ``("lr",)``; ``("lr", "momentum")`` for SGD with
            momentum (the paper's CIFAR runs); ``("lr", "beta1", "beta2")`` for Adam (§4.1).
        lr_min: Lower end of the lr range (searched on a log scale), > 0.
        lr_max: Upper end, > ``lr_min``.
        momentum_bounds: Range of the momentum coefficient.
        beta1_bounds: Range of Adam's beta1.
        beta2_bounds: Range of Adam's beta2.
        n_random_start: k, the random points of Random-Start (Algorithm 3), >= 1.
        window: Δ of CheckAccuracyTrend, in epochs, >= 1.
        temperature: T of CheckAccuracyTrend, > 0, in ``accuracy_unit``.
        temperature_final: Beyond the paper: the temperature at the last epoch, reached
            geometrically from ``temperature`` (the paper's future work: a temperature that
            changes with the epoch). ``None``: constant (the paper).
        offset: b of CheckAccuracyTrend, >= 0; ``inf`` always switches (epoch-based BO).
        accuracy_unit: The unit of accuracy differences in the trend test: ``percent``
            (percentage points: T = 1 means one point of accuracy) or ``fraction``.
        alpha: α of the time kernel, > 0.
        beta: β of the time kernel, > 0, in epochs.
        learn_time_kernel: Fit α and β with the GP (positive constraints) instead of fixing them.
        q: BO suggestions per epoch, each trained as one more branch (the paper's "parallel
            suggestions" future work); 1 in the paper.
        warm_start_gp: Beyond the paper: start each epoch's GP fit from the previous fit's
            hyperparameters (the paper fits from scratch).
        random_start_outcome: What Random-Start records at t = 0: the validation
            ``accuracy`` (Algorithm 3) or its ``difference`` to the initial weights' accuracy
            (the same quantity as the main loop's observations).
        incumbent: EI's τ: the best outcome of ``all`` observations (the paper) or of the
            ``last-epoch``'s.
        switch_to: When the trend test says switch: continue from the BO ``suggestion``'s
            branch (Algorithm 4, line 12, whatever that branch scored), or from the
            ``better-branch`` of the two (beyond the paper; never takes a branch that did worse
            than keeping the current hyperparameters).
        num_restarts: Restarts of the acquisition optimiser.
        raw_samples: Raw samples of the acquisition optimiser's initialisation.
        seed: Seeds Random-Start, the trend test's draws and the optimiser (with the task's seed).
    """

    hyperparameters: tuple[str, ...] = ("lr",)
    lr_min: float = 1e-4  # the default search space
    lr_max: float = 1.0
    momentum_bounds: tuple[float, float] = (0.0, 0.99)
    beta1_bounds: tuple[float, float] = (0.0, 0.99)
    beta2_bounds: tuple[float, float] = (0.9, 0.9999)
    n_random_start: int = 5  # Hyperdyn §4: "The number of initial search points ... was 5"
    window: int = 4  # Hyperdyn §4: window size 4
    temperature: float = 1.0  # Hyperdyn §4: temperature 1
    temperature_final: float | None = None
    offset: float = 0.01  # Hyperdyn §4: offset 0.01
    accuracy_unit: str = "percent"
    alpha: float = 1.0  # Hyperdyn §2.4
    beta: float = 0.5  # Hyperdyn §2.4, epochs
    learn_time_kernel: bool = False
    q: int = 1
    warm_start_gp: bool = False
    random_start_outcome: str = "accuracy"  # Algorithm 3, line 6
    incumbent: str = "all"
    switch_to: str = "suggestion"  # Algorithm 4, line 12
    num_restarts: int = 8
    raw_samples: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        owner = "HyperdynConfig"
        object.__setattr__(self, "hyperparameters", tuple(self.hyperparameters))
        if not self.hyperparameters or self.hyperparameters[0] != "lr":
            raise ValueError(
                f"{owner}.`hyperparameters` must start with 'lr', but got "
                f"hyperparameters={self.hyperparameters!r}."
            )
        for name in self.hyperparameters:
            check_choice(owner, "hyperparameters", name, HYPERPARAMETERS)
        if len(set(self.hyperparameters)) != len(self.hyperparameters):
            raise ValueError(
                f"{owner}.`hyperparameters` has duplicates: {self.hyperparameters!r}."
            )
        if ("beta1" in self.hyperparameters) != ("beta2" in self.hyperparameters):
            raise ValueError(f"{owner}: tune 'beta1' and 'beta2' together (Adam's betas).")
        check_lr_bounds(owner, self.lr_min, self.lr_max)
        for name in ("momentum_bounds", "beta1_bounds", "beta2_bounds"):
            lo, hi = getattr(self, name)
            object.__setattr__(self, name, (float(lo), float(hi)))
            check_range(owner, name, lo, 0.0, 1.0, high_closed=False)
            check_range(owner, name, hi, 0.0, 1.0, high_closed=False)
            if not lo < hi:
                raise ValueError(
                    f"{owner}.`{name}` must be (low, high) with low < high, "
                    f"but got {name}={(lo, hi)!r}."
                )
        check_range(owner, "n_random_start", self.n_random_start, 1, integer=True)
        check_range(owner, "window", self.window, 1, integer=True)
        check_range(owner, "temperature", self.temperature, 0.0, low_closed=False)
        if self.temperature_final is not None:
            check_range(owner, "temperature_final", self.temperature_final, 0.0, low_closed=False)
        check_range(owner, "offset", self.offset, 0.0)
        check_choice(owner, "accuracy_unit", self.accuracy_unit, ("percent", "fraction"))
        check_range(owner, "alpha", self.alpha, 0.0, low_closed=False)
        check_range(owner, "beta", self.beta, 0.0, low_closed=False)
        check_range(owner, "q", self.q, 1, integer=True)
        check_choice(
            owner, "random_start_outcome", self.random_start_outcome, ("accuracy", "difference")
        )
        check_choice(owner, "incumbent", self.incumbent, ("all", "last-epoch"))
        check_choice(owner, "switch_to", self.switch_to, ("suggestion", "better-branch"))
        check_range(owner, "num_restarts", self.num_restarts, 1, integer=True)
        check_range(owner, "raw_samples", self.raw_samples, 1, integer=True)
        check_range(owner, "seed", self.seed, 0, integer=True)


class Hyperdyn(BaseStrategy):
    r"""Hyperdyn: choose the learning rate (and momentum, or Adam's betas) at every epoch by
    Bayesian optimisation, and switch to a suggestion only when the accuracy trend says so.

    **Random-Start** (Algorithm 3): from the initial weights, train one epoch at each of ``k``
    points drawn uniformly from the search space (lr on a log scale; every candidate from the
    same snapshot) and keep the best; record ``((p_i, 0), val_acc_i)``. That is epoch 1 of the
    kept trajectory.

    **Main loop** (Algorithm 4), at every further epoch ``t``: fit a GP on all observations
    ``D`` (``build_gp``: Matérn-5/2 x the time kernel); maximise (log) EI over the
    hyperparameters with the epoch fixed at ``t``; from one snapshot train one epoch with the
    current :math:`\eta_{t-1}` and one with the suggestion :math:`s_t` and add
    ``((eta, t), val_acc(branch) - acc)`` for both to ``D`` (the GP models the improvement an
    lr gives at epoch ``t``); then **CheckAccuracyTrend** (Algorithm 5) keeps
    :math:`\eta_{t-1}`'s branch with probability
    :math:`\min(1, \exp((y_\tau - y_{\tau-\Delta})/T - b))`, else continues from the
    suggestion's branch. Nothing is retrained: the kept branch's weights are restored.

    Accuracies are fractions everywhere except in the trend test, whose differences are in
    ``accuracy_unit`` (percentage points by default, so the paper's T = 1 is one point).

    **Cost**: every epoch after the first trains ``1 + q`` branches and fits a GP;
    Random-Start trains ``k`` epochs. ``spent_steps`` in the history counts all of it.

    ``offset=inf`` is the paper's greedy "epoch-based BO" baseline (registered as
    ``epoch-bo``).

    Example:
        >>> import hpo
        >>> from strategies import Hyperdyn
        >>> task = hpo.testing.boring_task(epochs=3)
        >>> h = hpo.run(task, Hyperdyn(n_random_start=2), tracking=False)
        >>> h.final.spent_steps == (2 + 2 * 2) * (h.final.steps // 3)
        True
    """

    name: ClassVar[str] = "hyperdyn"
    config_class: ClassVar[type] = HyperdynConfig
    config: HyperdynConfig

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> Hyperdyn:
        """The trend test's window, temperature and offset, and k."""
        return cls(
            window=trial.suggest_int("window", 1, 8),
            temperature=trial.suggest_float("temperature", 0.1, 10.0, log=True),
            offset=trial.suggest_float("offset", 1e-3, 1.0, log=True),
            n_random_start=trial.suggest_int("n_random_start", 2, 8),
        )

    # ---------------------------------------------------------------- the search space

    def _bounds(self) -> list[tuple[float, float, bool]]:
        cfg = self.config
        table = {
            "lr": (cfg.lr_min, cfg.lr_max, True),
            "momentum": (*cfg.momentum_bounds, False),
            "beta1": (*cfg.beta1_bounds, False),
            "beta2": (*cfg.beta2_bounds, False),
        }
        return [table[name] for name in cfg.hyperparameters]

    def decode(self, x: Sequence[float]) -> dict[str, float]:
        """Hyperparameter values of a point of the unit cube (lr on a log scale)."""
        out = {}
        for name, xi, (lo, hi, log) in zip(self.config.hyperparameters, x, self._bounds()):
            xi = min(max(float(xi), 0.0), 1.0)
            if log:
                value = math.exp(math.log(lo) + xi * (math.log(hi) - math.log(lo)))
            else:
                value = lo + xi * (hi - lo)
            out[name] = min(max(float(value), lo), hi)  # exact at the bounds
        return out

    def encode(self, values: dict[str, float]) -> list[float]:
        """The point of the unit cube of hyperparameter values."""
        out = []
        for name, (lo, hi, log) in zip(self.config.hyperparameters, self._bounds()):
            v = values[name]
            if log:
                out.append((math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)))
            else:
                out.append((v - lo) / (hi - lo))
        return out

    # ---------------------------------------------------------------- the strategy

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        cfg = self.config
        horizon = float(
            budget.require_epochs(
                type(self).__name__, "the time kernel's horizon and the temperature schedule"
            )
        )
        self._check_optimizer(trainer)
        rng = np.random.default_rng([cfg.seed, trainer.seed])
        d = len(cfg.hyperparameters)
        X: list[list[float]] = []  # observed points: hyperparameters in [0, 1], then t / horizon
        Y: list[float] = []  # outcomes: accuracy differences (fractions)
        T: list[int] = []  # the epoch of each observation
        ys: list[float] = []  # validation accuracy of the kept weights after each epoch
        gp_state: dict[str, torch.Tensor] | None = None
        start: Snapshot | None = None
        branch_snaps: list[Snapshot | None] = [None] * (1 + cfg.q)

        with Recorder(self, trainer, budget, callbacks) as rec:
            # ---------------- Random-Start (Algorithm 3): epoch 1 of the trajectory
            start = trainer.snapshot()
            acc0 = trainer.evaluate().acc if cfg.random_start_outcome == "difference" else 0.0
            best: tuple[int, dict[str, float], EpochResult, EvalResult] | None = None
            best_snap: Snapshot | None = None
            for i in range(cfg.n_random_start):
                x = rng.uniform(size=d).tolist()
                hp = self.decode(x)
                if i:
                    trainer.restore(start)
                result, val = self._train(trainer, hp)
                acc = val.acc if math.isfinite(val.acc) else 0.0
                X.append([*x, 0.0])
                Y.append(acc - acc0)
                T.append(0)
                better = best is None or acc > best[3].acc or not math.isfinite(best[3].acc)
                rec.decide(
                    hp["lr"],
                    False,
                    f"random start {i + 1}/{cfg.n_random_start}: "
                    + _fmt(hp)
                    + f" -> val {val.acc:.1%}",
                    hyperparameters=hp,
                )
                if better:
                    best = (i, hp, result, val)
                    best_snap = trainer.snapshot(out=best_snap)
            if best is None or best_snap is None:  # pragma: no cover - k >= 1 is validated
                raise RuntimeError("Random-Start trained no candidate.")
            trainer.restore(best_snap)
            eta, result, val = best[1], best[2], best[3]
            self._apply(trainer, eta)
            ys.append(val.acc)
            rec.end_epoch(result, val=val, metrics={f"hp_{k}": v for k, v in eta.items()})
            if result.diverged or not math.isfinite(val.acc):
                return rec.history

            # ---------------- Main loop (Algorithm 4)
            t = 1
            while not rec.done:
                acc = ys[-1]
                t_unit = t / horizon
                best_f = self._incumbent(Y, T)
                sugg = bo_suggest(
                    torch.tensor(X, dtype=DTYPE),
                    torch.tensor(Y, dtype=DTYPE).unsqueeze(-1),
                    t_unit,
                    time_scale=horizon,
                    best_f=best_f,
                    q=cfg.q,
                    alpha=cfg.alpha,
                    beta=cfg.beta,
                    learn_time_kernel=cfg.learn_time_kernel,
                    warm_state=gp_state if cfg.warm_start_gp else None,
                    num_restarts=cfg.num_restarts,
                    raw_samples=cfg.raw_samples,
                    seed=int(rng.integers(2**31 - 1)),
                )
                gp_state = sugg.state
                candidates = [eta] + [self.decode(row.tolist()) for row in sugg.x]

                # train every branch from one snapshot
                start = trainer.snapshot(out=start)
                outcomes: list[tuple[EpochResult, EvalResult]] = []
                for j, hp in enumerate(candidates):
                    if j:
                        trainer.restore(start)
                    outcomes.append(self._train(trainer, hp))
                    if j < len(candidates) - 1:
                        branch_snaps[j] = trainer.snapshot(out=branch_snaps[j])
                for hp, (_, v) in zip(candidates, outcomes):
                    X.append([*self.encode(hp), t_unit])
                    Y.append((v.acc if math.isfinite(v.acc) else 0.0) - acc)
                    T.append(t)

                # CheckAccuracyTrend (Algorithm 5) on the kept trajectory so far
                temp = self._temperature(t, int(horizon))
                log_p = keep_log_probability(
                    ys,
                    window=cfg.window,
                    temperature=temp,
                    offset=cfg.offset,
                    unit=cfg.accuracy_unit,
                )
                keep = check_accuracy_trend(log_p, float(rng.random()))
                if keep:
                    chosen = 0
                else:  # the suggestion's branch (q > 1: the best of them by val accuracy)
                    first = 0 if cfg.switch_to == "better-branch" else 1
                    chosen = max(
                        range(first, len(candidates)),
                        key=lambda j: (finite_or_worst(outcomes[j][1].acc), -j),
                    )
                if chosen != len(candidates) - 1:
                    trainer.restore(branch_snaps[chosen])  # type: ignore[arg-type]
                eta = candidates[chosen]
                self._apply(trainer, eta)
                result, val = outcomes[chosen]
                ys.append(val.acc)
                p = math.exp(log_p)
                s_lr = candidates[1]["lr"]
                rec.decide(
                    eta["lr"],
                    chosen != 0,
                    (f"kept {_fmt(candidates[0])}" if chosen == 0 else f"switched to {_fmt(eta)}")
                    + f" (keep p={p:.2f}; BO suggested {_fmt(candidates[1])}, "
                    f"val {outcomes[1][1].acc:.1%} vs {outcomes[0][1].acc:.1%})",
                    keep_probability=p,
                    suggestion=candidates[1],
                )
                metrics = {
                    "bo_suggestion": s_lr,
                    "bo_log_ei": sugg.log_ei,
                    "bo_ei": math.exp(sugg.log_ei) if sugg.log_ei < 700 else math.inf,
                    "kept": float(chosen == 0),
                    "trend_keep": float(keep),
                    "keep_probability": p,
                    "temperature": temp,
                    "val_acc_current_branch": outcomes[0][1].acc,
                    "val_acc_suggestion_branch": outcomes[1][1].acc,
                    "gp_fit_seconds": sugg.fit_seconds,
                    "acq_seconds": sugg.acq_seconds,
                    "gp_warnings": float(sugg.warnings),
                    "observations": float(len(Y) - len(candidates)),
                    **{f"hp_{k}": v for k, v in eta.items()},
                }
                rec.end_epoch(result, val=val, metrics=metrics)
                t += 1
        return rec.history

    # ---------------------------------------------------------------- helpers

    def _check_optimizer(self, trainer: Trainer) -> None:
        hp = trainer.hyperparameters()
        needs = {"momentum": "momentum", "beta1": "betas", "beta2": "betas"}
        for name in self.config.hyperparameters[1:]:
            if needs[name] not in hp:
                raise ValueError(
                    f"{type(self).__name__} cannot tune {name!r}: the optimizer "
                    f"{type(trainer.optimizer).__name__} has no {needs[name]!r} "
                    f"(use 'momentum'/'nesterov' for momentum, 'adam'/'adamw' for the betas)."
                )

    def _apply(self, trainer: Trainer, hp: dict[str, float]) -> None:
        """Set the non-lr hyperparameters on the optimizer (the lr is set per epoch)."""
        if "momentum" in hp:
            trainer.set_hyperparameters(momentum=hp["momentum"])
        if "beta1" in hp:
            trainer.set_hyperparameters(betas=(hp["beta1"], hp["beta2"]))

    def _train(self, trainer: Trainer, hp: dict[str, float]) -> tuple[EpochResult, EvalResult]:
        self._apply(trainer, hp)
        result = trainer.train_epoch(hp["lr"])
        val = trainer.evaluate() if not result.diverged else nan_eval()
        return result, val

    def _incumbent(self, Y: list[float], T: list[int]) -> float:
        if self.config.incumbent == "all" or not T:
            return max(Y)
        last = max(T)
        return max(y for y, t in zip(Y, T) if t == last)

    def _temperature(self, t: int, epochs: int) -> float:
        cfg = self.config
        if cfg.temperature_final is None or epochs <= 2:
            return cfg.temperature
        frac = min(max((t - 1) / (epochs - 2), 0.0), 1.0)
        return cfg.temperature * (cfg.temperature_final / cfg.temperature) ** frac

    def plots(self, history: History) -> dict[str, Figure]:
        """The lr trajectory (the paper's Fig. 2a), with the BO suggestions and switches."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.subplots()
        epochs = history.column("epoch")
        ax.plot(epochs, history.column("lr"), marker="o", ms=3, label="lr kept")
        sugg = history.column("bo_suggestion")
        ax.scatter(epochs, sugg, marker="x", color="C1", label="BO suggestion", zorder=3)
        switched = [e for e, k in zip(epochs, history.column("kept")) if k == 0.0]
        lrs = dict(zip(epochs, history.column("lr")))
        ax.scatter(
            switched,
            [lrs[e] for e in switched],
            s=60,
            facecolors="none",
            edgecolors="C3",
            label="switched",
            zorder=4,
        )
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.set_title(f"{history.strategy}: learning-rate trajectory")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        return {"lr_trajectory": fig}


@dataclass(frozen=True, kw_only=True)
class EpochBOConfig(HyperdynConfig):
    """``HyperdynConfig`` with ``offset = inf``: always switch to the BO suggestion."""

    offset: float = math.inf


class EpochBO(Hyperdyn):
    """The paper's greedy "epoch-based BO" baseline: Hyperdyn with ``offset = inf``, so
    CheckAccuracyTrend never keeps and every epoch continues from the BO suggestion's branch."""

    name: ClassVar[str] = "epoch-bo"
    config_class: ClassVar[type] = EpochBOConfig
    config: EpochBOConfig

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> EpochBO:
        """k, the Random-Start points."""
        return cls(n_random_start=trial.suggest_int("n_random_start", 2, 8))
