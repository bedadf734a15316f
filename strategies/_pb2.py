r"""``PB2``: Population-Based Bandits (Parker-Holder et al., 2020) — PBT whose explore step is a
time-varying GP bandit."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hpo._validation import check_range
from strategies._hyperdyn._space import decode, encode
from strategies._pbt import PBT, PopulationConfig, Space

if TYPE_CHECKING:
    import optuna
    from torch import Tensor


@dataclass(frozen=True, kw_only=True)
class PB2Config(PopulationConfig):
    r"""Configuration of ``PB2``. The population's fields are ``PopulationConfig``'s (Ray
    Tune's PB2 keeps PBT's ``quantile_fraction`` 0.25 and exploit step); where the paper is
    silent, Ray Tune's defaults, each named.

    Args:
        epsilon: The time kernel's initial :math:`\epsilon` (fitted in [1e-5, 0.5]); Ray Tune:
            0.1.
        ucb_c1, ucb_c2: :math:`\beta_t = c_1 + \max(0, \log(c_2 N))` for :math:`N`
            observations, the UCB weight :math:`\sqrt{\beta_t}` (Ray Tune: 0.2 and 0.4; the
            paper's :math:`\beta_t` is a regret bound's, not meant to be run).
        window: The most recent observations the GP is fitted on (Ray Tune keeps 1000).
        num_restarts: L-BFGS-B starts of the acquisition's maximisation (Ray Tune: 10).
        raw_samples: Random points the starts are chosen from (BoTorch's initialisation; Ray
            Tune starts from 10 uniform points).
        population, interval, quantile, lr_min, lr_max, hyperparameters, seed, batched: As in
            ``PopulationConfig``.
    """

    epsilon: float = 0.1  # Ray Tune's TV_SquaredExp epsilon
    ucb_c1: float = 0.2  # Ray Tune's UCB c1
    ucb_c2: float = 0.4  # Ray Tune's UCB c2
    window: int = 1000  # Ray Tune keeps the last 1000 rows
    num_restarts: int = 10  # Ray Tune: 10 L-BFGS-B starts
    raw_samples: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = "PB2Config"
        check_range(owner, "epsilon", self.epsilon, 1e-5, 0.5)
        check_range(owner, "ucb_c1", self.ucb_c1, 0.0)
        check_range(owner, "ucb_c2", self.ucb_c2, 0.0, low_closed=False)
        check_range(owner, "window", self.window, 2, integer=True)
        check_range(owner, "num_restarts", self.num_restarts, 1, integer=True)
        check_range(owner, "raw_samples", self.raw_samples, 1, integer=True)


class PB2(PBT):
    r"""Population-Based Bandits: PBT's population, exploit step and lineage, with the explore
    step of Parker-Holder et al. (2020).

    Every ``interval`` epochs (a *round*) each member reports its score; the change of its score
    over the round, :math:`y`, is an observation of the function
    :math:`f(r, h, t)` of the score :math:`r` it started the round from, the hyperparameters
    :math:`h` it trained with, and the round :math:`t`. A GP with the time-varying kernel

    .. math::
        K((r, h, t), (r', h', t')) = s \, k_{SE}((r, h), (r', h')) \, (1 - \epsilon)^{|t - t'|/2}

    (``TimeVaryingKernel``; the squared-exponential with ARD lengthscales) is fitted on the last
    ``window`` observations (inputs in the unit cube: :math:`r` min-max, :math:`h` by its range,
    log for the lr; outcomes standardised and clipped to :math:`\pm 2`, as Ray Tune does).
    After PBT's exploit, each member that copied a source chooses its new :math:`h` by maximising

    .. math::
        \mathrm{UCB}(h) = \mu(r_s, h, t) + \sqrt{\beta_t}\,\sigma_B(r_s, h, t),

    at the source's score :math:`r_s` and the current round, with the paper's batch rule
    (GP-BUCB, Desautels et al., 2014): :math:`\sigma_B` is the posterior standard deviation
    given the values already chosen in this round as pending observations (the GP's
    hyperparameters kept), so one round's choices spread out. Until the GP has observations
    (the first round) explore draws at random. Ray Tune weights the variance, not the standard
    deviation, and refits the GP for :math:`\sigma_B`; we follow the paper in both.

    The GP and its fitting are Hyperdyn's (``build_gp`` with another time kernel).

    Example:
        >>> import hpo
        >>> from strategies import PB2
        >>> h = hpo.run(hpo.testing.boring_task(epochs=3), PB2(population=3, interval=1),
        ...             tracking=False)
        >>> h.final.spent_steps == 3 * h.final.steps, len(h.info["lineage"]) >= 1
        (True, True)
    """

    name: ClassVar[str] = "pb2"
    config_class: ClassVar[type] = PB2Config
    config: PB2Config

    @classmethod
    def suggest(cls, trial: optuna.Trial) -> PB2:
        """Population (4..16) and interval (1..5 epochs)."""
        return cls(
            population=trial.suggest_int("population", 4, 16),
            interval=trial.suggest_int("interval", 1, 5),
        )

    def make_explorer(self, space: Space) -> GPBandit:
        """A fresh GP bandit for one run over ``space``."""
        return GPBandit(self.config, space)


class GPBandit:
    """PB2's explore step: the observations of one run and the UCB choice (see ``PB2``).

    Args:
        config: The strategy's config.
        space: name -> (low, high, log) of the tuned hyperparameters.
    """

    def __init__(self, config: PB2Config, space: Space) -> None:
        self.config = config
        self.names = list(space)
        self.bounds = [space[n] for n in self.names]  # Hyperdyn's ``Space`` layout
        self.rows: list[list[float]] = []  # [r, h in the unit cube..., round, y]
        self.baselines: list[tuple[int, list[float], float] | None] = []  # round, h, r
        self.pending: list[list[float]] = []  # this round's choices (GP-BUCB)
        self.round = 0

    # ------------------------------------------------------------------ observations

    def observe(self, round_: int, scores: Sequence[float]) -> None:
        """Each member's score change since its baseline becomes an observation; a new round's
        batch starts."""
        for k, score in enumerate(scores):
            base = self.baselines[k] if k < len(self.baselines) else None
            if base is None or not math.isfinite(score) or not math.isfinite(base[2]):
                continue
            t0, unit, r0 = base
            self.rows.append([r0, *unit, float(t0), (score - r0) / max(round_ - t0, 1)])
        self.rows = self.rows[-self.config.window :]
        self.pending = []
        self.round = round_

    def restart(
        self, round_: int, hyperparameters: Sequence[Mapping[str, float]], scores: Sequence[float]
    ) -> None:
        """The values and scores the members start the next round from."""
        self.baselines = [
            (round_, [min(max(u, 0.0), 1.0) for u in encode(h, self.bounds, self.names)], float(s))
            for h, s in zip(hyperparameters, scores)
        ]

    # ------------------------------------------------------------------ the choice

    def explore(
        self, values: Mapping[str, float], source_score: float, rng: np.random.Generator
    ) -> tuple[dict[str, float], tuple[str, ...]]:
        """The UCB choice for a member that copied a source at ``source_score`` (random while
        there are fewer than 2 observations)."""
        out = dict(values)
        if len(self.rows) < 2 or not math.isfinite(source_score):
            unit = rng.uniform(size=len(self.names)).tolist()
            resampled: tuple[str, ...] = tuple(self.names)
        else:
            unit = self._ucb_choice(source_score, int(rng.integers(2**31 - 1)))
            resampled = ()
        self.pending.append(unit)
        out.update(decode(unit, self.bounds, self.names))
        return out, resampled

    def _ucb_choice(self, source_score: float, seed: int) -> list[float]:
        import torch
        from botorch.acquisition import AcquisitionFunction
        from botorch.optim import optimize_acqf

        cfg, d = self.config, len(self.names)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model, spread, fixed = self._models(source_score)
            beta = cfg.ucb_c1 + max(0.0, math.log(cfg.ucb_c2 * len(self.rows)))

            class _BatchUCB(AcquisitionFunction):
                def forward(self, X: Tensor) -> Tensor:  # `b x 1 x (d + 2)` -> `b`
                    mean = model.posterior(X).mean.reshape(-1)
                    std = spread.posterior(X).variance.clamp_min(1e-12).sqrt().reshape(-1)
                    return mean + math.sqrt(beta) * std

            bounds = torch.zeros(2, d + 2, dtype=torch.float64)
            bounds[1] = 1.0
            for i, v in fixed.items():
                bounds[:, i] = v
            cand, _ = optimize_acqf(
                _BatchUCB(model),
                bounds=bounds,
                q=1,
                num_restarts=cfg.num_restarts,
                raw_samples=cfg.raw_samples,
                fixed_features=fixed,
            )
        return cand[0, 1 : 1 + d].clamp(0.0, 1.0).tolist()

    def posterior(
        self, unit: Sequence[Sequence[float]], source_score: float
    ) -> tuple[list[float], list[float]]:
        r"""The GP's mean and the batch rule's standard deviation :math:`\sigma_B` (this
        round's choices pending) at hyperparameters ``unit`` (points in the unit cube), for a
        member starting from ``source_score`` in the current round: what UCB weighs."""
        import torch

        model, spread, fixed = self._models(source_score)
        d = len(self.names)
        X = torch.tensor(
            [[fixed[0], *u, fixed[d + 1]] for u in unit], dtype=torch.float64
        ).unsqueeze(1)
        with torch.no_grad():
            mean = model.posterior(X).mean.reshape(-1)
            std = spread.posterior(X).variance.clamp_min(0).sqrt().reshape(-1)
        return mean.tolist(), std.tolist()

    def _models(self, source_score: float) -> tuple[Any, Any, dict[int, float]]:
        """The GP fitted on the observations; the same GP given this round's choices as
        pending observations (GP-BUCB: the mean is unchanged, the variance shrinks there);
        and the inputs fixed for the choice (the source's score and the round)."""
        import torch
        from botorch.exceptions import ModelFittingError
        from botorch.fit import fit_gpytorch_mll
        from gpytorch.mlls import ExactMarginalLogLikelihood

        from strategies._hyperdyn import TimeVaryingKernel, build_gp
        from strategies._hyperdyn._model import DTYPE

        d = len(self.names)
        data = torch.tensor(self.rows, dtype=DTYPE)
        r, h, t, y = data[:, :1], data[:, 1 : 1 + d], data[:, 1 + d : 2 + d], data[:, -1:]
        r_lo = min(float(r.min()), source_score)
        r_hi = max(float(r.max()), source_score)
        scale = r_hi - r_lo + 1e-8
        X = torch.cat([(r - r_lo) / scale, h, t], dim=1)
        y = ((y - y.mean()) / (y.std() + 1e-8) if len(y) > 1 else y - y).clamp(-2.0, 2.0)
        fixed = {0: (source_score - r_lo) / scale, d + 1: float(self.round)}
        kernel = TimeVaryingKernel(self.config.epsilon, active_dims=[d + 1])
        model = build_gp(X, y, time_scale=1.0, time_kernel=kernel, rbf=True)
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        except ModelFittingError:
            pass  # keep the prior's hyperparameters: the choice is still a valid UCB one
        model.eval()
        spread = model
        if self.pending:
            Xp = torch.tensor([[fixed[0], *p, fixed[d + 1]] for p in self.pending], dtype=DTYPE)
            with torch.no_grad():
                yp = model.posterior(Xp).mean  # any values: the variance does not depend on them
            spread = model.condition_on_observations(Xp, yp)
        return model, spread, fixed

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "baselines": [None if b is None else [b[0], b[1], b[2]] for b in self.baselines],
            "pending": self.pending,
            "round": self.round,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [list(map(float, row)) for row in state["rows"]]
        self.baselines = [
            None if b is None else (int(b[0]), list(map(float, b[1])), float(b[2]))
            for b in state["baselines"]
        ]
        self.pending = [list(map(float, p)) for p in state["pending"]]
        self.round = int(state["round"])
