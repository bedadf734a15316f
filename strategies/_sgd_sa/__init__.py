"""SGD-SA: every minibatch step a simulated-annealing move, kept or undone exactly."""

from __future__ import annotations

from strategies._sgd_sa._config import (
    MOMENTUM_TYPES,
    PAPER_LRS,
    PRESETS,
    RELATIVE_LRS,
    SGDSAConfig,
)
from strategies._sgd_sa._strategy import SGDSA

__all__ = ["MOMENTUM_TYPES", "PAPER_LRS", "PRESETS", "RELATIVE_LRS", "SGDSA", "SGDSAConfig"]
