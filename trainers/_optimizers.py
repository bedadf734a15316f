"""The classic optimizers by name, built on ``torch.optim`` with its ``foreach`` path.

=========  ==========================================================================
name       update (``torch.optim`` class and settings)
=========  ==========================================================================
sgd        ``SGD`` without momentum: w -= lr g
momentum   ``SGD(momentum=0.9)``: v = mu v + g; w -= lr v
nesterov   ``SGD(momentum=0.9, nesterov=True)``
adagrad    ``Adagrad``
adadelta   ``Adadelta`` (lr multiplies the unit-corrected step; 1.0 is Zeiler's method)
rmsprop    ``RMSprop(alpha=0.99)``
adam       ``Adam(betas=(0.9, 0.999))``
adamw      ``AdamW(weight_decay=0.01 unless given)``
=========  ==========================================================================

and the learning-rate-free optimizers from their packages (``trainers._lr_free``):
``schedulefree-adamw``, ``schedulefree-sgd``, ``prodigy``, ``dadapt-adam``, ``dadapt-sgd``, at
their documented defaults.

``foreach=True`` is passed wherever torch offers it: on CPU torch's default is the per-tensor
loop (``foreach`` is only picked automatically on CUDA), and the batched path is faster even
for small models (``benchmarks/trainer_throughput.py`` prints the difference).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainers._lr_free import LR_FREE, LR_FREE_LRS, WITH_MOMENTUM, build_lr_free
from trainers._validation import check_range

OPTIMIZERS: tuple[str, ...] = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "adamw",
    *LR_FREE,
)

# A good constant lr for each optimizer on the MNIST-1D CNN (batch 100), used when a strategy is
# given no lr. Measured with `python studies/lr_sweep.py`-style sweeps; adaptive methods want
# much smaller lrs than SGD, so one number for all would be wrong for most.
DEFAULT_LRS: dict[str, float] = {
    "sgd": 0.3,
    "momentum": 0.1,
    "nesterov": 0.1,
    "adagrad": 0.1,
    "adadelta": 1.0,
    "rmsprop": 1e-2,
    "adam": 2e-2,
    "adamw": 2e-2,
    **LR_FREE_LRS,  # their packages' defaults: "no tuning" means no tuning
}


#: The optimizers that take a ``momentum`` / ``betas``.
MOMENTUM_OPTIMIZERS: tuple[str, ...] = ("momentum", "nesterov", "rmsprop", *WITH_MOMENTUM)
BETAS_OPTIMIZERS: tuple[str, ...] = (
    "adam",
    "adamw",
    "schedulefree-adamw",
    "prodigy",
    "dadapt-adam",
)


def build_optimizer(
    name: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    *,
    lr: float | None = None,
    weight_decay: float | None = None,
    momentum: float | None = None,
    betas: tuple[float, float] | None = None,
    foreach: bool | None = True,
) -> torch.optim.Optimizer:
    """Build one of the classic optimizers by name.

    Args:
        name: One of ``OPTIMIZERS``.
        params: The parameters (or param groups) to optimize.
        lr: Initial learning rate (> 0); ``None`` uses ``DEFAULT_LRS[name]``. Strategies set the
            lr of each step, so this is only where training starts.
        weight_decay: L2 penalty (decoupled for adamw), >= 0; ``None`` uses torch's default
            (0, and 0.01 for adamw).
        momentum: Momentum of momentum/nesterov (default 0.9), rmsprop (default 0) or the
            lr-free schedulefree-sgd / dadapt-sgd (their defaults), in [0, 1).
        betas: (beta1, beta2) of adam, adamw, schedulefree-adamw, prodigy, dadapt-adam, each
            in [0, 1).
        foreach: Use torch's multi-tensor path (``None`` lets torch decide).

    Raises:
        ValueError: Unknown ``name`` (the message lists the known ones) or a bad value.

    Example:
        >>> import torch
        >>> opt = build_optimizer("nesterov", [torch.zeros(3, requires_grad=True)], lr=0.1)
        >>> type(opt).__name__, opt.param_groups[0]["nesterov"]
        ('SGD', True)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; known optimizers: {', '.join(OPTIMIZERS)}.")
    lr = DEFAULT_LRS[name] if lr is None else lr
    check_range("build_optimizer", "lr", lr, 0.0, low_closed=False)
    if weight_decay is not None:
        check_range("build_optimizer", "weight_decay", weight_decay, 0.0)
    if momentum is not None:
        check_range("build_optimizer", "momentum", momentum, 0.0, 1.0, high_closed=False)
    if betas is not None:
        for i, b in enumerate(betas):
            check_range("build_optimizer", f"betas[{i}]", b, 0.0, 1.0, high_closed=False)
    if momentum is not None and name not in MOMENTUM_OPTIMIZERS:
        raise ValueError(
            f"build_optimizer: `momentum` applies to {', '.join(MOMENTUM_OPTIMIZERS)}, "
            f"not to {name!r}."
        )
    if betas is not None and name not in BETAS_OPTIMIZERS:
        raise ValueError(
            f"build_optimizer: `betas` applies to {', '.join(BETAS_OPTIMIZERS)}, not to {name!r}."
        )
    if name in LR_FREE:
        return build_lr_free(
            name, params, lr=lr, weight_decay=weight_decay, momentum=momentum, betas=betas
        )

    opt = torch.optim
    common: dict[str, Any] = {"lr": lr, "foreach": foreach}
    if weight_decay is not None:
        common["weight_decay"] = weight_decay
    if name == "sgd":
        return opt.SGD(params, **common)
    if name in ("momentum", "nesterov"):
        mu = 0.9 if momentum is None else momentum
        return opt.SGD(params, momentum=mu, nesterov=name == "nesterov", **common)
    if name == "adagrad":
        return opt.Adagrad(params, **common)
    if name == "adadelta":
        return opt.Adadelta(params, **common)
    if name == "rmsprop":
        return opt.RMSprop(params, momentum=momentum or 0.0, **common)
    if name == "adam":
        return opt.Adam(params, betas=betas or (0.9, 0.999), **common)
    return opt.AdamW(params, betas=betas or (0.9, 0.999), **common)


