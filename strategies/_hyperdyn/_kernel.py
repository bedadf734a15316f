"""``TimeDecayKernel``: Hyperdyn's time kernel K2, the freeze-thaw exponential-decay mixture."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

with warnings.catch_warnings():
    # gpytorch / linear_operator call torch.jit.script at import, which torch >= 2.10 flags as
    # deprecated: nothing a user of this package can act on.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from gpytorch.constraints import Positive
    from gpytorch.kernels import Kernel


class TimeDecayKernel(Kernel):
    r"""The time kernel of Hyperdyn (after Swersky et al., 2014, §3).

    .. math::
        K_2(t_1, t_2) = \int_0^\infty e^{-\lambda |t_1 - t_2|}\,\psi(d\lambda)
                      = \frac{\beta^\alpha}{(|t_1 - t_2| + \beta)^\alpha},

    with :math:`\psi` a Gamma(:math:`\alpha`, :math:`\beta`) mixing law. A mixture of
    exponential decays, so it is positive definite; stationary in :math:`t`; and
    :math:`K_2(t, t) = 1`. Hyperdyn's defaults :math:`\alpha = 1, \beta = 1/2` follow SGD's
    :math:`O(N^{-1/2})` decay: :math:`K_2 = 1/3` one epoch apart, :math:`1/9` four apart.

    Epochs may be fed rescaled (inputs in the unit cube): with ``time_scale`` = epochs per
    input unit, the distance is :math:`|x_1 - x_2| \cdot` ``time_scale`` epochs, so ``beta``
    stays in epochs.

    Args:
        alpha: :math:`\alpha > 0`.
        beta: :math:`\beta > 0`, in epochs.
        time_scale: Epochs per unit of the input, > 0.
        learnable: Fit :math:`\alpha` and :math:`\beta` with the GP (under positivity
            constraints); by default they are fixed at the paper's values.
        **kwargs: ``Kernel`` arguments, typically ``active_dims=[d]`` (the epoch column).

    Shapes:
        ``x1``: `batch_shape x n x 1`, ``x2``: `batch_shape x m x 1` (the epoch column);
        the result is `batch_shape x n x m` (`batch_shape x n` with ``diag=True``).

    Example:
        >>> k = TimeDecayKernel()
        >>> t = torch.tensor([[0.0], [1.0], [4.0]])
        >>> k(t).to_dense()
        tensor([[1.0000, 0.3333, 0.1111],
                [0.3333, 1.0000, 0.1429],
                [0.1111, 0.1429, 1.0000]])
    """

    has_lengthscale = False

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 0.5,
        *,
        time_scale: float = 1.0,
        learnable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not alpha > 0 or not beta > 0 or not time_scale > 0:
            raise ValueError(
                "TimeDecayKernel: `alpha`, `beta` and `time_scale` must be > 0, but got "
                f"alpha={alpha!r}, beta={beta!r}, time_scale={time_scale!r}."
            )
        self.time_scale = float(time_scale)
        self.learnable = learnable
        for name, value in (("alpha", alpha), ("beta", beta)):
            constraint = Positive()
            raw = constraint.inverse_transform(torch.tensor(float(value)))
            self.register_parameter(
                f"raw_{name}", torch.nn.Parameter(raw, requires_grad=learnable)
            )
            self.register_constraint(f"raw_{name}", constraint)

    @property
    def alpha(self) -> Tensor:
        return self.raw_alpha_constraint.transform(self.raw_alpha)

    @property
    def beta(self) -> Tensor:
        return self.raw_beta_constraint.transform(self.raw_beta)

    def forward(
        self,
        x1: Tensor,
        x2: Tensor,
        diag: bool = False,
        last_dim_is_batch: bool = False,
        **params: Any,
    ) -> Tensor:
        if last_dim_is_batch:
            raise NotImplementedError("TimeDecayKernel does not support last_dim_is_batch.")
        dist = _time_distance(x1, x2, self.time_scale, diag)
        beta = self.beta.to(x1)
        return (beta / (dist + beta)).pow(self.alpha.to(x1))


class TimeVaryingKernel(Kernel):
    r"""The time-varying kernel of PB2 (after Bogunovic et al., 2016): old observations count
    less, geometrically.

    .. math::
        K_t(t_1, t_2) = (1 - \epsilon)^{|t_1 - t_2| / 2},

    with :math:`\epsilon \in [10^{-5}, 0.5]` (Ray Tune's bounds) fitted with the GP, starting at
    0.1 (Ray Tune's default). Multiplied with a kernel over the other inputs it is the
    time-varying GP bandit's kernel: a function that drifts with :math:`\epsilon` per round.

    Args:
        epsilon: The initial :math:`\epsilon`.
        time_scale: Rounds per unit of the input, > 0 (the input may be rescaled time).
        **kwargs: ``Kernel`` arguments, typically ``active_dims=[d]`` (the time column).

    Example:
        >>> k = TimeVaryingKernel(epsilon=0.19)
        >>> k(torch.tensor([[0.0], [2.0]])).to_dense()
        tensor([[1.0000, 0.8100],
                [0.8100, 1.0000]], grad_fn=<PowBackward1>)
    """

    has_lengthscale = False

    def __init__(self, epsilon: float = 0.1, *, time_scale: float = 1.0, **kwargs: Any) -> None:
        from gpytorch.constraints import Interval

        super().__init__(**kwargs)
        if not 1e-5 <= epsilon <= 0.5 or not time_scale > 0:
            raise ValueError(
                "TimeVaryingKernel: `epsilon` must be in [1e-5, 0.5] and `time_scale` > 0, but "
                f"got epsilon={epsilon!r}, time_scale={time_scale!r}."
            )
        self.time_scale = float(time_scale)
        constraint = Interval(1e-5, 0.5)
        raw = constraint.inverse_transform(torch.tensor(float(epsilon)))
        self.register_parameter("raw_epsilon", torch.nn.Parameter(raw))
        self.register_constraint("raw_epsilon", constraint)

    @property
    def epsilon(self) -> Tensor:
        return self.raw_epsilon_constraint.transform(self.raw_epsilon)

    def forward(
        self,
        x1: Tensor,
        x2: Tensor,
        diag: bool = False,
        last_dim_is_batch: bool = False,
        **params: Any,
    ) -> Tensor:
        if last_dim_is_batch:
            raise NotImplementedError("TimeVaryingKernel does not support last_dim_is_batch.")
        dist = _time_distance(x1, x2, self.time_scale, diag)
        return (1 - self.epsilon.to(x1)).pow(dist / 2)


def _time_distance(x1: Tensor, x2: Tensor, time_scale: float, diag: bool) -> Tensor:
    """``|t1 - t2|`` in epochs (rounds) of the time columns: `batch x n x m` (`batch x n` with
    ``diag``)."""
    t1 = x1[..., 0] * time_scale  # `batch x n`
    t2 = x2[..., 0] * time_scale  # `batch x m`
    if diag:
        return (t1 - t2).abs()
    return (t1.unsqueeze(-1) - t2.unsqueeze(-2)).abs()
