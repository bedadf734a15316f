"""Neural optimizer search (NOS): optimizer update equations as graphs, evolved by a particle GA.

Imported as ``strategies.nos``.
"""

from __future__ import annotations

from strategies._nos._evaluation import NOSEvaluation, NOSEvaluationConfig, NOSPruner
from strategies._nos._integrity import IntegrityResult, integrity_check, sphere_losses
from strategies._nos._optimizer import GraphOptimizer, ProgramOptimizer
from strategies._nos._program import GenomeProgram, Program
from strategies._nos._random import (
    MUTATIONS,
    is_well_formed,
    mutate,
    mutate_decay,
    random_decay,
    random_genome,
    random_valid_genome,
    valid_mutant,
)
from strategies._nos._registry import (
    NOS_OPTIMIZERS,
    build_nos_optimizer,
    lr_multiplier,
    named_genome,
)
from strategies._nos._sampler import NOSSampler, genome_of
from strategies._nos._space import Decay, DecayNode, Genome, Node

__all__ = [
    "Decay",
    "DecayNode",
    "Genome",
    "GenomeProgram",
    "GraphOptimizer",
    "IntegrityResult",
    "MUTATIONS",
    "NOSEvaluation",
    "NOSEvaluationConfig",
    "NOSPruner",
    "NOSSampler",
    "NOS_OPTIMIZERS",
    "Node",
    "Program",
    "ProgramOptimizer",
    "build_nos_optimizer",
    "genome_of",
    "integrity_check",
    "is_well_formed",
    "lr_multiplier",
    "mutate",
    "mutate_decay",
    "named_genome",
    "random_decay",
    "random_genome",
    "random_valid_genome",
    "sphere_losses",
    "valid_mutant",
]
