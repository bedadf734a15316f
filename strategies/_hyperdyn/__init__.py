"""Hyperdyn (online BO of the learning rate) and its greedy variant, epoch-based BO."""

from __future__ import annotations

from strategies._hyperdyn._config import PRESETS, EpochBOConfig, HyperdynConfig
from strategies._hyperdyn._kernel import TimeDecayKernel, TimeVaryingKernel
from strategies._hyperdyn._model import build_gp
from strategies._hyperdyn._strategy import EpochBO, Hyperdyn
from strategies._hyperdyn._trend import check_accuracy_trend, keep_log_probability

__all__ = [
    "EpochBO",
    "EpochBOConfig",
    "Hyperdyn",
    "HyperdynConfig",
    "PRESETS",
    "TimeDecayKernel",
    "TimeVaryingKernel",
    "build_gp",
    "check_accuracy_trend",
    "keep_log_probability",
]
