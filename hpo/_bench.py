"""``hpo.bench``: every strategy, untuned, on a fixed suite of small tasks, judged by anytime
performance at equal spent compute.

A user picks an online strategy to avoid paying for a tuning sweep. The bench puts that
promise to the test: each strategy runs at its defaults on every task and seed, beside the
baselines a user would otherwise pay for — a constant lr and a one-cycle schedule each tuned
over a 5-point grid around the optimizer's default lr (5 runs), and Optuna TPE over a static
lr (8 runs) — and every run is scored on the best validation score it holds after spending
1x, 2x, 4x and 8x one run's optimizer steps (``hpo._anytime``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hpo._anytime import (
    BUDGETS,
    anytime_scores,
    format_anytime,
    plot_anytime,
    plot_summary,
    summarize_anytime,
)
from hpo._budget import Budget
from hpo._callbacks import Callback
from hpo._progress import SeriesProgress, wants_bars, write
from hpo._suite import (
    DEFAULT_STRATEGIES,
    KEEP_BUDGET,
    LR_FREE_ROWS,
    ONLINE,
    QUICK_EPOCHS,
    QUICK_SEEDS,
    SUITE,
    TUNED,
    BenchTask,
    Factory,
    bench_strategies,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from hpo._history import History
    from hpo._strategy import Strategy
    from hpo._task import Task


@dataclass
class BenchResult:
    """What ``hpo.bench`` measured.

    Attributes:
        tables: Task name -> its ``hpo.compare`` table.
        rewards: Task name -> what the task rewards (the suite's words, or the user's).
        scores: Every run's anytime score: columns ``task``, ``strategy``, ``seed``,
            ``budget`` (in runs), ``score`` (best validation score within the budget; NaN:
            nothing to show yet) and ``normalized`` (0 = chance, 1 = the best any run of the
            task reached).
        summary: Per strategy: mean normalised score and mean rank at each budget, and on how
            many tasks it ran (``hpo._anytime.summarize_anytime``).
        keep: Per task: the best online strategy at 2x one run against the best tuned grid at
            its full cost, and whether the online one earned its keep; and against the best
            learning-rate-free optimizer at 1x (no tuning at all), where those rows ran.
        histories: Task -> label -> one History per seed.
        seconds: Wall time of the whole bench.
        figures: The plots (``anytime-<task>``, ``summary``).
        paths: Files written to ``output_dir``.
        mlflow_run_id: The parent MLflow run, if tracked.
    """

    tables: dict[str, pd.DataFrame]
    scores: pd.DataFrame
    summary: pd.DataFrame
    keep: pd.DataFrame
    histories: dict[str, dict[str, list[History]]]
    seconds: float
    rewards: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict, repr=False)
    paths: list[str] = field(default_factory=list)
    mlflow_run_id: str | None = None

    def format(self) -> str:
        """Every task's table, then the anytime summary and the verdict, as text."""
        from hpo._compare import format_table

        out = []
        for name, table in self.tables.items():
            out += [f"== {name}: {self.rewards.get(name, '')}".rstrip(": ")]
            out += [format_table(table), ""]
        out += [
            "== anytime performance: best validation score within a spent budget of 1x, 2x, "
            "4x, 8x one run's steps,",
            "   normalised per task (0 = chance, 1 = the best any run reached); mean over tasks "
            "and seeds; rank 1 = best",
            format_anytime(self.summary),
            "",
            f"== earning its keep: the best online strategy at {KEEP_BUDGET:g}x one run against "
            "the best tuned grid at its full cost, and against the best learning-rate-free "
            "optimizer at 1x (normalised scores)",
            _format_keep(self.keep),
        ]
        return "\n".join(out)


