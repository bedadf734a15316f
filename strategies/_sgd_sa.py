"""``SGDSA``: SGD whose every step is a simulated-annealing move, accepted or undone by the
Metropolis test (the seed ``000_0cb8384421a24654.txt``; ``docs/algorithms.md`` §2)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor

from hpo import BaseStrategy, Budget, Callback, History, Recorder
from hpo._validation import check_choice, check_range
from strategies._metropolis import MetropolisSampler
from strategies._undo import StepUndo

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

    from trainers import EpochResult, StepStats, Trainer
    from trainers._trainer import StepFn

#: The paper's H: 14 learning rates, deliberately including large, risky ones.
PAPER_LRS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05)
MOMENTUM_TYPES = ("none", "momentum", "nesterov")


@dataclass(frozen=True, kw_only=True)
class SGDSAConfig:
    r"""Configuration of ``SGDSA``; the defaults are the paper's.

    **Temperature unit.** The worsening is :math:`\Delta = (L_1 - L_0) \cdot` ``loss_scale``,
    with :math:`L` the minibatch's mean cross-entropy. The authors' code divides the mean loss
    by the batch size, so their :math:`T_0 = 1` at batch size 512 is a temperature of 512 in
    mean cross-entropy units; ``loss_scale = 1/512`` (the default) keeps that meaning whatever
    the batch size. With ``loss_scale = 1`` temperatures are in mean cross-entropy (then
    :math:`T_0 = 512` is the paper's start, and 0.8 per epoch brings it to ~1 around epoch 28).

    Args:
        lrs: H, the learning rates a step may take; non-empty, each > 0.
        t0: The initial temperature, > 0 (in units of ``loss_scale`` x mean cross-entropy).
        cooling: The cooling factor α, in (0, 1).
        cooling_per: Cool once per ``epoch`` (the paper) or after every ``step``.
        loss_scale: Multiplies the loss difference before the test (see above), > 0.
        loss_mode: How the two losses are measured, the same way for both: ``eval`` — a
            separate no-grad forward in eval mode at :math:`w` and at :math:`w_{new}` (the
            authors' code; two extra forwards per step); ``train`` — :math:`L_0` from the
            training forward, :math:`L_1` from a train-mode forward at :math:`w_{new}` with the
            BatchNorm buffers put back afterwards (one extra forward).
        moves: ``lr`` (the paper), or ``lr-momentum``: moves over (lr, momentum type) pairs,
            the type one of none / momentum / Nesterov (the paper's proposed extension).
        momentum: The momentum coefficient of ``lr-momentum`` moves, in [0, 1).
        objective: What the acceptance test compares: the minibatch ``loss`` (the paper) or its
            0-1 ``error`` (the paper's follow-up idea: a non-differentiable acceptance objective).
        end_on: The weights the trainer holds at the end: the ``final`` ones, or the ``best``
            on the validation split at the end of any epoch (the paper's output). Both are scored
            on the test split either way.
        seed: Seeds the lr draws and the acceptance tests (with the task's seed); the paper
            proposes tuning it in an outer random search.
    """

    lrs: tuple[float, ...] = PAPER_LRS
    t0: float = 1.0  # SGD-SA §4: T0 = 1
    cooling: float = 0.8  # SGD-SA §4: alpha = 0.8, once per epoch
    cooling_per: str = "epoch"
    loss_scale: float = 1.0 / 512  # the authors' loss / batch size, at their batch size 512
    loss_mode: str = "eval"  # the authors' code
    moves: str = "lr"
    momentum: float = 0.9
    objective: str = "loss"
    end_on: str = "final"
    seed: int = 0

    def __post_init__(self) -> None:
        owner = "SGDSAConfig"
        object.__setattr__(self, "lrs", tuple(self.lrs))
        if not self.lrs:
            raise ValueError(f"{owner}.`lrs` (the set H) must not be empty, but got lrs=().")
        for lr in self.lrs:
            check_range(owner, "lrs", lr, 0.0, low_closed=False)
        check_range(owner, "t0", self.t0, 0.0, low_closed=False)
        check_range(owner, "cooling", self.cooling, 0.0, 1.0, low_closed=False, high_closed=False)
        check_choice(owner, "cooling_per", self.cooling_per, ("epoch", "step"))
        check_range(owner, "loss_scale", self.loss_scale, 0.0, low_closed=False)
        check_choice(owner, "loss_mode", self.loss_mode, ("eval", "train"))
        check_choice(owner, "moves", self.moves, ("lr", "lr-momentum"))
        check_range(owner, "momentum", self.momentum, 0.0, 1.0, high_closed=False)
        check_choice(owner, "objective", self.objective, ("loss", "error"))
        check_choice(owner, "end_on", self.end_on, ("final", "best"))
        check_range(owner, "seed", self.seed, 0, integer=True)


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

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> SGDSA:
        """T0 (log-uniform), the cooling factor and the seed (the paper: tune the seed)."""
        return cls(
            t0=trial.suggest_float("t0", 1e-3, 1e2, log=True),
            cooling=trial.suggest_float("cooling", 0.5, 0.99),
            seed=trial.suggest_int("seed", 0, 1_000),
        )

    def make_step(self, trainer: Trainer) -> tuple[StepFn, MetropolisSampler]:
        """The per-minibatch step of ``trainer.run_epoch`` and the sampler it draws from.

        ``run`` uses it; ``benchmarks/sgd_sa_overhead.py`` times it against plain SGD.
        """
        cfg = self.config
        if cfg.moves == "lr-momentum":
            moves: list[tuple[float, str]] = [(lr, m) for lr in cfg.lrs for m in MOMENTUM_TYPES]
        else:
            moves = [(lr, "none") for lr in cfg.lrs]
        rng = np.random.default_rng([cfg.seed, trainer.seed])
        sampler = MetropolisSampler(moves, t0=cfg.t0, cooling=cfg.cooling, rng=rng)
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
                slot_before.copy_(stats.correct)
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
            if cfg.cooling_per == "step":
                sampler.cool()
            return stats

        step.undo = undo  # type: ignore[attr-defined]  # for the benchmark's allocation count
        return step, sampler

    def run(
        self, trainer: Trainer, budget: Budget, *, callbacks: Sequence[Callback] = ()
    ) -> History:
        cfg = self.config
        step, sampler = self.make_step(trainer)

        with Recorder(self, trainer, budget, callbacks) as rec:
            while not rec.done:
                sampler.reset_stats()
                temperature = sampler.temperature
                result = trainer.run_epoch(step)
                accepted = sampler.accepted_moves
                lrs = [m[0] for m in accepted]
                result = _with_lrs(result, lrs)
                metrics = {
                    "acceptance_rate": sampler.acceptance_rate,
                    "mean_acceptance_probability": sampler.mean_probability,
                    "worsening_acceptance_probability": sampler.worsening_probability,
                    "worsening_share": sampler.worsening_share,
                    "temperature": temperature,
                    "accepted_lr_mean": result.lr_mean if lrs else math.nan,
                    "effective_lr": sum(lrs) / max(sampler.proposed, 1),
                }
                per_lr = Counter(lrs)
                for lr in cfg.lrs:
                    metrics[f"accepted_at_lr_{lr:g}"] = float(per_lr[lr])
                if cfg.moves == "lr-momentum":
                    per_kind = Counter(m[1] for m in accepted)
                    for kind in MOMENTUM_TYPES:
                        metrics[f"accepted_{kind}"] = float(per_kind[kind])
                rec.end_epoch(result, metrics=metrics)
                if cfg.cooling_per == "epoch":
                    sampler.cool()
            if cfg.end_on == "best":
                rec.end_on_best()
        return rec.history

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
        twin.plot(epochs, history.column("temperature"), color="C3", lw=1, label="temperature")
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
