"""``HyperdynConfig``: Hyperdyn's options, with two presets — the paper's exact behaviour and
the robust defaults chosen on ``hpo bench``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hpo._validation import check_choice, check_lr_bounds, check_range
from strategies._util import FROM_PRESET, fill_preset

HYPERPARAMETERS = ("lr", "momentum", "beta1", "beta2")

#: What each preset sets; a field given explicitly overrides its preset.
PRESETS: dict[str, dict[str, Any]] = {
    # Algorithms 3-5 as published: Random-Start and the GP on the validation score (accuracy
    # by default; raw at t = 0, differences after), EI's incumbent the best of all outcomes, a
    # switch continues from the suggestion's branch whatever it scored, the lr over 1e-4..1.
    "paper": {
        "lr_min": 1e-4,
        "lr_max": 1.0,
        "outcome": "metric",
        "random_start_outcome": "accuracy",
        "incumbent": "all",
        "switch_to": "suggestion",
        "patience": None,
        "widen": False,
    },
    # Chosen on `hpo bench` (README, "Which strategy should I use?"): every decision on the
    # validation loss, which moves before accuracy does (no ties at chance, no raw accuracies
    # out of reach of later differences); the lr range centred on the optimizer's own lr; a
    # switch never takes a branch that did worse; an lr whose branch lost clearly for
    # `patience` epochs in a row is dropped whatever the trend says; a winning suggestion on a
    # bound widens the range.
    "robust": {
        "lr_min": None,
        "lr_max": None,
        "outcome": "loss",
        "random_start_outcome": "difference",
        "incumbent": "last-epoch",
        "switch_to": "better-branch",
        "patience": 2,
        "widen": True,
    },
}


@dataclass(frozen=True, kw_only=True)
class HyperdynConfig:
    r"""Configuration of ``Hyperdyn``.

    ``preset="robust"`` (the default) and ``preset="paper"`` (Algorithms 3-5 exactly, as the
    reproduction study uses) set the fields marked *preset*; any of them given explicitly
    overrides its preset.

    Args:
        preset: ``robust`` or ``paper`` (see ``PRESETS``).
        hyperparameters: What BO tunes: ``("lr",)``; ``("lr", "momentum")`` for SGD with
            momentum (the paper's CIFAR runs); ``("lr", "beta1", "beta2")`` for Adam (§4.1).
        lr_min: *Preset.* Lower end of the lr range (searched on a log scale), > 0; ``None``
            (robust): ``lr_relative[0]`` x the optimizer's lr at the start of the run (its
            default lr).
        lr_max: *Preset.* Upper end, > ``lr_min``; ``None``: ``lr_relative[1]`` x that lr.
        lr_relative: The range, as multiples of the optimizer's starting lr, for the bounds
            that are ``None``.
        momentum_bounds: Range of the momentum coefficient.
        beta1_bounds: Range of Adam's beta1.
        beta2_bounds: Range of Adam's beta2.
        n_random_start: k, the random points of Random-Start (Algorithm 3), >= 1.
        outcome: *Preset.* What decides: ``metric`` (the paper: the GP models differences of
            the validation score — the task's metric, accuracy by default, negated when it is
            minimised — and Random-Start keeps the best point) or ``loss``: the
            GP models :math:`\log L_{t-1} - \log L_{branch}` (the relative fall of the
            validation loss, clipped below at -1) and every choice between branches takes the
            lower validation loss. The trend test always watches the metric, as in the paper.
        random_start_outcome: *Preset.* What Random-Start records at t = 0 with the
            ``metric`` outcome: the raw validation score (``accuracy``, Algorithm 3) or its
            ``difference`` to the initial weights' score. (With ``loss`` it is always the
            difference.)
        window: Δ of CheckAccuracyTrend, in epochs, >= 1.
        temperature: T of CheckAccuracyTrend, > 0, in ``accuracy_unit``.
        temperature_final: Beyond the paper: the temperature at the last epoch, reached
            geometrically from ``temperature``. ``None``: constant (the paper).
        offset: b of CheckAccuracyTrend, >= 0; ``inf`` always switches (epoch-based BO).
        accuracy_unit: The unit of score differences in the trend test: ``percent``
            (percentage points: T = 1 means one point of accuracy; another metric's values
            are multiplied by 100 too) or ``fraction`` (the metric's own units).
        alpha: α of the time kernel, > 0.
        beta: β of the time kernel, > 0, in epochs.
        learn_time_kernel: Fit α and β with the GP (positive constraints) instead of fixing them.
        q: BO suggestions per epoch, each trained as one more branch (the paper's "parallel
            suggestions" future work); 1 in the paper.
        warm_start_gp: Beyond the paper: start each epoch's GP fit from the previous fit's
            hyperparameters (the paper fits from scratch).
        incumbent: *Preset.* EI's τ: the best outcome of ``all`` observations (the paper; with
            raw accuracies from Random-Start in the data it is out of reach of any later
            difference, so EI only rewards variance and suggestions land on the bounds) or of
            the ``last-epoch``'s (the improvement to beat now).
        switch_to: *Preset.* When the trend test says switch: continue from the BO
            ``suggestion``'s branch (Algorithm 4, line 12, whatever it scored), or from the
            ``better-branch`` of the two (never a branch that did worse than keeping).
        patience: *Preset.* Switch after this many epochs in a row in which a suggestion's
            branch beat the current one by more than ``lost_margin``, whatever the trend test
            says (it keeps an lr while accuracy rises, however slowly); ``None``: never.
        lost_margin: How much better (in the outcome's units: log-loss, or an accuracy
            fraction) a suggestion's branch must be for the current lr to have "lost", >= 0.
        widen: *Preset.* When a suggestion on a bound of the lr range wins, move that bound
            out by ``widen_factor`` (at most ``max_widenings`` times per side) and say so in
            the decision; the GP's inputs are re-encoded in the new range.
        widen_factor: How far a bound moves, > 1.
        max_widenings: How many times each bound may move, >= 0.
        num_restarts: Restarts of the acquisition optimiser.
        raw_samples: Raw samples of the acquisition optimiser's initialisation.
        seed: Seeds Random-Start, the trend test's draws and the optimiser (with the task's seed).
        batched: Train Random-Start's candidates and each epoch's branches as one batched
            computation (``trainers.Branches``) when the architecture allows, else one after
            another (logged once). The two agree to float rounding.
    """

    #: What each preset sets (a field given explicitly overrides its preset).
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS

    preset: str = "robust"
    hyperparameters: tuple[str, ...] = ("lr",)
    lr_min: float | None = FROM_PRESET  # paper: 1e-4 (the search space)
    lr_max: float | None = FROM_PRESET  # paper: 1.0
    lr_relative: tuple[float, float] = (0.01, 10.0)
    momentum_bounds: tuple[float, float] = (0.0, 0.99)
    beta1_bounds: tuple[float, float] = (0.0, 0.99)
    beta2_bounds: tuple[float, float] = (0.9, 0.9999)
    n_random_start: int = 5  # Hyperdyn §4: "The number of initial search points ... was 5"
    outcome: str = FROM_PRESET
    random_start_outcome: str = FROM_PRESET  # paper: Algorithm 3, line 6
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
    incumbent: str = FROM_PRESET
    switch_to: str = FROM_PRESET  # paper: Algorithm 4, line 12
    patience: int | None = FROM_PRESET
    lost_margin: float = 0.05
    widen: bool = FROM_PRESET
    widen_factor: float = math.sqrt(10.0)  # half a decade
    max_widenings: int = 4
    num_restarts: int = 8
    raw_samples: int = 128
    seed: int = 0
    batched: bool = True

    def __post_init__(self) -> None:
        owner = type(self).__name__
        fill_preset(self, PRESETS)
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
        if self.lr_min is not None and self.lr_max is not None:
            check_lr_bounds(owner, self.lr_min, self.lr_max)
        for name in ("lr_min", "lr_max"):  # one bound given: the other is relative
            if getattr(self, name) is not None:
                check_range(owner, name, getattr(self, name), 0.0, low_closed=False)
        lo, hi = _pair(owner, "lr_relative", self.lr_relative)
        object.__setattr__(self, "lr_relative", (float(lo), float(hi)))
        check_range(owner, "lr_relative", lo, 0.0, low_closed=False)
        if not lo < hi or not math.isfinite(hi):
            raise ValueError(
                f"{owner}.`lr_relative` must be (low, high) with 0 < low < high < inf, "
                f"but got lr_relative={(lo, hi)!r}."
            )
        for name in ("momentum_bounds", "beta1_bounds", "beta2_bounds"):
            lo, hi = _pair(owner, name, getattr(self, name))
            object.__setattr__(self, name, (float(lo), float(hi)))
            check_range(owner, name, lo, 0.0, 1.0, high_closed=False)
            check_range(owner, name, hi, 0.0, 1.0, high_closed=False)
            if not lo < hi:
                raise ValueError(
                    f"{owner}.`{name}` must be (low, high) with low < high, "
                    f"but got {name}={(lo, hi)!r}."
                )
        check_range(owner, "n_random_start", self.n_random_start, 1, integer=True)
        check_choice(owner, "outcome", self.outcome, ("metric", "loss"))
        check_choice(
            owner, "random_start_outcome", self.random_start_outcome, ("accuracy", "difference")
        )
        check_range(owner, "window", self.window, 1, integer=True)
        check_range(owner, "temperature", self.temperature, 0.0, low_closed=False)
        if self.temperature_final is not None:
            check_range(owner, "temperature_final", self.temperature_final, 0.0, low_closed=False)
        check_range(owner, "offset", self.offset, 0.0, allow_inf=True)
        check_choice(owner, "accuracy_unit", self.accuracy_unit, ("percent", "fraction"))
        check_range(owner, "alpha", self.alpha, 0.0, low_closed=False)
        check_range(owner, "beta", self.beta, 0.0, low_closed=False)
        check_range(owner, "q", self.q, 1, integer=True)
        check_choice(owner, "incumbent", self.incumbent, ("all", "last-epoch"))
        check_choice(owner, "switch_to", self.switch_to, ("suggestion", "better-branch"))
        if self.patience is not None:
            check_range(owner, "patience", self.patience, 1, integer=True)
        check_range(owner, "lost_margin", self.lost_margin, 0.0)
        check_choice(owner, "widen", self.widen, (True, False))
        check_range(owner, "widen_factor", self.widen_factor, 1.0, low_closed=False)
        check_range(owner, "max_widenings", self.max_widenings, 0, integer=True)
        check_range(owner, "num_restarts", self.num_restarts, 1, integer=True)
        check_range(owner, "raw_samples", self.raw_samples, 1, integer=True)
        check_range(owner, "seed", self.seed, 0, integer=True)
        check_choice(owner, "batched", self.batched, (True, False))


@dataclass(frozen=True, kw_only=True)
class EpochBOConfig(HyperdynConfig):
    """``HyperdynConfig`` with ``offset = inf`` and ``switch_to="suggestion"``: always continue
    from the BO suggestion's branch (the paper's greedy baseline), in either preset.

    ``offset`` is what makes it epoch-based BO: another value is ignored, with a warning (use
    ``Hyperdyn(offset=...)`` for the trend test)."""

    offset: float = math.inf
    switch_to: str = "suggestion"

    def __post_init__(self) -> None:
        if self.offset != math.inf:
            warnings.warn(
                f"EpochBOConfig.`offset` is always inf (epoch-based BO switches every epoch), "
                f"so offset={self.offset!r} is ignored; use Hyperdyn(offset={self.offset!r}) "
                "for the wait-and-watch trend test.",
                UserWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "offset", math.inf)
        super().__post_init__()


def _pair(owner: str, name: str, value: Any) -> tuple[Any, Any]:
    """``value`` as ``(low, high)``.

    Raises:
        TypeError: ``value`` is not a pair.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"{owner}.`{name}` must be a pair (low, high), but got {name}={value!r}.")
    return value[0], value[1]
