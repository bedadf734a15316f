"""``Budget``: how much work a strategy may do."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hpo._validation import check_range

#: The most epochs a budget may ask for: beyond any run that could end.
MAX_EPOCHS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Limits on a strategy's run; the run ends at the first epoch boundary where one is reached.

    ``epochs`` counts the epochs of the trajectory the strategy keeps (Hyperdyn's discarded
    branch does not add one); ``steps``, ``examples`` and ``seconds`` count everything the
    strategy *spent* (branches, population members and rejected steps included), so that two
    strategies can be held to the same compute.

    Args:
        epochs: Epochs of the kept trajectory, in [1, 1e6].
        steps: Optimizer steps spent, >= 1.
        examples: Training examples spent, >= 1.
        seconds: Wall time in seconds, > 0 and finite (evaluation and the strategy's own work
            included); ``None`` for no time limit.

    Raises:
        ValueError: No limit is set, or a limit is out of range.

    Example:
        >>> Budget(epochs=20)
        Budget(epochs=20, steps=None, examples=None, seconds=None)
    """

    epochs: int | None = None
    steps: int | None = None
    examples: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "steps", "examples"):
            value = getattr(self, name)
            if value is not None:
                check_range(
                    "Budget",
                    name,
                    value,
                    1,
                    MAX_EPOCHS if name == "epochs" else math.inf,
                    integer=True,
                )
        if self.seconds is not None:
            check_range("Budget", "seconds", self.seconds, 0.0, low_closed=False)
        if all(getattr(self, f) is None for f in ("epochs", "steps", "examples", "seconds")):
            raise ValueError(
                "Budget needs at least one of `epochs`, `steps`, `examples` or `seconds`, "
                "but got none."
            )

    def require_epochs(self, owner: str, why: str) -> int:
        """``epochs``, for a strategy that cannot run without it.

        Args:
            owner: Who needs it (starts the error message).
            why: What it is needed for (in parentheses in the error message).

        Raises:
            ValueError: ``epochs`` is not set.

        Example:
            >>> Budget(epochs=20).require_epochs("Schedule", "to place its milestones")
            20
        """
        if self.epochs is None:
            raise ValueError(f"{owner} needs `Budget.epochs` ({why}), but got budget={self!r}.")
        return self.epochs

    def reached(
        self, *, epochs: int, spent_steps: int, spent_examples: int, seconds: float
    ) -> bool:
        """True when any limit is reached."""
        return (
            (self.epochs is not None and epochs >= self.epochs)
            or (self.steps is not None and spent_steps >= self.steps)
            or (self.examples is not None and spent_examples >= self.examples)
            or (self.seconds is not None and seconds >= self.seconds)
        )
