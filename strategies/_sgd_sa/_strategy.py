"""``SGDSA``: SGD whose every step is a simulated-annealing move, accepted or undone by the
Metropolis test (the seed ``000_0cb8384421a24654.txt``; ``docs/algorithms.md`` §2)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from strategies._metropolis import MetropolisSampler, temperature_for
from strategies._sgd_sa._config import MOMENTUM_TYPES, SGDSAConfig
from strategies._undo import StepUndo

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

    from trainers import EpochResult, StepStats, Trainer
    from trainers._trainer import StepFn


class SGDSA(BaseStrategy):
    r"""SGD-SA: at every minibatch, take an SGD step at an lr drawn from H and keep it only if
    the Metropolis test accepts it (Algorithm 2 of the paper).

    Per minibatch :math:`(x, y)`: forward and backward at :math:`w` (loss :math:`L_0`,
    gradient :math:`v`); draw :math:`\eta` from H; trial step :math:`w_{new} = w - \eta v`;
    :math:`L_1` = the loss at :math:`w_{new}` on the same minibatch; accept with probability
    :math:`\min(1, e^{-(L_1 - L_0)\,s / T})` (:math:`s` = ``loss_scale``), else put :math:`w`
    back **exactly**: parameters, optimizer state and BatchNorm running statistics are copied
    into buffers allocated once per run (``torch._foreach_copy_``) and copied back on rejection —
    never subtracted back, so no floating-point drift. A non-finite :math:`L_1` is a rejection.
    The temperature cools by α once per epoch (or per step).

    The trainer's optimizer takes the trial step (plain SGD in the paper; its state, if any, is
    undone with the weights). ``moves="lr-momentum"`` takes the step itself instead, with a
    per-step choice of no momentum, heavy-ball momentum or Nesterov, and its own momentum buffer.

    Per epoch it records the acceptance rate, the mean acceptance probability clipped to 1 (the
    paper's Fig. 3a), the temperature, and the mean and histogram of the accepted lrs; the Fig. 3a
    plot is an artifact of the run. Every minibatch counts as a spent step, accepted or not.

    Example:
        >>> import hpo
        >>> from strategies import SGDSA
        >>> task = hpo.testing.boring_task(optimizer="sgd", epochs=2)
        >>> h = hpo.run(task, SGDSA(), tracking=False)
        >>> 0.0 < h.records[0].metrics["acceptance_rate"] <= 1.0
        True
    """

    name: ClassVar[str] = "sgd-sa"
    config_class: ClassVar[type] = SGDSAConfig
    config: SGDSAConfig
    checkpointing: ClassVar[bool] = True

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> SGDSA:
        """T0 (log-uniform), the cooling factor and the seed (the paper: tune the seed)."""
        return cls(
            t0=trial.suggest_float("t0", 1e-3, 1e2, log=True),
            cooling=trial.suggest_float("cooling", 0.5, 0.99),
            seed=trial.suggest_int("seed", 0, 1_000),
        )

    def lrs(self, trainer: Trainer) -> tuple[float, ...]:
        """H for ``trainer``: ``lrs``, or ``lr_relative`` x the optimizer's current lr."""
        cfg = self.config
        if cfg.lrs is not None:
            return cfg.lrs
        return tuple(trainer.lr * r for r in cfg.lr_relative)

    def resolved_config(self, trainer: Trainer) -> dict[str, Any]:
        """The config with the set of lrs this trainer gets (``lrs`` from ``lr_relative`` x
        the optimizer's lr when it is not given)."""
        out = super().resolved_config(trainer)
        out["lrs"] = self.lrs(trainer)
        return out

    def make_step(self, trainer: Trainer) -> tuple[StepFn, MetropolisSampler]:
        """The per-minibatch step of ``trainer.run_epoch`` and the sampler it draws from.

        ``run`` uses it; ``benchmarks/sgd_sa_overhead.py`` times it against plain SGD. With a
        calibrated temperature (``t0=None``) the step's first ``calibration_steps`` are
        greedy, then the sampler's temperature is :math:`T_0`.

        Raises:
            ValueError: The paper's preset with an optimizer other than plain SGD, or the
                ``error`` objective on regression targets.
        """
        cfg = self.config
        self._check_optimizer(trainer)
        if cfg.objective == "error" and not trainer.data.classification:
            raise ValueError(
                "SGDSA(objective='error') accepts on the minibatch's 0-1 error, which needs "
                "class labels; this task has regression targets: use objective='loss'."
            )
        lrs = self.lrs(trainer)
        if cfg.moves == "lr-momentum":
            moves: list[tuple[float, str]] = [(lr, m) for lr in lrs for m in MOMENTUM_TYPES]
        else:
            moves = [(lr, "none") for lr in lrs]
        rng = np.random.default_rng([cfg.seed, trainer.seed])
        sampler = MetropolisSampler(
            moves, t0=0.0 if cfg.t0 is None else cfg.t0, cooling=cfg.cooling, rng=rng
        )
        anneal = _Annealing(cfg, sampler)
        undo = StepUndo(trainer, own_momentum=cfg.moves == "lr-momentum")
        train_trial = cfg.loss_mode == "train"
        error_from_count = cfg.objective == "error" and train_trial
        measure = trainer.error_on if cfg.objective == "error" else trainer.loss_on
        # L0 and L1 go into one 2-element device buffer, read with a single host sync per step;
        # float64 holds any float32/bf16 loss and any count exactly, so the floats are the same
        # as two float() calls would give
        pair = torch.empty(2, dtype=torch.float64, device=trainer.device)
        host = pair if pair.device.type == "cpu" else torch.empty_like(pair, device="cpu")
        slot_before, slot_after = pair[0], pair[1]

        def step(x: Tensor, y: Tensor) -> StepStats:
            undo.save_buffers()  # BN running statistics before this minibatch
            stats = trainer.forward_backward(x, y)
            if error_from_count:
                slot_before.copy_((stats.outputs.argmax(1) == y).sum())
            elif train_trial:
                slot_before.copy_(stats.loss)
            else:
                slot_before.copy_(measure(x, y))
            move = sampler.propose()
            undo.save_weights()
            if cfg.moves == "lr-momentum":
                undo.momentum_step(*move, cfg.momentum)
            else:
                trainer.apply_update(move[0])
            if train_trial:
                undo.save_trained_buffers()
                slot_after.copy_(measure(x, y, train_mode=True))
                undo.restore_trained_buffers()  # the trial forward must not count as training
            else:
                slot_after.copy_(measure(x, y))
            if host is not pair:
                host.copy_(pair)
            before, after = host.tolist()  # the step's one host sync
            if error_from_count:
                before = 1.0 - before / len(y)
            delta = (after - before) * cfg.loss_scale
            if not sampler.accept(delta, move):
                undo.restore()
            anneal.after_step()
            return stats

        step.undo = undo  # type: ignore[attr-defined]  # for the benchmark's allocation count
        step.anneal = anneal  # type: ignore[attr-defined]
        return step, sampler

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        cfg = self.config
        total = self._run_epochs(budget, trainer)
        step, sampler = self.make_step(trainer)
        anneal: _Annealing = step.anneal  # type: ignore[attr-defined]
        lrs = self.lrs(trainer)

        undo: StepUndo = step.undo  # type: ignore[attr-defined]

        def state() -> dict[str, Any]:
            return {"annealing": anneal.state_dict(), "undo": undo.state_dict()}

        with Recorder(self, trainer, budget, callbacks) as rec:
            if rec.resumed is not None:
                anneal.load_state_dict(rec.resumed["annealing"])
                undo.load_state_dict(rec.resumed["undo"])
            while not rec.done:
                sampler.reset_stats()
                temperature = sampler.temperature
                result = trainer.run_epoch(step)
                accepted = sampler.accepted_moves
                accepted_lrs = [m[0] for m in accepted]
                result = _with_lrs(result, accepted_lrs)
                metrics = {
                    "acceptance_rate": sampler.acceptance_rate,
                    "mean_acceptance_probability": sampler.mean_probability,
                    "worsening_acceptance_probability": sampler.worsening_probability,
                    "worsening_share": sampler.worsening_share,
                    "temperature": temperature,
                    "accepted_lr_mean": result.lr_mean if accepted_lrs else math.nan,
                    "effective_lr": sum(accepted_lrs) / max(sampler.proposed, 1),
                }
                if cfg.t0 is None:
                    metrics["target_acceptance"] = cfg.target_acceptance(
                        rec.history.epochs / total
                    )
                per_lr = Counter(accepted_lrs)
                for lr in lrs:
                    metrics[f"accepted_at_lr_{lr:g}"] = float(per_lr[lr])
                if cfg.moves == "lr-momentum":
                    per_kind = Counter(m[1] for m in accepted)
                    for kind in MOMENTUM_TYPES:
                        metrics[f"accepted_{kind}"] = float(per_kind[kind])
                if anneal.calibration is not None and "calibration" not in rec.history.info:
                    rec.history.info["calibration"] = anneal.calibration_report()
                rec.end_epoch(result, metrics=metrics)
                anneal.after_epoch(rec.history.epochs / total)
                rec.checkpoint(state)
            rec.history.info["lrs"] = list(lrs)
            if cfg.end_on == "best":
                rec.end_on_best()
        return rec.history

    def _check_optimizer(self, trainer: Trainer) -> None:
        cfg = self.config
        if cfg.preset != "paper" or cfg.moves != "lr":
            return
        opt = trainer.optimizer
        group = opt.param_groups[0]
        if type(opt) is not torch.optim.SGD or group.get("momentum", 0.0) or group.get("nesterov"):
            raise ValueError(
                "SGDSA(preset='paper') takes plain SGD steps at lrs 0.05..0.9 (the paper's "
                f"Algorithm 2), but the task's optimizer is {_describe(opt)}: use "
                "optimizer='sgd', or the default preset, whose moves are the task's own "
                "optimizer steps at lrs scaled to its lr."
            )

    def _run_epochs(self, budget: Budget, trainer: Trainer) -> float:
        """The run's length in epochs, for the calibrated temperature's schedule."""
        if budget.epochs is not None:
            return float(budget.epochs)
        if budget.steps is not None:
            return budget.steps / trainer.steps_per_epoch
        if budget.examples is not None:
            return budget.examples / trainer.data.num_train
        if self.config.t0 is None:
            raise ValueError(
                "SGDSA's calibrated temperature (t0=None) anneals over the run, so it needs "
                f"Budget.epochs, steps or examples, but got budget={budget!r}; or give `t0`."
            )
        return math.inf

    def plots(self, history: History) -> dict[str, Figure]:
        """The paper's Fig. 3a: the mean acceptance probability (clipped to 1) per epoch, of all
        moves and of the worsening ones, with the acceptance rate and the temperature."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4.2), layout="constrained")
        ax = fig.subplots()
        epochs = history.column("epoch")
        ax.plot(
            epochs,
            history.column("mean_acceptance_probability"),
            marker="o",
            ms=3,
            label="mean acceptance probability (clipped to 1)",
        )
        ax.plot(
            epochs,
            history.column("worsening_acceptance_probability"),
            marker=".",
            ms=3,
            label="... of worsening moves only",
        )
        ax.plot(epochs, history.column("acceptance_rate"), ls="--", label="acceptance rate")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel("probability")
        ax.grid(alpha=0.3)
        twin = ax.twinx()
        temps = [t if t > 0 else math.nan for t in history.column("temperature")]  # 0: greedy
        twin.plot(epochs, temps, color="C3", lw=1, label="temperature")
        twin.set_yscale("log")
        twin.set_ylabel("temperature", color="C3")
        lines = ax.get_lines() + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], loc="center right")
        ax.set_title(f"{history.strategy}: acceptance of SGD steps")
        return {"acceptance": fig}


def _with_lrs(result: EpochResult, lrs: list[float]) -> EpochResult:
    """The epoch result with the lrs of its accepted steps."""
    import dataclasses

    if not lrs:
        return result
    return dataclasses.replace(
        result,
        lr_mean=float(math.fsum(lrs) / len(lrs)),
        lr_min=min(lrs),
        lr_max=max(lrs),
    )


class _Annealing:
    """SGD-SA's temperature: the paper's geometric cooling from ``t0``, or the calibrated one
    (greedy until ``calibration_steps`` steps and ``calibration_deltas`` worsening deltas,
    then :math:`T_0` from those deltas; after every
    epoch, the temperature for that epoch's deltas and the schedule's target acceptance)."""

    def __init__(self, cfg: SGDSAConfig, sampler: MetropolisSampler) -> None:
        self.cfg, self.sampler = cfg, sampler
        self.calibrating = cfg.t0 is None
        self.steps = 0
        self.calibration: tuple[float, int, int] | None = None  # (T0, steps, deltas)
        self._mark = (0, 0.0)  # worsening count and probability sum when T0 was set

    def state_dict(self) -> dict[str, Any]:
        """The sampler's temperature and random stream, and where the calibration stands."""
        return {
            "sampler": self.sampler.state_dict(),
            "calibrating": self.calibrating,
            "steps": self.steps,
            "calibration": self.calibration,
            "mark": self._mark,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict()``."""
        self.sampler.load_state_dict(state["sampler"])
        self.calibrating = bool(state["calibrating"])
        self.steps = int(state["steps"])
        calibration = state["calibration"]
        self.calibration = None if calibration is None else tuple(calibration)  # type: ignore[assignment]
        self._mark = tuple(state["mark"])  # type: ignore[assignment]

    def after_step(self) -> None:
        cfg, s = self.cfg, self.sampler
        if self.calibrating:
            self.steps += 1
            deltas = s.worsening_deltas
            if self.steps >= cfg.calibration_steps and len(deltas) >= cfg.calibration_deltas:
                t0 = temperature_for(deltas, cfg.initial_acceptance)
                s.temperature = t0
                self.calibrating = False
                self.calibration = (t0, self.steps, len(deltas))
                self._mark = (s.worsening, s.worsening_probability_sum)
        elif cfg.t0 is not None and cfg.cooling_per == "step":
            s.cool()

    def after_epoch(self, fraction: float) -> None:
        cfg, s = self.cfg, self.sampler
        if cfg.t0 is not None:
            if cfg.cooling_per == "epoch":
                s.cool()
        elif not self.calibrating and s.worsening_deltas:
            s.temperature = temperature_for(s.worsening_deltas, cfg.target_acceptance(fraction))

    def calibration_report(self) -> dict[str, float]:
        """T0, the greedy steps and deltas it came from, and the mean acceptance probability
        of the worsening moves proposed after it, in the calibration's epoch."""
        assert self.calibration is not None
        t0, steps, deltas = self.calibration
        n = self.sampler.worsening - self._mark[0]
        p = (self.sampler.worsening_probability_sum - self._mark[1]) / n if n else math.nan
        return {"t0": t0, "steps": steps, "deltas": deltas, "worsening_acceptance_after": p}


def _describe(optimizer: torch.optim.Optimizer) -> str:
    group = optimizer.param_groups[0]
    name = type(optimizer).__name__
    if isinstance(optimizer, torch.optim.SGD):
        return f"{name}(momentum={group.get('momentum', 0.0)}, nesterov={group.get('nesterov')})"
    return name
