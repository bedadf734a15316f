"""Small helpers the strategies share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def finite_or_worst(x: float) -> float:
    """``x``, or ``-inf`` when it is not finite (a NaN or diverged score ranks last).

    Example:
        >>> finite_or_worst(0.5), finite_or_worst(float("nan"))
        (0.5, -inf)
    """
    return x if math.isfinite(x) else -math.inf


def format_hyperparameters(hp: Mapping[str, float]) -> str:
    """``name value, ...`` with 3 significant digits, for decision texts.

    Example:
        >>> format_hyperparameters({"lr": 0.012345, "momentum": 0.9})
        'lr 0.0123, momentum 0.9'
    """
    return ", ".join(f"{k} {v:.3g}" for k, v in hp.items())


class _FromPreset:
    """The default of a config field whose value comes from the config's ``preset``."""

    def __repr__(self) -> str:
        return "<from preset>"

    def __reduce__(self) -> str:
        return "FROM_PRESET"  # pickles as the module's singleton


#: Default of the config fields a ``preset`` decides (replaced in ``__post_init__``).
FROM_PRESET: Any = _FromPreset()


def fill_preset(config: Any, presets: Mapping[str, Mapping[str, Any]]) -> None:
    """Give every field of a frozen dataclass ``config`` still at ``FROM_PRESET`` its value in
    ``presets[config.preset]``; fields set explicitly keep their value.

    Raises:
        ValueError: An unknown preset (the message lists the known ones).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class C:
        ...     preset: str = "robust"
        ...     lr: float = FROM_PRESET
        ...     def __post_init__(self):
        ...         fill_preset(self, {"robust": {"lr": 0.1}, "paper": {"lr": 1.0}})
        >>> C().lr, C(preset="paper").lr, C(preset="paper", lr=0.5).lr
        (0.1, 1.0, 0.5)
    """
    from hpo._validation import check_choice

    owner = type(config).__name__
    check_choice(owner, "preset", config.preset, tuple(presets))
    for name, value in presets[config.preset].items():
        if getattr(config, name) is FROM_PRESET:
            object.__setattr__(config, name, value)
