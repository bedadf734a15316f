"""The strategies by their command-line names.

The registry is lazy: a strategy's module (and its heavy dependencies, e.g. BoTorch for
Hyperdyn) is imported the first time the strategy is looked up.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator, Mapping
from typing import Any

_ENTRIES: dict[str, tuple[str, str]] = {
    "constant": ("strategies._constant", "Constant"),
    "schedule": ("strategies._schedule", "Schedule"),
    "static": ("strategies._static", "Static"),
    "random-search": ("strategies._random_search", "RandomSearch"),
    "pbt": ("strategies._pbt", "PBT"),
    "pb2": ("strategies._pb2", "PB2"),
    "distancing": ("strategies._distancing", "Distancing"),
    "lr-free": ("strategies._lr_free", "LrFree"),
    "sgd-sa": ("strategies._sgd_sa._strategy", "SGDSA"),
    "hyperdyn": ("strategies._hyperdyn._strategy", "Hyperdyn"),
    "epoch-bo": ("strategies._hyperdyn._strategy", "EpochBO"),
    "nos-evaluation": ("strategies._nos._evaluation", "NOSEvaluation"),
}


class _Registry(Mapping[str, type]):
    """name -> strategy class, importing each class on first access."""

    def __getitem__(self, name: str) -> type:
        module, attr = _ENTRIES[name]
        cls: type = getattr(importlib.import_module(module), attr)
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(_ENTRIES)

    def __len__(self) -> int:
        return len(_ENTRIES)


STRATEGIES: Mapping[str, type] = _Registry()


def make_strategy(name: str, **options: Any) -> Any:
    """Build a registered strategy by name, its config from ``options``.

    Raises:
        ValueError: Unknown ``name`` (the message lists the known ones) or a bad option value.
        TypeError: An option the strategy's config does not have.

    Example:
        >>> make_strategy("schedule", kind="step", lr=0.1).config.milestones
        (0.3, 0.7)
    """
    if name not in _ENTRIES:
        raise ValueError(
            f"Unknown strategy {name!r}; known strategies: {', '.join(sorted(_ENTRIES))}."
        )
    cls = STRATEGIES[name]
    required = [
        f.name
        for f in dataclasses.fields(cls.config_class)
        if f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in options
    ]
    if required:
        raise ValueError(
            f"The strategy {name!r} needs the option(s) {', '.join(required)} "
            f"(on the command line: --{name}.{required[0].replace('_', '-')} VALUE), "
            "but got none."
        )
    return cls(**options)
