"""The ``@experimental`` marker, as Optuna's ``optuna._experimental.experimental_class``."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from hpo.exceptions import ExperimentalWarning

_T = TypeVar("_T")


def experimental(version: str) -> Callable[[_T], _T]:
    """Mark a class or function as experimental since ``version``.

    Using it warns ``ExperimentalWarning`` once per call site, and its docstring gets a note.

    Example:
        >>> @experimental("0.1")
        ... def f() -> int:
        ...     return 1
    """

    def decorate(obj: Any) -> Any:
        note = (
            f"\n\n    .. note::\n        Added in v{version} as an experimental feature. The "
            "interface may change in newer versions without prior notice.\n"
        )
        obj.__doc__ = (obj.__doc__ or "") + note
        message = (
            f"{obj.__qualname__} is experimental (supported from v{version}); its interface "
            "may change. Silence with warnings.filterwarnings('ignore', "
            "category=hpo.exceptions.ExperimentalWarning)."
        )
        if isinstance(obj, type):
            init = obj.__init__

            @functools.wraps(init)
            def wrapped_init(self: Any, *args: Any, **kwargs: Any) -> None:
                warnings.warn(message, ExperimentalWarning, stacklevel=2)
                init(self, *args, **kwargs)

            obj.__init__ = wrapped_init  # type: ignore[misc]
            return obj

        @functools.wraps(obj)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(message, ExperimentalWarning, stacklevel=2)
            return obj(*args, **kwargs)

        return wrapped

    return decorate
