"""NOS optimizer specs: the ``nos:NAME`` and ``nos:genome:<JSON>`` values of ``Task.optimizer``.

One place parses them: ``check_nos_spec`` validates a spec (``Task`` calls it when it is
created) and ``build_nos_spec_optimizer`` builds the optimizer it names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from strategies._nos._optimizer import GraphOptimizer, ProgramOptimizer
from strategies._nos._registry import NOS_OPTIMIZERS, build_nos_optimizer
from strategies._nos._space import Genome

#: The prefix of every NOS optimizer spec.
NOS_PREFIX = "nos:"
#: The prefix of a spec that carries a genome as JSON.
GENOME_PREFIX = "nos:genome:"


def check_nos_spec(spec: str) -> Genome | str:
    """Parse a NOS optimizer spec: the ``Genome`` of ``nos:genome:<JSON>``, or the registered
    name of ``nos:NAME``.

    Raises:
        ValueError: The JSON is not a genome's (the message names the field, what it must be
            and the value got; a wrong type is a bad value of the spec string too), or the name
            is not registered (the message lists the known ones).

    Example:
        >>> check_nos_spec("nos:opt6")
        'opt6'
    """
    if spec.startswith(GENOME_PREFIX):
        try:
            return Genome.from_json(spec[len(GENOME_PREFIX) :])
        except (ValueError, TypeError) as err:  # the registry's checks raise ValueError
            raise ValueError(
                f"Task.`optimizer` 'nos:genome:...' must carry a Genome's JSON: {err}"
            ) from err
    name = spec[len(NOS_PREFIX) :]
    if not spec.startswith(NOS_PREFIX) or name not in NOS_OPTIMIZERS:
        raise ValueError(
            f"Task.`optimizer` {spec!r} names no NOS optimizer; known: "
            + ", ".join(f"{NOS_PREFIX}{n}" for n in NOS_OPTIMIZERS)
            + "."
        )
    return name


def build_nos_spec_optimizer(
    spec: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    *,
    total_steps: int,
    seed: int = 0,
) -> ProgramOptimizer:
    """The optimizer a NOS spec names, over ``params``, for a run of ``total_steps`` steps.

    Raises:
        ValueError: As ``check_nos_spec``.

    Example:
        >>> import torch
        >>> opt = build_nos_spec_optimizer("nos:opt6", [torch.nn.Parameter(torch.ones(2))],
        ...                                total_steps=100)
        >>> opt.total_steps
        100
    """
    parsed = check_nos_spec(spec)
    if isinstance(parsed, Genome):
        return GraphOptimizer(params, parsed, total_steps=total_steps, seed=seed)
    return build_nos_optimizer(parsed, params, total_steps=total_steps, seed=seed)


def check_nos_optimizer(
    spec: str, *, momentum: float | None = None, weight_decay: float | None = None
) -> None:
    """``check_nos_spec``, and refuse ``momentum`` / ``weight_decay`` for a registered NOS
    optimizer (their programs fix both): the ``trainers`` registry's check of ``nos:*``."""
    if isinstance(check_nos_spec(spec), str) and (
        momentum is not None or weight_decay is not None
    ):
        raise ValueError(
            "Task: `momentum` and `weight_decay` do not apply to NOS optimizers "
            f"(optimizer={spec!r})."
        )


def build_nos_optimizer_for(
    spec: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    *,
    total_steps: int,
    seed: int = 0,
    momentum: float | None = None,
    weight_decay: float | None = None,
) -> ProgramOptimizer:
    """``build_nos_spec_optimizer`` with the ``trainers`` registry's signature."""
    return build_nos_spec_optimizer(spec, params, total_steps=total_steps, seed=seed)
