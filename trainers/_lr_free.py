"""The learning-rate-free optimizers, from their own packages, at their documented defaults.

==================  =======================================================  ===============
name                optimizer (package)                                      default lr
==================  =======================================================  ===============
schedulefree-adamw  ``AdamWScheduleFree`` (``schedulefree``; Defazio et al.,  0.0025
                    2024)
schedulefree-sgd    ``SGDScheduleFree`` (``schedulefree``), momentum 0.9      1.0
prodigy             ``Prodigy`` (``prodigyopt``; Mishchenko & Defazio, 2023)  1.0
dadapt-adam         ``DAdaptAdam`` (``dadaptation``; Defazio & Mishchenko,    1.0
                    2023)
dadapt-sgd          ``DAdaptSGD`` (``dadaptation``), momentum 0 (its default)  1.0
==================  =======================================================  ===============

"No tuning" means the packages' defaults: the lr is a multiplier of the step the method picks
(1.0 for Prodigy and D-Adaptation, which estimate the distance to the solution, ``d``, and step
with ``d x lr``); Schedule-Free replaces the schedule, not the lr, and its defaults are its
authors' recommendation.

What each needs of a trainer (``Trainer`` does it; ``has_modes`` and ``adapted_lr`` are how it
asks):

* Schedule-Free trains at one point (``y``) and is evaluated at another (``x``, the average):
  ``optimizer.train()`` before training steps, ``optimizer.eval()`` before evaluation. The mode
  is a param-group entry (``train_mode``), so snapshots and checkpoints keep it with the
  weights. With BatchNorm, the running statistics were gathered at ``y``: they are recomputed at
  ``x`` before an evaluation (its authors' advice), and put back after it.
* Prodigy and D-Adaptation keep their estimate ``d`` in the param group; ``d x lr`` is the lr
  they effectively use, logged per epoch as ``effective_lr`` (and ``d``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

LR_FREE: tuple[str, ...] = (
    "schedulefree-adamw",
    "schedulefree-sgd",
    "prodigy",
    "dadapt-adam",
    "dadapt-sgd",
)

#: The packages' documented default lrs.
LR_FREE_LRS: dict[str, float] = {
    "schedulefree-adamw": 0.0025,
    "schedulefree-sgd": 1.0,
    "prodigy": 1.0,
    "dadapt-adam": 1.0,
    "dadapt-sgd": 1.0,
}

#: The lr-free optimizers that take a ``momentum``.
WITH_MOMENTUM = ("schedulefree-sgd", "dadapt-sgd")


def build_lr_free(
    name: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float | None = None,
    momentum: float | None = None,
    betas: tuple[float, float] | None = None,
) -> torch.optim.Optimizer:
    """The lr-free optimizer ``name`` (one of ``LR_FREE``) with its package's defaults, except
    where an argument is given."""
    options: dict[str, Any] = {"lr": lr}
    if weight_decay is not None:
        options["weight_decay"] = weight_decay
    if betas is not None:
        options["betas"] = betas
    if momentum is not None:
        options["momentum"] = momentum
    if name.startswith("schedulefree"):
        import schedulefree

        cls = (
            schedulefree.AdamWScheduleFree
            if name.endswith("adamw")
            else schedulefree.SGDScheduleFree
        )
        return cls(params, foreach=True, **options)
    if name == "prodigy":
        from prodigyopt import Prodigy

        return Prodigy(params, **options)
    import dadaptation

    cls = dadaptation.DAdaptAdam if name == "dadapt-adam" else dadaptation.DAdaptSGD
    return cls(params, **options)


def has_modes(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer trains and is evaluated at different points (Schedule-Free): it
    has ``train()`` and ``eval()`` and keeps the mode in its param groups."""
    return (
        callable(getattr(optimizer, "train", None))
        and callable(getattr(optimizer, "eval", None))
        and "train_mode" in optimizer.param_groups[0]
    )


def adapted_lr(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``{"d": d, "effective_lr": d x lr}`` of the first param group of an optimizer that adapts
    its step size (Prodigy, D-Adaptation); empty for any other."""
    group = optimizer.param_groups[0]
    d = group.get("d")
    if not isinstance(d, (int, float, Tensor)):
        return {}
    d = float(d)
    return {"d": d, "effective_lr": d * float(group["lr"])}
