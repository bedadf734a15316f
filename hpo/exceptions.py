"""The project's exceptions and warnings."""

from __future__ import annotations

__all__ = ["ExperimentalWarning", "HPOError", "StopRun"]


class HPOError(Exception):
    """Base class of the errors this project raises beyond ``ValueError`` / ``TypeError``."""


class StopRun(Exception):
    """Raised by a callback to end a run early and normally (like Keras's early stopping).

    The run ends with status ``finished``, its history keeps ``info["stopped"] = reason``, and the
    final and best weights are scored on the test split as usual.

    Example:
        >>> raise StopRun("reached 97 % training accuracy")
        Traceback (most recent call last):
        ...
        hpo.exceptions.StopRun: reached 97 % training accuracy
    """


class ExperimentalWarning(UserWarning):
    """A feature marked ``@hpo.experimental`` was used; its interface may still change.

    Silence it with
    ``warnings.filterwarnings("ignore", category=hpo.exceptions.ExperimentalWarning)``.
    """
