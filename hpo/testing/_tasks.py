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


def regression_data() -> dict[str, tuple[Any, Any]]:
    """Train / validation / test tensors of a small regression problem: 8 standardised
    features, a smooth target (a linear part and a sine), 600 / 150 / 150 examples; the same
    numbers in every process (seeded, generated on the CPU).

    Example:
        >>> data = regression_data()
        >>> tuple(data["train"][0].shape), tuple(data["train"][1].shape)
        ((600, 8), (600,))
    """
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(900, 8, generator=g)
    w = torch.randn(8, generator=g)
    y = x @ w / 8**0.5 + torch.sin(2.0 * x[:, 0]) + 0.1 * torch.randn(900, generator=g)
    y = (y - y[:600].mean()) / y[:600].std()
    return {
        "train": (x[:600], y[:600]),
        "val": (x[600:750], y[600:750]),
        "test": (x[750:], y[750:]),
    }


def regression_model(hidden: int = 32) -> Any:
    """The MLP ``regression_task`` trains: 8 -> ``hidden`` -> 1 with ReLU."""
    from torch import nn

    return nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def regression_task(**changes: Any) -> Task:
    """The regression counterpart of ``boring_task``: ``regression_data`` and
    ``regression_model`` given as import paths (a user's own parts, rebuildable in another
    process), MSE loss, MSE metric (minimised), 3 epochs of minibatches of 50, on the CPU.

    Example:
        >>> task = regression_task()
        >>> trainer = task.build_trainer()
        >>> trainer.metric.name, trainer.metric.maximize, trainer.data.num_train
        ('mse', False, 600)
    """
    base: dict[str, Any] = dict(
        data="hpo.testing._tasks:regression_data",
        model="hpo.testing._tasks:regression_model",
        loss="mse",
        metric="mse",
        optimizer="adam",
        batch_size=50,
        epochs=3,
        seed=0,
        device="cpu",
    )
    base.update(changes)
    return Task(**base)