def bench(
    tasks: Sequence[str | BenchTask] | None = None,
    strategies: Sequence[str] | Mapping[str, Factory] | None = None,
    *,
    seeds: int | Sequence[int] | None = None,
    quick: bool = False,
    epochs: int | None = None,
    device: str = "auto",
    budgets: Sequence[float] = BUDGETS,
    tracking: bool | str = True,
    experiment: str = "hpo",
    output_dir: str | os.PathLike[str] | None = None,
    progress: bool | Callable[[str], None] | None = None,
    callbacks: Sequence[Callback] = (),
    run_name: str | None = None,
) -> BenchResult:
    """Run every strategy untuned on every task of the suite, on the same seeds; score them by
    anytime performance at equal spent compute.

    Each run may spend up to ``max(budgets)`` times one run's optimizer steps (random search
    at 10 branches per epoch stops there); Static's searches pay for every trial before they
    have an answer, so a 5-point grid holds nothing below 5x.

    Args:
        tasks: Names from ``SUITE`` (default: all), and/or ``BenchTask`` s of your own (a
            ``Task`` with a name: ``BenchTask("mine", my_task, "what it rewards")``).
        strategies: Row names (``bench_strategies()`` or any registered strategy), or
            label -> factory ``task -> strategy`` (``None`` where it does not apply).
        seeds: How many seeds (0, 1, ...) or which (default 5; 2 with ``quick``).
        quick: 8 epochs and 2 seeds per task: a few minutes on 2 CPU cores.
        epochs: Epochs of one run (default: the suite's 20, or 8 with ``quick``).
        device: Where to train (``"auto"``: CUDA when present).
        budgets: The budgets scored, in runs.
        tracking: ``True`` (MLflow at ``MLFLOW_TRACKING_URI``), a URI, or ``False``. A parent
            run ``bench`` gets one comparison per task (each with a child per run) and the
            summary, scores and plots.
        experiment: The MLflow experiment.
        output_dir: Also write the text, CSVs and plots here.
        progress: ``None`` (default): live bars when someone watches (runs done of all the
            bench's runs with the ETA, the current run's epochs, a line per run), nothing in a
            log; ``True`` bars always; ``False`` nothing; a callable: called with a line of text
            per task and per run, no bars.
        callbacks: More observers of every run.
        run_name: The MLflow parent run's name (default: ``bench``, the tasks and the time).

    Returns:
        The ``BenchResult``.

    Raises:
        ValueError: An unknown task or strategy name, bad seeds or budgets.

    Example:
        >>> import hpo
        >>> result = hpo.bench(["digits-mlp-adam"], ["constant", "one-cycle"], seeds=1,
        ...                    epochs=2, device="cpu", tracking=False)
        >>> sorted(result.summary.index), list(result.summary.columns[:2])
        (['constant', 'one-cycle'], ['score@1x', 'rank@1x'])
    """
    from hpo._compare import compare, default_run_name
    from hpo._tracking import log_metrics, parent_run

    chosen = _tasks(tasks)
    names = [t.name for t in chosen]
    rows = _rows(strategies)
    if seeds is None:
        seeds = QUICK_SEEDS if quick else 5
    if not budgets or any(not (isinstance(b, (int, float)) and b > 0) for b in budgets):
        raise ValueError(f"`budgets` must be positive multiples of a run, got {budgets!r}.")
    if epochs is None:
        epochs = QUICK_EPOCHS if quick else None
    if output_dir is not None:
        from hpo._resources import check_output_dir

        check_output_dir(output_dir, flag="`output_dir`")

    start = time.perf_counter()
    tables: dict[str, pd.DataFrame] = {}
    histories: dict[str, dict[str, list[History]]] = {}
    parts: list[pd.DataFrame] = []
    figures: dict[str, Figure] = {}
    n_seeds = seeds if isinstance(seeds, int) else len(seeds)
    params = {
        "tasks": ",".join(names),
        "strategies": ",".join(rows),
        "seeds": repr(seeds),
        "epochs": epochs if epochs is not None else "suite",
        "quick": quick,
        "budgets": ",".join(f"{b:g}" for b in budgets),
    }
    if run_name is None:
        run_name = default_run_name("bench", names)
    plan = []  # (name, task, the rows that apply to it)
    for spec in chosen:
        task = spec.task.replace(device=device)
        if epochs is not None:
            task = task.replace(epochs=epochs)
        built = {label: make(task) for label, make in rows.items()}
        plan.append((spec.name, task, {label: s for label, s in built.items() if s is not None}))
    lines = progress if callable(progress) and not isinstance(progress, bool) else None
    series = None
    if lines is None and wants_bars(progress):
        series = SeriesProgress(sum(len(r) for _, _, r in plan) * n_seeds, desc="bench")
    tracked = parent_run(tracking, experiment, run_name, tags={"hpo.role": "bench"}, params=params)
    with tracked as (client, parent):
        for k, (name, task, row_specs) in enumerate(plan, start=1):
            data = task.load_data()
            run_steps = task.epochs * data.steps_per_epoch(task.batch_size)
            chance = task.resolve_metric(data).chance_score(data.targets("val"))
            header = (
                f"[task {k}/{len(names)}] {name}: {len(row_specs)} strategies x "
                f"{n_seeds} seeds, {task.epochs} epochs ({run_steps:,} steps per run)"
            )
            if lines is not None:
                lines(header)
            elif series is not None:
                write(header)
            table = compare(
                task,
                row_specs,
                seeds=seeds,
                budget=Budget(epochs=task.epochs, steps=math.ceil(max(budgets) * run_steps)),
                tracking=tracking,
                experiment=experiment,
                run_name=f"bench {name}",
                parent_run_id=parent,
                run_plots=False,
                output_dir=None if output_dir is None else os.path.join(output_dir, name),
                progress=series or (False if lines is None else _prefixed(lines, f"  {name} ")),
                callbacks=callbacks,
            )
            tables[name] = table
            runs = table.attrs["histories"]
            histories[name] = runs
            scores = anytime_scores(runs, run_steps=run_steps, chance=chance, budgets=budgets)
            scores.insert(0, "task", name)
            parts.append(scores)
            figures[f"anytime-{name}"] = plot_anytime(
                runs,
                run_steps=run_steps,
                chance=chance,
                title=f"{name}: best validation score within the steps spent\n"
                f"(mean over {n_seeds} seeds; shaded: min–max; a diverged run counts as chance)",
                budgets=budgets,
            )
        if series is not None:
            series.close()
        import pandas as pd

        all_scores = pd.concat(parts, ignore_index=True)
        summary = summarize_anytime(all_scores)
        keep = _keep(all_scores, budgets)
        at = KEEP_BUDGET if KEEP_BUDGET in budgets else min(budgets)
        figures["summary"] = plot_summary(summary, _per_task(all_scores, at))
        result = BenchResult(
            tables=tables,
            scores=all_scores,
            summary=summary,
            keep=keep,
            histories=histories,
            seconds=time.perf_counter() - start,
            rewards={t.name: t.rewards for t in chosen},
            figures=figures,
            mlflow_run_id=parent,
        )
        text = result.format() + f"\n\nbench took {result.seconds / 60:.1f} min"
        if output_dir is not None:
            result.paths = _write(result, text, output_dir)
        if client is not None and parent is not None:
            client.log_text(parent, text, "bench.txt")
            client.log_text(parent, all_scores.to_csv(index=False), "scores.csv")
            client.log_text(parent, summary.to_csv(), "summary.csv")
            client.log_text(parent, keep.to_csv(), "keep.csv")
            for fname, fig in figures.items():
                client.log_figure(parent, fig, f"plots/{fname}.png")
            metrics = {
                f"{label}.{col.replace('@', '_')}": float(v)
                for label, row in summary.iterrows()
                for col, v in row.items()
                if col != "tasks" and math.isfinite(v)
            }
            log_metrics(client, parent, metrics, step=0)
    return result


