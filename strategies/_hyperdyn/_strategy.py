"""``Hyperdyn``: per-epoch Bayesian optimisation of the learning rate with a wait-and-watch test
(the seed ``004_929f4831ab1459e0.txt``; ``docs/algorithms.md`` §1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from hpo._recorder import nan_eval
from strategies._hyperdyn._config import EpochBOConfig, HyperdynConfig
from strategies._hyperdyn._model import DTYPE
from strategies._hyperdyn._model import suggest as bo_suggest
from strategies._hyperdyn._space import Space, decode, encode, widen
from strategies._hyperdyn._trend import check_accuracy_trend, keep_log_probability
from strategies._util import finite_or_worst
from strategies._util import format_hyperparameters as _fmt
from trainers import Branches, EvalResult

_LOSS_FLOOR = -1.0  # the loss outcome of a branch whose loss grew e-fold or broke

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

    from trainers import EpochResult, Trainer


class Hyperdyn(BaseStrategy):
    r"""Hyperdyn: choose the learning rate (and momentum, or Adam's betas) at every epoch by
    Bayesian optimisation, and switch to a suggestion only when the accuracy trend says so.

    **Random-Start** (Algorithm 3): from the initial weights, train one epoch at each of ``k``
    points drawn uniformly from the search space (lr on a log scale; every candidate from the
    same snapshot) and keep the best. That is epoch 1 of the kept trajectory.

    **Main loop** (Algorithm 4), at every further epoch ``t``: fit a GP on all observations
    ``D`` (``build_gp``: Matérn-5/2 x the time kernel); maximise (log) EI over the
    hyperparameters with the epoch fixed at ``t``; from one snapshot train one epoch with the
    current :math:`\eta_{t-1}` and one with the suggestion :math:`s_t` and add both outcomes
    ``((eta, t), y)`` to ``D``; then **CheckAccuracyTrend** (Algorithm 5) keeps
    :math:`\eta_{t-1}`'s branch with probability
    :math:`\min(1, \exp((y_\tau - y_{\tau-\Delta})/T - b))`, else continues from another
    branch. Nothing is retrained: the kept branch's weights are restored.

    **Outcomes.** The paper (``preset="paper"``) models the difference of the validation
    score (the task's metric: accuracy by default; negated when it is minimised)
    ``val_acc(branch) - acc`` and keeps Random-Start's best point. The default
    (``preset="robust"``) decides on the validation loss instead:
    :math:`y = \log L_{t-1} - \log L_{branch}`, so a Random-Start where every point is still
    at chance picks the point that learned most, and a branch that broke scores low without
    wrecking the GP's scale. Accuracies in the trend test are in ``accuracy_unit`` (percentage
    points by default, so the paper's T = 1 is one point).

    **Beyond the paper** (the robust preset's choices, each an option): the lr range centred
    on the optimizer's own lr (``lr_relative``); EI's incumbent the last epoch's best
    outcome; a switch takes the better branch; ``patience``: an lr whose branch lost clearly
    to a suggestion for that many epochs in a row is dropped, whatever the trend test says;
    ``widen``: a winning suggestion on a bound of the lr range moves that bound out.

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
    checkpointing: ClassVar[bool] = True

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> Hyperdyn:
        """The trend test's window, temperature and offset, and k."""
        return cls(
            window=trial.suggest_int("window", 1, 8),
            temperature=trial.suggest_float("temperature", 0.1, 10.0, log=True),
            offset=trial.suggest_float("offset", 1e-3, 1.0, log=True),
            n_random_start=trial.suggest_int("n_random_start", 2, 8),
        )

    def __getstate__(self) -> dict[str, Any]:
        # what a run leaves on the strategy (the task's metric, whose functions may be
        # lambdas) is not the strategy: a strategy that has run pickles like a new one
        return {k: v for k, v in self.__dict__.items() if k not in ("_metric", "_floor")}

    def resolved_config(self, trainer: Trainer) -> dict[str, Any]:
        """The config with the lr range this trainer gets (``lr_min`` / ``lr_max`` from
        ``lr_relative`` x the optimizer's lr when they are not given)."""
        out = super().resolved_config(trainer)
        try:
            lo, hi, _ = self._space(trainer.lr)[0]
        except ValueError:  # an empty range: the run says so when it starts
            return out
        out["lr_min"], out["lr_max"] = lo, hi
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
        space = self._space(trainer.lr)
        d = len(cfg.hyperparameters)
        H: list[dict[str, float]] = []  # observed hyperparameters (re-encoded if space widens)
        X: list[list[float]] = []  # their points: hyperparameters in [0, 1], then t / horizon
        Y: list[float] = []  # outcomes (score differences, or log-loss falls)
        T: list[int] = []  # the epoch of each observation
        ys: list[float] = []  # the kept weights' validation score after each epoch (signed)
        metric = self._metric = trainer.metric
        if not metric.maximize:  # what a broken branch of a minimised metric scores
            chance = metric.chance_score(trainer.data.targets("val"))
            self._floor = chance if math.isfinite(chance) else abs(trainer.evaluate().score)
        widened = [0, 0]  # how often the lr range's low / high bound moved out
        lost = 0  # epochs in a row the current lr lost clearly to a suggestion
        gp_state: dict[str, torch.Tensor] | None = None
        branches = Branches(trainer, max(cfg.n_random_start, 1 + cfg.q), batched=cfg.batched)

        with Recorder(self, trainer, budget, callbacks) as rec:

            def state() -> dict[str, Any]:
                return {
                    "rng": rng.bit_generator.state,
                    "space": [list(bounds) for bounds in space],
                    "H": H,
                    "X": X,
                    "Y": Y,
                    "T": T,
                    "ys": ys,
                    "widened": widened,
                    "lost": lost,
                    "gp_state": gp_state,
                    "eta": eta,
                    "kept_val": [kept_val.loss, kept_val.score],
                    "t": t,
                }

            if rec.resumed is None:
                # ---------------- Random-Start (Algorithm 3): epoch 1 of the trajectory
                before = trainer.evaluate() if self._needs_initial_score() else nan_eval()
                xs = [rng.uniform(size=d).tolist() for _ in range(cfg.n_random_start)]
                hps = [decode(x, space, cfg.hyperparameters) for x in xs]
                trained = self._train_branches(branches, hps)
                best: tuple[dict[str, float], EpochResult, EvalResult, float] | None = None
                best_i = -1
                for i, (x, hp, (result, val)) in enumerate(zip(xs, hps, trained)):
                    y = self._random_start_outcome(before, val)
                    H.append(hp)
                    X.append([*x, 0.0])
                    Y.append(y)
                    T.append(0)
                    rec.decide(
                        hp["lr"],
                        False,
                        f"random start {i + 1}/{cfg.n_random_start}: "
                        + _fmt(hp)
                        + f" -> val {metric.format(val.score)}"
                        + (f", loss {val.loss:.3g}" if cfg.outcome == "loss" else ""),
                        hyperparameters=hp,
                        val_score=val.score,
                        val_loss=val.loss,
                    )
                    if best is None or self._beats(val, y, best[2], best[3]):
                        best, best_i = (hp, result, val, y), i
                if best is None:  # pragma: no cover - k >= 1 is validated
                    raise RuntimeError("Random-Start trained no candidate.")
                branches.keep(best_i)
                eta, result, val = best[0], best[1], best[2]
                self._apply(trainer, eta)
                ys.append(metric.signed(val.score))
                kept_val = val
                rec.end_epoch(result, val=val, metrics={f"hp_{k}": v for k, v in eta.items()})
                if result.diverged or not math.isfinite(val.score):
                    return rec.history
                t = 1
                rec.checkpoint(state)
            else:  # a resumed run: the trainer is back at the end of epoch t
                saved = rec.resumed
                rng.bit_generator.state = saved["rng"]
                space[:] = [(float(lo), float(hi), bool(log)) for lo, hi, log in saved["space"]]
                H, X, Y, T, ys = saved["H"], saved["X"], saved["Y"], saved["T"], saved["ys"]
                widened, lost, gp_state = saved["widened"], saved["lost"], saved["gp_state"]
                eta, t = saved["eta"], saved["t"]
                kept_val = EvalResult(*saved["kept_val"])  # the kept branch's last score
                self._apply(trainer, eta)

            # ---------------- Main loop (Algorithm 4)
            while not rec.done:
                t_unit = t / horizon
                sugg = bo_suggest(
                    torch.tensor(X, dtype=DTYPE),
                    torch.tensor(Y, dtype=DTYPE).unsqueeze(-1),
                    t_unit,
                    time_scale=horizon,
                    best_f=self._incumbent(Y, T),
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
                candidates = [eta] + [
                    decode(row.tolist(), space, cfg.hyperparameters) for row in sugg.x
                ]

                # train every branch from one snapshot
                outcomes = self._train_branches(branches, candidates)
                ybranch = [self._outcome(kept_val, v) for _, v in outcomes]
                for hp, y in zip(candidates, ybranch):
                    H.append(hp)
                    X.append([*encode(hp, space, cfg.hyperparameters), t_unit])
                    Y.append(y)
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
                streak = lost + 1 if max(ybranch[1:]) - ybranch[0] > cfg.lost_margin else 0
                forced = cfg.patience is not None and streak >= cfg.patience
                if keep and not forced:
                    chosen = 0
                else:  # the suggestion's branch (q > 1: the best of them)
                    first = 0 if cfg.switch_to == "better-branch" else 1
                    chosen = max(
                        range(first, len(candidates)),
                        key=lambda j: (self._rank(outcomes[j][1]), -j),
                    )
                lost = 0 if chosen else streak
                branches.keep(chosen)
                eta = candidates[chosen]
                self._apply(trainer, eta)
                result, val = outcomes[chosen]
                ys.append(metric.signed(val.score))
                kept_val = val
                note = ""
                if forced and chosen:
                    note += f"; the kept lr lost {cfg.patience} epochs in a row"
                if chosen and cfg.widen:
                    widening = widen(
                        space,
                        sugg.x[chosen - 1, 0].item(),
                        widened,
                        factor=cfg.widen_factor,
                        limit=cfg.max_widenings,
                    )
                    if widening:  # the same points, in the wider range's unit cube
                        note += widening
                        X = [
                            [*encode(hp, space, cfg.hyperparameters), tt / horizon]
                            for hp, tt in zip(H, T)
                        ]
                p = math.exp(log_p)
                rec.decide(
                    eta["lr"],
                    chosen != 0,
                    (f"kept {_fmt(candidates[0])}" if chosen == 0 else f"switched to {_fmt(eta)}")
                    + f" (keep p={p:.2f}; BO suggested {_fmt(candidates[1])}, "
                    f"val {metric.format(outcomes[1][1].score)} vs "
                    f"{metric.format(outcomes[0][1].score)}"
                    + (
                        f", loss {outcomes[1][1].loss:.3g} vs {outcomes[0][1].loss:.3g}"
                        if cfg.outcome == "loss"
                        else ""
                    )
                    + ")"
                    + note,
                    keep_probability=p,
                    suggestion=candidates[1],
                )
                metrics = {
                    "bo_suggestion": candidates[1]["lr"],
                    "bo_log_ei": sugg.log_ei,
                    "bo_ei": math.exp(sugg.log_ei) if sugg.log_ei < 700 else math.inf,
                    "kept": float(chosen == 0),
                    "trend_keep": float(keep),
                    "keep_probability": p,
                    "temperature": temp,
                    f"val_{metric.key}_current_branch": outcomes[0][1].score,
                    f"val_{metric.key}_suggestion_branch": outcomes[1][1].score,
                    "val_loss_current_branch": outcomes[0][1].loss,
                    "val_loss_suggestion_branch": outcomes[1][1].loss,
                    "lost_epochs": float(streak),
                    "lr_range_low": space[0][0],
                    "lr_range_high": space[0][1],
                    "gp_fit_seconds": sugg.fit_seconds,
                    "acq_seconds": sugg.acq_seconds,
                    "gp_warnings": float(sugg.warnings),
                    "observations": float(len(Y) - len(candidates)),
                    **{f"hp_{k}": v for k, v in eta.items()},
                }
                rec.end_epoch(result, val=val, metrics=metrics)
                t += 1
                rec.checkpoint(state)
            rec.history.info["lr_range"] = list(space[0][:2])
        return rec.history

    # ---------------------------------------------------------------- decisions

    def _needs_initial_score(self) -> bool:
        cfg = self.config
        return cfg.outcome == "loss" or cfg.random_start_outcome == "difference"

    def _outcome(self, before: EvalResult, after: EvalResult) -> float:
        """What the GP models for a branch that started from weights scoring ``before``."""
        if self.config.outcome == "loss":
            if not (math.isfinite(after.loss) and after.loss > 0 and before.loss > 0):
                return _LOSS_FLOOR
            return max(math.log(before.loss) - math.log(after.loss), _LOSS_FLOOR)
        return self._signed_or_floor(after) - self._metric.signed(before.score)

    def _random_start_outcome(self, before: EvalResult, val: EvalResult) -> float:
        cfg = self.config
        if cfg.outcome == "metric" and cfg.random_start_outcome == "accuracy":
            return self._signed_or_floor(val)  # Algorithm 3, line 6: the raw score
        return self._outcome(before, val)

    def _beats(self, val: EvalResult, y: float, best_val: EvalResult, best_y: float) -> bool:
        """Whether a Random-Start point is better than the best so far (ties: the earlier)."""
        if self.config.outcome == "loss":
            return y > best_y
        score = self._signed_or_floor(val)
        best = self._metric.signed(best_val.score)
        return score > best or not math.isfinite(best)

    def _signed_or_floor(self, val: EvalResult) -> float:
        """The signed score (higher is better); a broken branch's NaN scores 0 (the paper's
        accuracy of a diverged branch), or minus the chance score of a minimised metric."""
        if math.isfinite(val.score):
            return self._metric.signed(val.score)
        return 0.0 if self._metric.maximize else -self._floor

    def _rank(self, val: EvalResult) -> float:
        """How a branch ranks against the others (higher is better; a NaN ranks last)."""
        if self.config.outcome == "loss":
            return finite_or_worst(-val.loss)
        return finite_or_worst(self._metric.signed(val.score))

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

    # ---------------------------------------------------------------- the search space

    def _space(self, base_lr: float) -> Space:
        """The initial search space; lr bounds not given are relative to ``base_lr``.

        Raises:
            ValueError: The lr range is empty.
        """
        cfg = self.config
        lo = base_lr * cfg.lr_relative[0] if cfg.lr_min is None else cfg.lr_min
        hi = base_lr * cfg.lr_relative[1] if cfg.lr_max is None else cfg.lr_max
        if not lo < hi:
            raise ValueError(
                f"{type(self).__name__}: the lr range [{lo:.3g}, {hi:.3g}] is empty (lr_min="
                f"{cfg.lr_min!r}, lr_max={cfg.lr_max!r}, lr_relative={cfg.lr_relative!r} x the "
                f"optimizer's lr {base_lr:.3g}); give both `lr_min` and `lr_max`."
            )
        lr = (lo, hi, True)
        table = {
            "momentum": (*cfg.momentum_bounds, False),
            "beta1": (*cfg.beta1_bounds, False),
            "beta2": (*cfg.beta2_bounds, False),
        }
        return [lr] + [table[name] for name in cfg.hyperparameters[1:]]

    # ---------------------------------------------------------------- the trainer

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

    def _train_branches(
        self, branches: Branches, candidates: list[dict[str, float]]
    ) -> list[tuple[EpochResult, EvalResult]]:
        """One epoch of each candidate's branch from the trainer's state (NaN scores for a
        branch that diverged)."""
        trained = branches.train(
            [hp["lr"] for hp in candidates],
            prepare=lambda branch, j: self._apply(branch, candidates[j]),
        )
        return [(result, nan_eval() if val is None else val) for result, val in trained]

    # ---------------------------------------------------------------- plots

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
