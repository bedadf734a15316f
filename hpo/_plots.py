"""Plots of histories, drawn on ``matplotlib.figure.Figure`` objects (no pyplot state)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hpo._history import History


def plot_history(history: History, *, title: str | None = None) -> Figure:
    """Accuracy (train and validation) and the learning rate against epochs.

    Args:
        history: A run's history.
        title: Figure title (default: the strategy's name and status).

    Returns:
        A matplotlib ``Figure`` with two panels; save it with ``fig.savefig(path)``.

    Example:
        >>> from hpo import History
        >>> fig = plot_history(History(strategy="constant"))
        >>> len(fig.axes)
        2
    """
    from matplotlib.figure import Figure

    from trainers import format_score

    fig = Figure(figsize=(7, 5.5), layout="constrained")
    ax_acc, ax_lr = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    epochs = history.column("epoch")
    scale, ylabel = score_axis(history.metric)
    ax_acc.plot(epochs, [scale * a for a in history.column("train_score")], label="train", lw=1.5)
    ax_acc.plot(
        epochs, [scale * a for a in history.column("val_score")], label="validation", lw=1.5
    )
    if history.best is not None:
        ax_acc.scatter(
            [history.best.epoch],
            [scale * history.best.val_score],
            color="k",
            zorder=3,
            label=f"best val {format_score(history.best.val_score, history.metric)}",
        )
    if history.diverged_epoch is not None:
        ax_acc.axvline(history.diverged_epoch, color="r", ls="--", label="diverged")
    ax_acc.set_ylabel(ylabel)
    ax_acc.grid(alpha=0.3)
    ax_acc.legend(loc="best")

    lrs = history.column("lr")
    ax_lr.plot(epochs, lrs, color="C2", lw=1.5, label="mean lr")
    lo, hi = history.column("lr_min"), history.column("lr_max")
    if any(a != b for a, b in zip(lo, hi) if math.isfinite(a) and math.isfinite(b)):
        ax_lr.fill_between(epochs, lo, hi, color="C2", alpha=0.2, label="lr range")
        ax_lr.legend(loc="best")
    finite = [v for v in lrs if math.isfinite(v)]
    if finite and min(finite) > 0:
        ax_lr.set_yscale("log")
        if min(finite) == max(finite):  # one value: give the log axis a decade around it
            ax_lr.set_ylim(finite[0] / 3, finite[0] * 3)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("epoch")
    ax_lr.grid(alpha=0.3)
    fig.suptitle(title or f"{history.strategy} ({history.status})")
    return fig


def score_axis(key: str) -> tuple[float, str]:
    """How to draw scores of the metric ``key``: ``(100, "accuracy (%)")`` for accuracy (and
    error), ``(1, key)`` otherwise.

    Example:
        >>> score_axis("acc"), score_axis("mse")
        ((100.0, 'accuracy (%)'), (1.0, 'mse'))
    """
    if key == "acc":
        return 100.0, "accuracy (%)"
    if key == "error":
        return 100.0, "error (%)"
    return 1.0, key
