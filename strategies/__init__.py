"""The strategies: each decides the learning rate while one shared trainer trains.

Every strategy is a class with a ``name`` (its command-line name), a validated ``config``
dataclass, a ``run(trainer, budget)`` method (``hpo.Strategy``) and a ``suggest(trial)``
classmethod that draws its own hyperparameters from an Optuna trial.

=================  ===========================================================================
``constant``       one lr for the whole run
``schedule``       step / cosine / one-cycle / warm-restart schedules
``static``         black-box HPO of one static lr (and optimizer) across Optuna trials
``random-search``  online: every epoch, N random lrs from one snapshot, keep the best branch
``pbt``            Population Based Training inside one process
``distancing``     hills on past minima, wrapping another strategy; checkpoint ensembles
``sgd-sa``         every SGD step at an lr from a set, kept or undone by the Metropolis test
``hyperdyn``       per-epoch BO (BoTorch, time kernel) with a wait-and-watch test
``epoch-bo``       Hyperdyn's greedy variant: always switch to the BO suggestion
=================  ===========================================================================
"""

from __future__ import annotations

from typing import Any

from strategies._constant import Constant, ConstantConfig
from strategies._distancing import (
    DistancePenalty,
    Distancing,
    DistancingConfig,
    ensemble_accuracy,
)
from strategies._lr_free import LrFree, LrFreeConfig
from strategies._metropolis import MetropolisSampler
from strategies._pbt import PBT, LineageEvent, PBTConfig, PopulationConfig
from strategies._random_search import RandomSearch, RandomSearchConfig
from strategies._registry import STRATEGIES, make_strategy
from strategies._schedule import Schedule, ScheduleConfig
from strategies._sgd_sa import SGDSA, SGDSAConfig
from strategies._static import Static, StaticConfig

# Hyperdyn needs BoTorch/GPyTorch (over a second to import), NOS SciPy: loaded on first use.
_LAZY = {
    **{
        name: "strategies._hyperdyn"
        for name in ("EpochBO", "EpochBOConfig", "Hyperdyn", "HyperdynConfig", "TimeDecayKernel")
    },
    **{
        name: "strategies._nos"
        for name in ("NOSEvaluation", "NOSEvaluationConfig", "NOSPruner", "NOSSampler")
    },
    **{name: "strategies._pb2" for name in ("PB2", "PB2Config")},
}


def _register_nos_optimizers() -> None:
    """Register the ``nos:*`` optimizers in ``trainers``' registry; their module (and SciPy)
    loads on first use."""
    from trainers import OptimizerFamily, register_optimizer_family

    def check(name: str, **options: Any) -> None:
        from strategies._nos._spec import check_nos_optimizer

        check_nos_optimizer(name, **options)

    def build(name: str, params: Any, **options: Any) -> Any:
        from strategies._nos._spec import build_nos_optimizer_for

        return build_nos_optimizer_for(name, params, **options)

    def known() -> list[str]:
        from strategies._nos._registry import NOS_OPTIMIZERS

        return [f"nos:{n}" for n in NOS_OPTIMIZERS]

    register_optimizer_family(OptimizerFamily("nos:", check, build, known))


_register_nos_optimizers()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'strategies' has no attribute {name!r}")


__all__ = [
    "PB2",
    "PB2Config",
    "PBT",
    "PopulationConfig",
    "STRATEGIES",
    "Constant",
    "ConstantConfig",
    "DistancePenalty",
    "Distancing",
    "DistancingConfig",
    "EpochBO",
    "EpochBOConfig",
    "Hyperdyn",
    "HyperdynConfig",
    "LineageEvent",
    "LrFree",
    "LrFreeConfig",
    "MetropolisSampler",
    "NOSEvaluation",
    "NOSEvaluationConfig",
    "NOSPruner",
    "NOSSampler",
    "PBTConfig",
    "RandomSearch",
    "RandomSearchConfig",
    "SGDSA",
    "SGDSAConfig",
    "Schedule",
    "ScheduleConfig",
    "Static",
    "StaticConfig",
    "TimeDecayKernel",
    "ensemble_accuracy",
    "make_strategy",
]
