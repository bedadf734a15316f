"""``SGDSAConfig``: SGD-SA's options, with two presets — the paper's exact behaviour and the
robust defaults chosen on ``hpo bench``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hpo._validation import check_choice, check_range
from strategies._util import FROM_PRESET, fill_preset

#: The paper's H: 14 learning rates, deliberately including large, risky ones.
PAPER_LRS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.09, 0.08, 0.07, 0.06, 0.05)
MOMENTUM_TYPES = ("none", "momentum", "nesterov")


#: H as multiples of the optimizer's starting lr (the robust preset): 9 lrs log-spaced from
#: 1/3x to 3x, so plain SGD at its default 0.3 draws from 0.1..0.9, the paper's range.
RELATIVE_LRS = tuple(3.0 ** (k / 4) for k in range(-4, 5))

#: What each preset sets; a field given explicitly overrides its preset.
PRESETS: dict[str, dict[str, Any]] = {
    # Algorithm 2 as published, with the authors' loss measurement: H = 0.05..0.9 (plain SGD
    # only: other optimizers are refused), T0 = 1 in units of mean cross-entropy / 512,
    # cooled by 0.8 per epoch.
    "paper": {"lrs": PAPER_LRS, "t0": 1.0, "loss_mode": "eval"},
    # Chosen on `hpo bench`: H scaled to the optimizer's own lr (any optimizer: its step is
    # the move, its state undone on rejection), the temperature set from data (the first
    # steps' worsening deltas calibrate T0 so that worsening moves are accepted with mean
    # probability 0.9; every epoch re-calibrates on the last epoch's deltas, the target
    # falling geometrically to 0.1 at the end of the run), and the cheaper train-mode losses
    # (better with BatchNorm). A near-greedy end (0.01) measured worse: a rejected step throws
    # the minibatch's gradient away, and with momentum or Adam so many are rejected that
    # training stalls.
    "robust": {"lrs": None, "t0": None, "loss_mode": "train"},
}


@dataclass(frozen=True, kw_only=True)
class SGDSAConfig:
    r"""Configuration of ``SGDSA``.

    ``preset="robust"`` (the default) and ``preset="paper"`` (Algorithm 2 exactly, as the
    reproduction study uses) set the fields marked *preset*; any of them given explicitly
    overrides its preset.

    **Temperature.** The worsening is :math:`\Delta = (L_1 - L_0) \cdot` ``loss_scale``,
    with :math:`L` the minibatch's mean cross-entropy. With ``t0`` given, the temperature
    starts there and cools by ``cooling`` per epoch (or step): the paper. Its unit matters:
    the authors' code divides the mean loss by the batch size, so their :math:`T_0 = 1` at
    batch size 512 is a temperature of 512 in mean cross-entropy units; ``loss_scale = 1/512``
    keeps that meaning whatever the batch size (with ``loss_scale = 1``, :math:`T_0 = 512` is
    the paper's start, and 0.8 per epoch brings it to ~1 around epoch 28). With ``t0=None``
    (robust) the temperature is set from data (``temperature_for``), so neither the unit nor
    the batch size matters: the first steps are greedy, until ``calibration_steps`` steps and
    ``calibration_deltas`` worsening deltas are seen, and those deltas give :math:`T_0`, at
    which worsening moves are accepted with mean probability ``initial_acceptance``; after
    every epoch the temperature is set again from that epoch's deltas, to a target acceptance
    that falls geometrically to ``final_acceptance`` at the fraction ``anneal_until`` of the
    run and stays there.

    Args:
        preset: ``robust`` or ``paper`` (see ``PRESETS``).
        lrs: *Preset.* H, the learning rates a step may take; non-empty, each > 0. ``None``
            (robust): ``lr_relative`` x the optimizer's lr at the start of the run.
        lr_relative: H as multiples of the optimizer's starting lr, when ``lrs`` is ``None``.
        t0: *Preset.* The initial temperature, > 0 (in units of ``loss_scale`` x mean
            cross-entropy); ``None`` (robust): calibrated from data (above).
        cooling: With ``t0`` given: the cooling factor α, in (0, 1).
        cooling_per: With ``t0`` given: cool once per ``epoch`` (the paper) or every ``step``.
        initial_acceptance: With ``t0=None``: the mean acceptance probability of worsening
            moves the calibrated :math:`T_0` gives, in (0, 1).
        final_acceptance: With ``t0=None``: the target reached at ``anneal_until``, in
            (0, ``initial_acceptance``].
        anneal_until: With ``t0=None``: the fraction of the run (in epochs) by which the
            target has fallen to ``final_acceptance``, in (0, 1].
        calibration_steps: With ``t0=None``: the fewest greedy steps whose worsening deltas
            set :math:`T_0`, >= 1.
        calibration_deltas: With ``t0=None``: the fewest worsening deltas :math:`T_0` is set
            from (the greedy phase lasts until there are this many), >= 1.
        loss_scale: Multiplies the loss difference before the test (see above), > 0.
        loss_mode: *Preset.* How the two losses are measured, the same way for both: ``eval``
            — a separate no-grad forward in eval mode at :math:`w` and at :math:`w_{new}` (the
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

    #: What each preset sets (a field given explicitly overrides its preset).
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS

    preset: str = "robust"
    lrs: tuple[float, ...] | None = FROM_PRESET  # paper: PAPER_LRS
    lr_relative: tuple[float, ...] = RELATIVE_LRS
    t0: float | None = FROM_PRESET  # paper: SGD-SA §4, T0 = 1
    cooling: float = 0.8  # SGD-SA §4: alpha = 0.8, once per epoch
    cooling_per: str = "epoch"
    initial_acceptance: float = 0.9
    final_acceptance: float = 0.1
    anneal_until: float = 1.0
    calibration_steps: int = 10
    calibration_deltas: int = 10
    loss_scale: float = 1.0 / 512  # the authors' loss / batch size, at their batch size 512
    loss_mode: str = FROM_PRESET  # paper: the authors' code, "eval"
    moves: str = "lr"
    momentum: float = 0.9
    objective: str = "loss"
    end_on: str = "final"
    seed: int = 0

    def __post_init__(self) -> None:
        owner = "SGDSAConfig"
        fill_preset(self, PRESETS)
        for name in ("lrs", "lr_relative"):
            values = getattr(self, name)
            if values is None and name == "lrs":
                continue
            object.__setattr__(self, name, tuple(values))
            if not values:
                raise ValueError(f"{owner}.`{name}` (the set H) must not be empty, but got ().")
            for lr in values:
                check_range(owner, name, lr, 0.0, low_closed=False)
        if self.t0 is not None:
            check_range(owner, "t0", self.t0, 0.0, low_closed=False)
        check_range(owner, "cooling", self.cooling, 0.0, 1.0, low_closed=False, high_closed=False)
        check_choice(owner, "cooling_per", self.cooling_per, ("epoch", "step"))
        for name in ("initial_acceptance", "final_acceptance"):
            check_range(
                owner, name, getattr(self, name), 0.0, 1.0, low_closed=False, high_closed=False
            )
        if self.final_acceptance > self.initial_acceptance:
            raise ValueError(
                f"{owner}: `final_acceptance` must be <= `initial_acceptance`, but got "
                f"final_acceptance={self.final_acceptance!r}, "
                f"initial_acceptance={self.initial_acceptance!r}."
            )
        check_range(owner, "anneal_until", self.anneal_until, 0.0, 1.0, low_closed=False)
        check_range(owner, "calibration_steps", self.calibration_steps, 1, integer=True)
        check_range(owner, "calibration_deltas", self.calibration_deltas, 1, integer=True)
        check_range(owner, "loss_scale", self.loss_scale, 0.0, low_closed=False)
        check_choice(owner, "loss_mode", self.loss_mode, ("eval", "train"))
        check_choice(owner, "moves", self.moves, ("lr", "lr-momentum"))
        check_range(owner, "momentum", self.momentum, 0.0, 1.0, high_closed=False)
        check_choice(owner, "objective", self.objective, ("loss", "error"))
        check_choice(owner, "end_on", self.end_on, ("final", "best"))
        check_range(owner, "seed", self.seed, 0, integer=True)

    def target_acceptance(self, fraction: float) -> float:
        """The calibrated temperature's target: the mean acceptance probability of worsening
        moves after ``fraction`` of the run (geometric from ``initial_acceptance`` to
        ``final_acceptance`` at ``anneal_until``, then constant).

        Example:
            >>> cfg = SGDSAConfig()
            >>> [round(cfg.target_acceptance(u), 4) for u in (0.0, 0.25, 0.5, 1.0)]
            [0.9, 0.5196, 0.3, 0.1]
        """
        u = min(max(fraction / self.anneal_until, 0.0), 1.0)
        return self.initial_acceptance * (self.final_acceptance / self.initial_acceptance) ** u
