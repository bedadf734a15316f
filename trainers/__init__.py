"""The shared trainer, datasets, models, optimizers and lr schedules.

This package is the bottom layer: it depends on torch (and the dataset packages) only, and knows
nothing of strategies, Optuna or MLflow.
"""

from __future__ import annotations

from trainers._augment import AUGMENTATIONS, Augment
from trainers._branches import Branches
from trainers._data import DATASETS, LOCAL_DATASETS, DataSplits, load_dataset, make_splits
from trainers._lr_free import LR_FREE
from trainers._metrics import (
    LOSSES,
    METRICS,
    Loss,
    Metric,
    format_score,
    get_loss,
    get_metric,
)
from trainers._models import MODELS, build_model, model_options
from trainers._optimizers import (
    DEFAULT_LRS,
    OPTIMIZERS,
    OptimizerFamily,
    build_optimizer,
    check_optimizer,
    make_optimizer,
    register_optimizer_family,
)
from trainers._population import (
    Members,
    Population,
    SequentialPopulation,
    batching_obstacle,
    make_population,
)
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
from trainers._streaming import StreamingSplits, as_splits
from trainers._trainer import (
    Counters,
    EpochResult,
    EvalResult,
    Snapshot,
    StepStats,
    Trainer,
    atomic_save,
    resolve_device,
)

__all__ = [
    "LR_FREE",
    "Branches",
    "Members",
    "Population",
    "SequentialPopulation",
    "batching_obstacle",
    "make_population",
    "AUGMENTATIONS",
    "Augment",
    "LOSSES",
    "Loss",
    "METRICS",
    "Metric",
    "OptimizerFamily",
    "StreamingSplits",
    "as_splits",
    "atomic_save",
    "check_optimizer",
    "format_score",
    "get_loss",
    "get_metric",
    "make_optimizer",
    "make_splits",
    "model_options",
    "register_optimizer_family",
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Counters",
    "DATASETS",
    "LOCAL_DATASETS",
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
