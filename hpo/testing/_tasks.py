"""``boring_task``: the tiny task fast tests train (as Lightning's ``BoringModel``)."""

from __future__ import annotations

from typing import Any

from hpo._task import Task


def boring_task(**changes: Any) -> Task:
    """A few hundred MNIST-1D samples, the ~5k-parameter CNN, 3 epochs, on the CPU.

    An epoch takes ~10 ms, and accuracy still rises visibly within 3 epochs.

    Example:
        >>> boring_task().train_size
        500
    """
    base: dict[str, Any] = dict(
        dataset="mnist1d",
        model="cnn",
        optimizer="adam",
        batch_size=50,
        epochs=3,
        train_size=500,
        seed=0,
        device="cpu",
    )
    base.update(changes)
    return Task(**base)
