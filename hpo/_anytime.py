"""Anytime performance: the best validation score a strategy has reached once it has spent a
given budget, normalised per task between chance and the best any run reached.

This is how ``hpo bench`` judges strategies at equal compute: a tuned grid pays for its runs
before it has an answer, a population pays for every member, an online strategy pays for its
branches; each is scored on what it holds after 1x, 2x, 4x and 8x one run's optimizer steps.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from hpo._history import History

BUDGETS = (1.0, 2.0, 4.0, 8.0)


def best_within(history: History, spent_steps: float, *, chance: float = 0.0) -> float:
    """The best validation score (in the metric's direction) ``history`` had reached once it
    had spent at most ``spent_steps`` optimizer steps (every branch, member and trial counted).

    A run that diverged scores ``chance`` from the epoch it diverged on: by then it has failed,
    and its earlier weights are not what a user would be left with. A run with nothing to show
    yet (a grid search still on its first runs) scores NaN.

    Args:
        history: One run.
        spent_steps: The budget, in optimizer steps spent.
        chance: The score of a network that learned nothing.

    Returns:
        A score (an accuracy, a fraction in [0, 1], by default), ``chance``, or NaN.

    Example:
        >>> from hpo import EpochRecord, History
        >>> rec = lambda e, acc: EpochRecord(e, 0.1, 0.1, 0.1, 1.0, acc, 1.0, acc, 10 * e,
        ...                                  100 * e, 20 * e, 200 * e, float(e))
        >>> h = History(strategy="x", records=[rec(1, 0.5), rec(2, 0.8), rec(3, 0.7)])
        >>> best_within(h, 19), best_within(h, 40), best_within(h, 1e9)
        (nan, 0.8, 0.8)
    """
    best = math.nan
    for r in history.records:
        if r.spent_steps > spent_steps:
            break
        if history.status == "diverged" and r.epoch >= (history.diverged_epoch or 0):
            return chance
        if math.isfinite(r.val_score) and (
            math.isnan(best) or history.is_better(r.val_score, best)
        ):
            best = r.val_score
    return best


def anytime_scores(
    histories: Mapping[str, Sequence[History]],
    *,
    run_steps: int,
    chance: float,
    budgets: Sequence[float] = BUDGETS,
    best: float | None = None,
) -> pd.DataFrame:
    """Every run's best score within each budget, raw and normalised.

    The normalised score is :math:`(s - c) / (b - c)` clipped to [0, 1], with :math:`c` the
    metric's chance score and :math:`b` the best validation score any sound run reached (or
    ``best``): 0 at chance, 1 at the best, whichever way the metric points; a run with nothing
    to show yet at a budget counts as chance (0).

    Args:
        histories: Label -> the runs of that strategy (one per seed).
        run_steps: One run's optimizer steps (epochs x steps per epoch): the budget unit.
        chance: The task's chance score (accuracy: the majority class's share; MSE: the
            targets' variance).
        budgets: Multiples of ``run_steps``.
        best: The top of the scale (default: the best any run that did not diverge reached).

    Returns:
        A long DataFrame with columns ``strategy``, ``seed`` (the run's index), ``budget``,
        ``score`` (NaN: nothing yet) and ``normalized``; ``df.attrs`` holds ``best`` and
        ``chance``.
    """
    import pandas as pd

    maximize = _direction(histories)
    if best is None:
        sound = [
            r.val_score
            for runs in histories.values()
            for h in runs
            if h.status != "diverged"
            for r in h.records
            if math.isfinite(r.val_score)
        ]
        best = (max(sound) if maximize else min(sound)) if sound else math.nan
    span = best - chance
    rows = []
    for label, runs in histories.items():
        for i, h in enumerate(runs):
            for b in budgets:
                score = best_within(h, b * run_steps, chance=chance)
                norm = (
                    (score - chance) / span
                    if math.isfinite(score) and math.isfinite(span) and span != 0
                    else 0.0
                )
                rows.append(
                    {
                        "strategy": label,
                        "seed": i,
                        "budget": float(b),
                        "score": score,
                        "normalized": min(max(norm, 0.0), 1.0),
                    }
                )
    df = pd.DataFrame(rows, columns=["strategy", "seed", "budget", "score", "normalized"])
    df.attrs.update(best=best, chance=chance, maximize=maximize)
    return df


def summarize_anytime(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean normalised score and mean rank per strategy and budget, over tasks.

    Args:
        scores: ``anytime_scores`` of several tasks, concatenated with a ``task`` column.

    Returns:
        A DataFrame indexed by strategy with columns ``score@Bx`` (mean over tasks of the mean
        over seeds), ``rank@Bx`` (per task the strategies are ranked by their mean over seeds,
        1 = best, ties share the mean rank; then averaged over tasks) and ``tasks`` (on how
        many tasks the strategy ran).

    Example:
        >>> import pandas as pd
        >>> s = pd.DataFrame({"task": ["t"] * 4, "strategy": ["a", "a", "b", "b"],
        ...                   "seed": [0, 1, 0, 1], "budget": [1.0] * 4,
        ...                   "normalized": [1.0, 0.5, 0.2, 0.2]})
        >>> summarize_anytime(s)[["score@1x", "rank@1x"]].round(2).to_dict("index")
        {'a': {'score@1x': 0.75, 'rank@1x': 1.0}, 'b': {'score@1x': 0.2, 'rank@1x': 2.0}}
    """
    import pandas as pd

    per_task = scores.groupby(["task", "strategy", "budget"], sort=False)["normalized"].mean()
    per_task = per_task.reset_index()
    per_task["rank"] = per_task.groupby(["task", "budget"])["normalized"].rank(
        ascending=False, method="average"
    )
    order = list(dict.fromkeys(scores["strategy"]))
    out = pd.DataFrame(index=pd.Index(order, name="strategy"))
    for b in sorted(per_task["budget"].unique()):
        at = per_task[per_task["budget"] == b].groupby("strategy")
        out[f"score@{_x(b)}"] = at["normalized"].mean()
        out[f"rank@{_x(b)}"] = at["rank"].mean()
    out["tasks"] = per_task.groupby("strategy")["task"].nunique()
    return out


def format_anytime(summary: pd.DataFrame) -> str:
    """``summarize_anytime``'s table for a terminal, best mean score at 2x first (ties: 8x)."""
    budgets = [c[len("score@") :] for c in summary.columns if c.startswith("score@")]
    key = [c for c in (f"score@{b}" for b in ("2x", "8x")) if c in summary.columns]
    rows = summary.sort_values(key, ascending=False) if key else summary
    headers = ["strategy", *(f"score@{b}" for b in budgets), *(f"rank@{b}" for b in budgets)]
    headers.append("tasks")
    lines = [
        [
            str(label),
            *(_num(row[f"score@{b}"], 2) for b in budgets),
            *(_num(row[f"rank@{b}"], 1) for b in budgets),
            f"{int(row['tasks'])}",
        ]
        for label, row in rows.iterrows()
    ]
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in lines]
    return "\n".join(out)


def plot_anytime(
    histories: Mapping[str, Sequence[History]],
    *,
    run_steps: int,
    chance: float,
    title: str,
    budgets: Sequence[float] = BUDGETS,
) -> Figure:
    """Best-so-far validation score against the steps spent (in runs), one line per
    strategy: the mean over seeds, the seeds' range shaded; a line starts once every seed has
    something to show. A diverged run counts as ``chance`` from its divergence on."""
    from matplotlib.figure import Figure

    from hpo._plots import score_axis

    key = next((h.metric for runs in histories.values() for h in runs), "acc")
    scale, ylabel = score_axis(key)

    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    top = max(budgets)
    grid = np.geomspace(1.0 / 16, top, 160)
    grid[-1] = top  # exactly: a search that spent all of it must show there
    for i, (label, runs) in enumerate(histories.items()):
        if not runs:
            continue
        curves = np.array(
            [[best_within(h, g * run_steps, chance=chance) for g in grid] for h in runs]
        )
        if np.all(np.isnan(curves)):
            continue
        style = "--" if i >= 10 else "-"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before a start
            mean = np.mean(curves, axis=0)  # NaN until every seed has a score
            lo, hi = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
        color = f"C{i % 10}"
        ax.plot(
            grid,
            scale * mean,
            color=color,
            ls=style,
            lw=1.6,
            label=label,
            marker="o",
            ms=3,
            markevery=[len(grid) - 1],  # where each line ends (a search's answer may be a dot)
        )
        ax.fill_between(grid, scale * lo, scale * hi, color=color, alpha=0.12, lw=0)
    for b in budgets:
        ax.axvline(b, color="0.6", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xlim(1.0 / 16, top * 1.05)
    ticks = [2.0**k for k in range(-4, int(math.log2(top)) + 1)]
    ax.set_xticks(ticks, [f"{t:g}x" if t >= 1 else f"1/{1 / t:g}" for t in ticks])
    ax.set_xlabel("optimizer steps spent, in runs (1x = one run of the task's epochs)")
    ax.set_ylabel(f"best validation {ylabel} so far")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7, ncol=2)
    return fig


