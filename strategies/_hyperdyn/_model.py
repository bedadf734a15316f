"""Hyperdyn's surrogate: a BoTorch GP over (hyperparameters, epoch), and its EI suggestion."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from strategies._hyperdyn._kernel import TimeDecayKernel

DTYPE = torch.float64  # BoTorch's advice for GPs


@dataclass
class Suggestion:
    """The outcome of one BO decision.

    Attributes:
        x: A `q x d` tensor of suggested points in the unit cube (hyperparameters only).
        log_ei: The (log) expected improvement of the suggestion (joint for ``q > 1``).
        fit_seconds: Time spent fitting the GP.
        acq_seconds: Time spent maximising the acquisition function.
        warnings: BoTorch/GPyTorch warnings caught during the decision.
        state: The fitted GP's hyperparameters, for a warm start next time.
    """

    x: Tensor
    log_ei: float
    fit_seconds: float
    acq_seconds: float
    warnings: int
    state: dict[str, Tensor] | None


def build_gp(
    X: Tensor,
    Y: Tensor,
    *,
    time_scale: float,
    alpha: float = 1.0,
    beta: float = 0.5,
    learn_time_kernel: bool = False,
    time_kernel: Any = None,
    rbf: bool = False,
) -> Any:
    r"""A ``SingleTaskGP`` with a product kernel over (hyperparameters, time): Hyperdyn's, and
    PB2's with ``time_kernel`` and ``rbf``.

    .. math::
        K((\eta_1, t_1), (\eta_2, t_2)) = s \cdot K_1(\eta_1, \eta_2)\,K_2(t_1, t_2),

    :math:`K_1` a Matérn-5/2 (``rbf``: squared-exponential) with ARD over the other dimensions
    (BoTorch's dimension-scaled log-normal lengthscale prior), :math:`K_2` the time kernel on
    the last column (default: ``TimeDecayKernel``), :math:`s` the ``ScaleKernel``'s output
    scale. Outcomes are standardised.

    Args:
        X: A `n x (d + 1)` tensor: ``d`` inputs in [0, 1], then the time divided by
            ``time_scale``.
        Y: A `n x 1` tensor of outcomes.
        time_scale: Epochs (rounds) per unit of the last column.
        alpha, beta, learn_time_kernel: The ``TimeDecayKernel``'s parameters.
        time_kernel: Another time kernel, built with ``active_dims=[d]`` (PB2's
            ``TimeVaryingKernel``).
        rbf: A squared-exponential :math:`K_1` instead of the Matérn-5/2.

    Returns:
        The (unfitted) model.
    """
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
    from gpytorch.kernels import ScaleKernel

    d = X.shape[-1] - 1
    k1 = get_covar_module_with_dim_scaled_prior(
        ard_num_dims=d, use_rbf_kernel=rbf, active_dims=list(range(d))
    )
    k2 = time_kernel
    if k2 is None:
        k2 = TimeDecayKernel(
            alpha, beta, time_scale=time_scale, learnable=learn_time_kernel, active_dims=[d]
        )
    covar = ScaleKernel(k1 * k2)
    return SingleTaskGP(X, Y, covar_module=covar, outcome_transform=Standardize(m=1))


def suggest(
    X: Tensor,
    Y: Tensor,
    t_unit: float,
    *,
    time_scale: float,
    best_f: float,
    q: int = 1,
    alpha: float = 1.0,
    beta: float = 0.5,
    learn_time_kernel: bool = False,
    warm_state: dict[str, Tensor] | None = None,
    num_restarts: int = 8,
    raw_samples: int = 128,
    seed: int = 0,
) -> Suggestion:
    r"""Fit the GP on all observations and maximise (log) EI over the hyperparameters with the
    epoch fixed at ``t_unit`` (the paper's search space :math:`S \times [t, t]`).

    ``LogExpectedImprovement`` has the same argmax as ``ExpectedImprovement`` and is numerically
    sound where EI underflows (BoTorch's advice); ``q > 1`` uses the joint
    ``qLogExpectedImprovement`` (Monte Carlo), giving ``q`` points to try in parallel.

    Args:
        X: A `n x (d + 1)` tensor of observed inputs (unit cube, epoch last).
        Y: A `n x 1` tensor of outcomes.
        t_unit: The current epoch in the units of ``X``'s last column.
        time_scale: Epochs per unit of the last column.
        best_f: The incumbent :math:`\tau` of EI.
        q: Points to suggest.
        warm_state: Hyperparameters of the previous fit to start from.
        num_restarts, raw_samples: The acquisition optimiser's effort.
        seed: Seeds the optimiser's random starts (the global RNG is left alone).

    Returns:
        The suggestion, a `q x d` tensor in the unit cube.
    """
    from botorch.acquisition import LogExpectedImprovement, qLogExpectedImprovement
    from botorch.exceptions import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    d = X.shape[-1] - 1
    caught = 0
    with torch.random.fork_rng(), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.manual_seed(seed)
        start = time.perf_counter()
        model = build_gp(
            X,
            Y,
            time_scale=time_scale,
            alpha=alpha,
            beta=beta,
            learn_time_kernel=learn_time_kernel,
        )
        if warm_state is not None:
            model.load_state_dict(_hyperparameters_only(warm_state), strict=False)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        try:
            fit_gpytorch_mll(mll)
        except ModelFittingError:
            caught += 1  # keep the prior / warm-start values: the suggestion is still valid
        model.eval()
        fit_seconds = time.perf_counter() - start

        start = time.perf_counter()
        if q == 1:
            acq = LogExpectedImprovement(model, best_f=best_f)
        else:
            acq = qLogExpectedImprovement(model, best_f=best_f)
        bounds = torch.zeros(2, d + 1, dtype=X.dtype)
        bounds[1, :d] = 1.0
        bounds[:, d] = t_unit
        cand, value = optimize_acqf(
            acq,
            bounds=bounds,
            q=q,
            num_restarts=num_restarts,
            raw_samples=raw_samples,
            fixed_features={d: t_unit},
        )
        acq_seconds = time.perf_counter() - start
    caught += len(seen)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Suggestion(
        x=cand[..., :d].detach().clamp(0.0, 1.0),
        log_ei=float(value.detach().reshape(-1)[0]),
        fit_seconds=fit_seconds,
        acq_seconds=acq_seconds,
        warnings=caught,
        state=state,
    )


def _hyperparameters_only(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The kernel/likelihood hyperparameters of a GP state dict (not its training data or
    outcome transform, which change every epoch)."""
    return {
        k: v
        for k, v in state.items()
        if ("raw_" in k or k.endswith("constant"))
        and not k.startswith("outcome_transform")
        and math.prod(v.shape) <= 64
    }