# =============================================================================================
# The registry: the classic optimizers by name, and families of optimizers that upper layers
# register under a prefix (``strategies`` registers NOS's ``nos:*``).
# =============================================================================================


@dataclass(frozen=True)
class OptimizerFamily:
    """Optimizers named ``<prefix><spec>``, registered by a layer above ``trainers``.

    Attributes:
        prefix: The names' prefix (``"nos:"``).
        check: ``(name, momentum=..., weight_decay=...) -> None``; raises ``ValueError`` with a
            message naming ``optimizer`` for a name it does not know or options it does not take.
        build: ``(name, params, *, total_steps, seed, momentum, weight_decay) -> Optimizer``.
        known: The names to list in error messages.
    """

    prefix: str
    check: Callable[..., None]
    build: Callable[..., torch.optim.Optimizer]
    known: Callable[[], Sequence[str]]


_FAMILIES: dict[str, OptimizerFamily] = {}


def register_optimizer_family(family: OptimizerFamily) -> None:
    """Make ``<prefix>...`` names resolvable by ``check_optimizer`` and ``make_optimizer``
    (registering the same prefix again replaces it)."""
    _FAMILIES[family.prefix] = family


def _family(name: str) -> OptimizerFamily | None:
    return next((f for p, f in _FAMILIES.items() if name.startswith(p)), None)


def check_optimizer(
    name: str, *, momentum: float | None = None, weight_decay: float | None = None
) -> None:
    """Raise ``ValueError`` unless ``name`` is a classic optimizer or a registered family's.

    Example:
        >>> check_optimizer("adam")
        >>> try:
        ...     check_optimizer("lion")
        ... except ValueError as err:
        ...     print(str(err)[-25:])
        but got optimizer='lion'.
    """
    family = _family(name)
    if family is not None:
        family.check(name, momentum=momentum, weight_decay=weight_decay)
        return
    if name not in OPTIMIZERS:
        known = ", ".join(repr(o) for o in OPTIMIZERS)
        families = "".join(f" or {p}NAME" for p in _FAMILIES)
        raise ValueError(
            f"Task.`optimizer` must be one of {{{known}}}{families}, but got optimizer={name!r}."
        )


def make_optimizer(
    name: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    *,
    total_steps: int,
    seed: int = 0,
    weight_decay: float | None = None,
    momentum: float | None = None,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` names (a classic one, or a registered family's) over ``params``,
    for a run of ``total_steps`` steps (families with schedules of their own use it)."""
    family = _family(name)
    if family is not None:
        return family.build(
            name,
            params,
            total_steps=total_steps,
            seed=seed,
            momentum=momentum,
            weight_decay=weight_decay,
        )
    return build_optimizer(name, params, weight_decay=weight_decay, momentum=momentum)
