"""The shared trainer, datasets, models, optimizers and lr schedules.

This package is the bottom layer: it depends on torch (and the dataset packages) only, and knows
nothing of strategies, Optuna or MLflow.
"""

from __future__ import annotations

from trainers._data import DATASETS, DataSplits, load_dataset
from trainers._models import MODELS, build_model
from trainers._optimizers import DEFAULT_LRS, OPTIMIZERS, build_optimizer
from trainers._schedules import (
    SCHEDULES,
    Constant,
    Cosine,
    CosineRestarts,
    LRSchedule,
    OneCycle,
    Step,
    make_schedule,
)
from trainers._trainer import (
    Counters,
    EpochResult,
    EvalResult,
    Snapshot,
    StepStats,
    Trainer,
    resolve_device,
)

__all__ = [
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Counters",
    "DATASETS",
    "DEFAULT_LRS",
    "DataSplits",
    "EpochResult",
    "EvalResult",
    "LRSchedule",
    "MODELS",
    "OPTIMIZERS",
    "OneCycle",
    "SCHEDULES",
    "Snapshot",
    "Step",
    "StepStats",
    "Trainer",
    "build_model",
    "build_optimizer",
    "load_dataset",
    "make_schedule",
    "resolve_device",
]