def plot_summary(summary: pd.DataFrame, per_task: pd.DataFrame) -> Figure:
    """Two panels: the mean normalised score against the budget (one line per strategy), and
    a heat map of each strategy's mean normalised score per task at 2x one run.

    Args:
        summary: ``summarize_anytime``'s table.
        per_task: Mean normalised score at 2x, indexed by strategy, one column per task.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.2), layout="constrained")
    ax_line, ax_heat = fig.subplots(1, 2, width_ratios=[1, 1.25])
    cols = [c for c in summary.columns if c.startswith("score@")]
    xs = [float(c[len("score@") : -1]) for c in cols]
    for i, (label, row) in enumerate(summary.iterrows()):
        ax_line.plot(
            xs,
            [row[c] for c in cols],
            marker="o",
            ms=4,
            color=f"C{i % 10}",
            ls="--" if i >= 10 else "-",
            label=str(label),
        )
    ax_line.set_xscale("log", base=2)
    ax_line.set_xticks(xs, [f"{x:g}x" for x in xs])
    ax_line.set_ylim(-0.02, 1.02)
    ax_line.set_xlabel("budget: optimizer steps spent, in runs")
    ax_line.set_ylabel("mean normalised score (0 = chance, 1 = best any run reached)")
    ax_line.grid(alpha=0.3)
    ax_line.legend(fontsize=7, ncol=2, loc="lower right")
    values = per_task.to_numpy(dtype=float)
    im = ax_heat.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax_heat.set_xticks(range(per_task.shape[1]), list(per_task.columns), rotation=30, ha="right")
    ax_heat.set_yticks(range(per_task.shape[0]), list(per_task.index))
    for (r, c), v in np.ndenumerate(values):
        if math.isfinite(v):
            ax_heat.text(
                c,
                r,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v < 0.6 else "black",
            )
    ax_heat.set_title("normalised score at 2x one run, per task (blank: not run)")
    fig.colorbar(im, ax=ax_heat, shrink=0.8)
    fig.suptitle("Anytime performance at equal spent compute")
    return fig


def _direction(histories: Mapping[str, Sequence[History]]) -> bool:
    """Whether the runs' metric is maximised (True when there are none)."""
    return next((h.maximize for runs in histories.values() for h in runs), True)


def _x(b: float) -> str:
    return f"{b:g}x"


def _num(v: float, digits: int) -> str:
    return f"{v:.{digits}f}" if math.isfinite(v) else "-"