# =============================================================================================
# Helpers
# =============================================================================================


def _tasks(tasks: Sequence[str | BenchTask] | None) -> list[BenchTask]:
    """The bench tasks: suite names resolved, a user's ``BenchTask`` s as they are."""
    chosen = list(SUITE.values()) if tasks is None else []
    for t in tasks or ():
        if isinstance(t, BenchTask):
            chosen.append(t)
        elif isinstance(t, str) and t in SUITE:
            chosen.append(SUITE[t])
        else:
            raise ValueError(
                f"`tasks` must name tasks of the suite ({', '.join(SUITE)}) or be BenchTasks, "
                f"but got {t!r}."
            )
    if not chosen:
        raise ValueError("`tasks` must hold at least one task, but got none.")
    if len({t.name for t in chosen}) != len(chosen):
        raise ValueError(f"`tasks` names a task twice: {[t.name for t in chosen]}.")
    return chosen


def _rows(strategies: Sequence[str] | Mapping[str, Factory] | None) -> dict[str, Factory]:
    """Label -> factory for the requested rows."""
    if isinstance(strategies, Mapping):
        if not strategies:
            raise ValueError("`strategies` must name at least one strategy, but got none.")
        return dict(strategies)
    from strategies import STRATEGIES

    known = bench_strategies()
    names = list(DEFAULT_STRATEGIES) if strategies is None else list(strategies)
    if isinstance(strategies, str):
        raise TypeError(f"`strategies` must be a list of names, but got {strategies!r}.")
    bad = [n for n in names if n not in known and n not in STRATEGIES]
    if bad or not names:
        raise ValueError(
            f"`strategies` must name bench rows ({', '.join(known)}) or registered "
            f"strategies ({', '.join(sorted(STRATEGIES))}), but got {bad or names!r}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"`strategies` names a row twice: {names!r}.")
    return {n: known[n] if n in known else _at_defaults(STRATEGIES[n]) for n in names}


def _at_defaults(cls: type) -> Factory:
    """A row of a registered strategy at its defaults, on every task."""

    def make(task: Task) -> Strategy:
        return cls()  # type: ignore[no-any-return]

    return make


def _prefixed(progress: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: progress(prefix + line)


def _keep(scores: pd.DataFrame, budgets: Sequence[float]) -> pd.DataFrame:
    """Per task: the best online strategy (mean over seeds) at ``KEEP_BUDGET`` against the best
    tuned grid at the largest budget (its full cost)."""
    import pandas as pd

    at = KEEP_BUDGET if KEEP_BUDGET in budgets else min(budgets)
    full = max(budgets)
    means = scores.groupby(["task", "strategy", "budget"], sort=False)["normalized"].mean()
    rows = {}
    for task in dict.fromkeys(scores["task"]):
        online = {s: means[(task, s, at)] for s in ONLINE if (task, s, at) in means.index}
        tuned = {s: means[(task, s, full)] for s in TUNED if (task, s, full) in means.index}
        if not online or not tuned:
            continue
        best_online = max(online, key=lambda s: online[s])
        best_tuned = max(tuned, key=lambda s: tuned[s])
        # what a user gets with no tuning at all: the best lr-free optimizer at 1x
        free = {s: means[(task, s, 1.0)] for s in LR_FREE_ROWS if (task, s, 1.0) in means.index}
        best_free = max(free, key=lambda s: free[s]) if free else None
        rows[task] = {
            "online": best_online,
            "online_score": online[best_online],
            "tuned": best_tuned,
            "tuned_score": tuned[best_tuned],
            "earns": bool(online[best_online] >= tuned[best_tuned]),
            "lr_free": best_free,
            "lr_free_score": free[best_free] if best_free else float("nan"),
            "beats_lr_free": bool(best_free and online[best_online] > free[best_free]),
        }
    df = pd.DataFrame.from_dict(
        rows,
        orient="index",
        columns=[
            "online",
            "online_score",
            "tuned",
            "tuned_score",
            "earns",
            "lr_free",
            "lr_free_score",
            "beats_lr_free",
        ],
    )
    df.index.name = "task"
    df.attrs.update(online_budget=at, tuned_budget=full)
    return df


def _format_keep(keep: pd.DataFrame) -> str:
    if keep.empty:
        return "(needs an online strategy and a tuned grid on the same task)"
    at, full = keep.attrs.get("online_budget", KEEP_BUDGET), keep.attrs.get("tuned_budget")
    lines = []
    width = max(len(str(t)) for t in keep.index)
    has_free = "lr_free" in keep and keep["lr_free"].notna().any()
    for task, row in keep.iterrows():
        line = (
            f"{str(task).ljust(width)}  {row['online']} {row['online_score']:.2f} @{at:g}x  vs  "
            f"{row['tuned']} {row['tuned_score']:.2f} @{full:g}x  -> "
            + ("earns its keep" if row["earns"] else "does not")
        )
        if has_free and isinstance(row["lr_free"], str):
            line += f";  vs  {row['lr_free']} {row['lr_free_score']:.2f} @1x  -> " + (
                "better" if row["beats_lr_free"] else "not better"
            )
        lines.append(line)
    lines.append(f"online earns its keep on {int(keep['earns'].sum())} of {len(keep)} tasks")
    if has_free:
        n_free = int(keep["lr_free"].notna().sum())
        lines.append(
            f"online at {at:g}x beats the best learning-rate-free optimizer at 1x (no tuning) on "
            f"{int(keep['beats_lr_free'].sum())} of {n_free} tasks"
        )
    return "\n".join(lines)


def _per_task(scores: pd.DataFrame, budget: float) -> pd.DataFrame:
    """Mean normalised score at ``budget``: strategies x tasks."""
    at = scores[scores["budget"] == budget]
    table = at.groupby(["strategy", "task"], sort=False)["normalized"].mean().unstack("task")
    return table.reindex(
        index=list(dict.fromkeys(scores["strategy"])), columns=list(dict.fromkeys(scores["task"]))
    )


def _write(result: BenchResult, text: str, output_dir: str | os.PathLike[str]) -> list[str]:
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for name, content in (
        ("bench.txt", text + "\n"),
        ("scores.csv", result.scores.to_csv(index=False)),
        ("summary.csv", result.summary.to_csv()),
        ("keep.csv", result.keep.to_csv()),
    ):
        path = os.path.join(output_dir, name)
        with open(path, "w") as f:
            f.write(content)
        paths.append(path)
    for name, fig in result.figures.items():
        path = os.path.join(output_dir, f"{name}.png")
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths
