"""The project's exceptions and warnings."""

from __future__ import annotations

__all__ = ["ExperimentalWarning", "HPOError"]


class HPOError(Exception):
    """Base class of the errors this project raises beyond ``ValueError`` / ``TypeError``."""


class ExperimentalWarning(UserWarning):
    """A feature marked ``@hpo.experimental`` was used; its interface may still change.

    Silence it with
    ``warnings.filterwarnings("ignore", category=hpo.exceptions.ExperimentalWarning)``.
    """
