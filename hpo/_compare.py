"""``hpo.compare``: several strategies on one task and the same seeds, as one table.

The table follows Hyperdyn's Table 1 (optimizer steps to reach 85 / 90 / 95 % of the best
validation accuracy any run reached, and the speed-up against a baseline) and adds the honest
cost: the steps and examples a strategy *spent* (branches, populations, rejected steps and
discarded trials included) next to the steps of the trajectory it kept.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo._budget import Budget
from hpo._callbacks import Callback
from hpo._history import History
from hpo._progress import SeriesProgress, wants_bars
from hpo._task import MAX_SEED, Task, resolved_params

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from hpo._strategy import Strategy

StrategySpec = Any  # a Strategy, a strategy class, a factory seed -> Strategy, or (spec, changes)
TARGETS = (0.85, 0.90, 0.95)


def compare(
    task: Task,
    strategies: Mapping[str, StrategySpec],
    *,
    seeds: int | Sequence[int] = 3,
    budget: Budget | None = None,
    baseline: str | None = None,
    targets: Sequence[float] = TARGETS,
    tracking: bool | str = True,
    experiment: str = "hpo",
    run_name: str | None = None,
    parent_run_id: str | None = None,
    run_plots: bool = True,
    output_dir: str | os.PathLike[str] | None = None,
    progress: bool | Callable[[str], None] | SeriesProgress | None = None,
    callbacks: Sequence[Callback] = (),
) -> pd.DataFrame:
    """Run every strategy on ``task`` for every seed, under one budget; return one row each.

    Args:
        task: The training problem; its ``seed`` is replaced by each of ``seeds``.
        strategies: Label -> a strategy, a strategy class (built with its defaults), a
            factory ``seed -> strategy``, or a pair ``(one of those, task changes)`` to run that
            row on ``task.replace(**changes)`` — e.g. ``(Schedule(), {"optimizer": "nos:opt6"})``
            to compare optimizers.
        seeds: How many seeds (0, 1, ...), or the seeds themselves.
        budget: The same limits for every run (default: ``task.epochs`` epochs).
        baseline: The label speed-ups are measured against (default: the first).
        targets: Fractions of the best validation accuracy any run reached, for the
            steps-to-target columns.
        tracking: ``True`` (MLflow at ``MLFLOW_TRACKING_URI``), a URI, or ``False``. A parent run
            ``run_name`` gets one child per (strategy, seed), the table as ``comparison.csv``
            and the plots.
        experiment: The MLflow experiment.
        run_name: The parent run's name (default: the strategies, the task and the time, e.g.
            ``compare constant, pbt on mnist1d/cnn 2026-11-30 14:05``).
        parent_run_id: Nest the comparison's parent run under this MLflow run (``hpo bench``
            nests one comparison per task).
        run_plots: Log each run's plots as artifacts of its child run (the History JSON is
            logged either way); ``hpo bench`` turns them off to save ~0.1 s per run.
        output_dir: Also write the table and plots here.
        progress: ``None`` (default): live bars on ``sys.stderr`` when someone watches (a
            terminal or a notebook) — runs done of all with the ETA, the current run's epochs
            and score, a line per finished run — and nothing in a log; ``True`` bars always;
            ``False`` nothing; a callable: called with a line of text after each run (e.g.
            ``print``), no bars.
        callbacks: More observers of every run.

    Returns:
        A DataFrame indexed by label (columns: see ``summarize``). ``df.attrs`` holds
        ``histories`` (label -> list of History), ``targets`` (fraction -> accuracy),
        ``plots`` (paths written) and ``mlflow_run_id``.

    Raises:
        ValueError: No strategies, an unknown ``baseline``, bad seeds or targets.

    Example:
        >>> import hpo
        >>> from strategies import Constant
        >>> df = hpo.compare(hpo.testing.boring_task(epochs=2),
        ...                  {"slow": Constant(lr=0.002), "fast": Constant(lr=0.02)},
        ...                  seeds=1, tracking=False)
        >>> list(df.index)
        ['slow', 'fast']
    """
    from hpo._run import run
    from hpo._tracking import MLflowCallback, parent_run

    if not isinstance(task, Task):
        raise TypeError(f"`task` must be an hpo.Task, but got {type(task).__name__}.")
    if not isinstance(strategies, Mapping):
        raise TypeError(
            "`strategies` must be a mapping label -> strategy (e.g. {'constant': Constant()}), "
            f"but got strategies={strategies!r} of type {type(strategies).__name__}."
        )
    labels = list(strategies)
    if not labels:
        raise ValueError("`strategies` must name at least one strategy, but got none.")
    baseline = labels[0] if baseline is None else baseline
    if baseline not in strategies:
        raise ValueError(f"`baseline` must be one of {labels}, but got baseline={baseline!r}.")
    seed_list = _seeds(seeds)
    _check_targets(targets)
    if output_dir is not None:
        from hpo._resources import check_output_dir

        check_output_dir(output_dir, flag="`output_dir`")
    if budget is not None and not isinstance(budget, Budget):
        raise TypeError(
            f"`budget` must be an hpo.Budget (e.g. hpo.Budget(epochs={budget!r})), but got "
            f"budget={budget!r} of type {type(budget).__name__}."
        )
    budget = budget or task.budget()
    data = task.load_data()

    uri = tracking if isinstance(tracking, str) else None
    if run_name is None:
        run_name = default_run_name("compare", labels, task)
    params: dict[str, Any] = {
        **resolved_params(task),
        "strategies": ",".join(labels),
        "seeds": ",".join(map(str, seed_list)),
        "baseline": baseline,
        "budget": repr(budget),
    }
    histories: dict[str, list[History]] = {label: [] for label in labels}
    total, done = len(labels) * len(seed_list), 0
    series, own_series, lines = _progress(progress, total)
    with parent_run(
        tracking,
        experiment,
        run_name,
        tags={"hpo.role": "comparison"},
        params=params,
        parent_run_id=parent_run_id,
    ) as (client, parent):
        for label in labels:
            spec, changes = _split(strategies[label])
            row_task = task.replace(**changes) if changes else task
            for seed in seed_list:
                strategy = _build(spec, seed)
                cbs: list[Any] = []
                if parent is not None:
                    cbs.append(
                        MLflowCallback(
                            tracking_uri=uri,
                            experiment=experiment,
                            run_name=f"{label} seed {seed}",
                            parent_run_id=parent,
                            tags={"hpo.label": label, "hpo.seed": seed},
                            log_plots=run_plots,
                        )
                    )
                if series is not None:
                    cbs.append(series.run(f"{label} seed {seed}", budget.epochs))
                start = time.perf_counter()
                try:
                    history = run(
                        row_task.replace(seed=seed),
                        strategy,
                        budget=budget,
                        tracking=False,
                        callbacks=[*cbs, *callbacks],
                        data=data,
                        progress=False,
                    )
                except BaseException:
                    if series is not None:  # the error's message goes below the bars
                        series.close()
                    raise
                histories[label].append(history)
                done += 1
                line = _progress_line(done, total, label, seed, history, start)
                if series is not None:
                    series.finished(line)
                elif lines is not None:
                    lines(line)
        if own_series and series is not None:
            series.close()
        table = summarize(histories, baseline=baseline, targets=targets)
        plots: list[str] = []
        if output_dir is not None or parent is not None:
            text, figures = format_table(table), plot_comparison(histories)
            plots = _write_outputs(table, text, figures, output_dir)
            if client is not None and parent is not None:
                _log_comparison(client, parent, table, text, figures)
    table.attrs["histories"] = histories
    table.attrs["plots"] = plots
    table.attrs["mlflow_run_id"] = parent
    return table


# =============================================================================================
# The table
# =============================================================================================


def steps_to_target(history: History, target: float, *, spent: bool = False) -> int | None:
    """Optimizer steps until the run's validation score first reached ``target`` (at least
    ``target`` for a maximised metric, at most for a minimised one).

    Args:
        history: A run.
        target: A score of the task's metric (an accuracy, a fraction, by default).
        spent: Count the steps spent (branches, members, trials) instead of the kept
            trajectory's steps.

    Returns:
        The steps at the end of the first epoch that reached ``target``; ``None`` if never.

    Example:
        >>> from hpo import EpochRecord, History
        >>> rec = lambda e, acc: EpochRecord(e, 0.1, 0.1, 0.1, 1.0, 0.5, 1.0, acc, 10 * e,
        ...                                  100 * e, 20 * e, 200 * e, float(e))
        >>> h = History(strategy="x", records=[rec(1, 0.5), rec(2, 0.8), rec(3, 0.9)])
        >>> steps_to_target(h, 0.8), steps_to_target(h, 0.8, spent=True), steps_to_target(h, 0.95)
        (20, 40, None)
    """
    for r in history.records:
        if math.isfinite(r.val_score) and history.signed(r.val_score) >= history.signed(target):
            return r.spent_steps if spent else r.steps
    return None


def target_score(best: float, fraction: float, *, maximize: bool) -> float:
    """The score that is ``fraction`` of the way to ``best`` (Hyperdyn's Table 1): ``fraction``
    x ``best`` for a maximised metric (90 % of the best accuracy), ``best / fraction`` for a
    minimised one (an MSE within 1/0.9 of the best).

    Example:
        >>> target_score(0.9, 0.9, maximize=True), round(target_score(0.9, 0.9, maximize=False), 4)
        (0.81, 1.0)
    """
    return fraction * best if maximize else best / fraction


def summarize(
    histories: Mapping[str, Sequence[History]],
    *,
    baseline: str | None = None,
    targets: Sequence[float] = TARGETS,
) -> pd.DataFrame:
    """The comparison table from finished runs.

    Scores are the task's metric, named by its key (``acc`` for accuracy, ``mse``...). Columns,
    per label (``_mean`` / ``_std`` over its runs):

    * ``runs``, ``diverged``: number of runs, and of those that diverged;
    * ``final_val_<key>``, ``best_val_<key>`` (best in the metric's direction),
      ``final_val_loss``, ``best_val_loss`` (lowest), ``test_<key>_at_best`` (the test score of
      the best-validation weights);
    * for each target ``x`` (e.g. 90): ``steps_to_90`` (mean over the runs that reached it),
      ``reached_90`` (how many did), ``speedup_90`` (the baseline's steps / these), and
      ``spent_to_90`` (the steps spent by then);
    * ``steps``: trajectory steps; ``spent_steps``, ``spent_examples``: all the work;
      ``cost``: ``spent_steps / steps``; ``wall_time``: seconds per run.

    The targets are ``target_score`` of the best validation score any run reached (stored in
    ``df.attrs["targets"]``, with ``metric`` and ``maximize``). A run that diverged counts only
    in ``runs`` and ``diverged``: its scores (reached before it diverged) are left out of every
    other column and never set the targets, and it never reaches a target (``reached_x`` counts
    the sound runs).

    Raises:
        ValueError: Empty ``histories``, an unknown ``baseline``, or runs scored by different
            metrics.
    """
    import pandas as pd

    labels = list(histories)
    if not labels:
        raise ValueError("`histories` must hold at least one label, but got none.")
    baseline = labels[0] if baseline is None else baseline
    if baseline not in histories:
        raise ValueError(f"`baseline` must be one of {labels}, but got baseline={baseline!r}.")
    _check_targets(targets)
    key, maximize = _metric_of(histories)
    sign = 1.0 if maximize else -1.0
    scores = [r.val_score for hs in histories.values() for h in _sound(hs) for r in h.records]
    finite = [a for a in scores if math.isfinite(a)]
    best_any = sign * max(sign * a for a in finite) if finite else math.nan
    goals = {x: target_score(best_any, x, maximize=maximize) for x in targets}

    rows: dict[str, dict[str, float]] = {}
    for label in labels:
        runs = _sound(histories[label])
        row: dict[str, float] = {
            "runs": float(len(histories[label])),
            "diverged": float(sum(h.status == "diverged" for h in histories[label])),
        }
        stats = {
            f"final_val_{key}": [h.records[-1].val_score for h in runs],
            f"best_val_{key}": [
                sign * max(_finite_or([sign * v for v in h.column("val_score")], -math.inf))
                for h in runs
            ],
            "final_val_loss": [h.records[-1].val_loss for h in runs],
            "best_val_loss": [min(_finite_or(h.column("val_loss"), math.inf)) for h in runs],
            f"test_{key}_at_best": [h.best_test_score for h in runs],
        }
        for name, values in stats.items():
            row[f"{name}_mean"], row[f"{name}_std"] = _mean_std(values)
        for x, goal in goals.items():
            pct = _pct(x)
            steps = [steps_to_target(h, goal) for h in runs]
            spent = [steps_to_target(h, goal, spent=True) for h in runs]
            reached = [s for s in steps if s is not None]
            row[f"steps_to_{pct}"] = float(np.mean(reached)) if reached else math.nan
            row[f"reached_{pct}"] = float(len(reached))
            spent_r = [s for s in spent if s is not None]
            row[f"spent_to_{pct}"] = float(np.mean(spent_r)) if spent_r else math.nan
        row["steps_mean"] = _mean_std([h.records[-1].steps for h in runs])[0]
        row["spent_steps_mean"] = _mean_std([h.records[-1].spent_steps for h in runs])[0]
        row["spent_examples_mean"] = _mean_std([h.records[-1].spent_examples for h in runs])[0]
        row["cost"] = (
            row["spent_steps_mean"] / row["steps_mean"] if row["steps_mean"] else math.nan
        )
        row["wall_time_mean"] = _mean_std([h.records[-1].wall_time for h in runs])[0]
        rows[label] = row
    for label in labels:
        for x in goals:
            pct = _pct(x)
            mine, base = rows[label][f"steps_to_{pct}"], rows[baseline][f"steps_to_{pct}"]
            rows[label][f"speedup_{pct}"] = base / mine if mine > 0 else math.nan
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "strategy"
    df.attrs["targets"] = {x: goals[x] for x in goals}
    df.attrs["baseline"] = baseline
    df.attrs["metric"] = key
    df.attrs["maximize"] = maximize
    df.attrs["best"] = best_any
    return df


def _metric_of(histories: Mapping[str, Sequence[History]]) -> tuple[str, bool]:
    """The metric key and direction the runs share (accuracy when there are none)."""
    found = {(h.metric, h.maximize) for hs in histories.values() for h in hs}
    if len(found) > 1:
        raise ValueError(
            f"The runs of a comparison must share one metric, but got {sorted(found)}."
        )
    return found.pop() if found else ("acc", True)


def _sound(runs: Sequence[History]) -> list[History]:
    """The runs that have records and did not diverge."""
    return [h for h in runs if h.records and h.status != "diverged"]


def format_table(df: pd.DataFrame) -> str:
    """The comparison as a table for a terminal (accuracy in percent, other metrics with 4
    digits, steps as integers)."""
    from trainers import format_score

    key = df.attrs.get("metric", "acc")
    targets = sorted(df.attrs.get("targets", {}))
    headers = ["strategy", "final val", "best val", "test@best"]
    headers += [f"steps to {_pct(x)}% (speed-up)" for x in targets]
    headers += ["steps", "spent (x)", "time"]
    lines = []
    for label, row in df.iterrows():
        n = int(row["runs"])
        cells = [
            str(label) + (f" [{int(row['diverged'])} diverged]" if row["diverged"] else ""),
            _pm(row[f"final_val_{key}_mean"], row[f"final_val_{key}_std"], key),
            _pm(row[f"best_val_{key}_mean"], row[f"best_val_{key}_std"], key),
            _pm(row[f"test_{key}_at_best_mean"], row[f"test_{key}_at_best_std"], key),
        ]
        for x in targets:
            pct = _pct(x)
            steps, reached = row[f"steps_to_{pct}"], int(row[f"reached_{pct}"])
            if reached == 0:
                cells.append("never")
            else:
                speedup = row[f"speedup_{pct}"]
                ratio = f"{speedup:.2f}x" if math.isfinite(speedup) else "-"
                text = f"{steps:,.0f} ({ratio})"
                cells.append(text + ("" if reached == n else f" {reached}/{n}"))
        cells += (
            [
                f"{row['steps_mean']:,.0f}",
                f"{row['spent_steps_mean']:,.0f} ({row['cost']:.1f}x)",
                f"{row['wall_time_mean']:.1f}s",
            ]
            if math.isfinite(row["steps_mean"])
            else ["-", "-", "-"]
        )
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in lines]
    goals = df.attrs.get("targets", {})
    if goals:
        best = df.attrs.get("best", math.nan)
        name = "accuracy" if key == "acc" else key
        listed = ", ".join(
            f"{_pct(x)}% = {format_score(v, key)}" for x, v in sorted(goals.items())
        )
        way = "of" if df.attrs.get("maximize", True) else "within 1/x of"
        out.append(
            f"targets: {listed} {way} the best val {name} any run reached "
            f"({format_score(best, key)}); speed-ups against {df.attrs.get('baseline')!r}; "
            f"scores are mean ± std over the runs that did not diverge."
        )
    return "\n".join(out)


# =============================================================================================
# Plots
# =============================================================================================


def plot_comparison(histories: Mapping[str, Sequence[History]]) -> dict[str, Figure]:
    """Two figures, one line per strategy (the mean over seeds, the seeds' range shaded):

    * ``val_<key>`` (``val_acc`` by default): the validation score against the kept
      trajectory's steps and against the steps spent;
    * ``lr``: the learning rate against epochs (log scale; the line is the geometric mean).
    """
    from matplotlib.figure import Figure

    from hpo._plots import score_axis

    key, _ = _metric_of(histories)
    scale, ylabel = score_axis(key)

    fig_val = Figure(figsize=(12, 4.8), layout="constrained")
    ax_traj, ax_spent = fig_val.subplots(1, 2, sharey=True)
    fig_lr = Figure(figsize=(7, 4.5), layout="constrained")
    ax_lr = fig_lr.subplots()
    lr_seen: list[float] = []
    for i, (label, runs) in enumerate(histories.items()):
        color = f"C{i % 10}"
        acc = _stack([h.column("val_score") for h in runs])
        steps = _stack([h.column("steps") for h in runs])
        spent = _stack([h.column("spent_steps") for h in runs])
        lr = _stack([h.column("lr") for h in runs])
        if acc.size == 0:
            continue
        for ax, x in ((ax_traj, steps), (ax_spent, spent)):
            xm = np.nanmean(x, axis=0)
            ax.plot(xm, scale * np.nanmean(acc, axis=0), color=color, label=label, lw=1.6)
            ax.fill_between(
                xm,
                scale * np.nanmin(acc, axis=0),
                scale * np.nanmax(acc, axis=0),
                color=color,
                alpha=0.18,
                lw=0,
            )
        epochs = np.arange(1, lr.shape[1] + 1)
        positive = np.where(
            lr > 0, lr, np.nan
        )  # a log axis: an lr of 0 (a schedule's end) is off it
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an epoch with no positive lr
            geo = np.exp(np.nanmean(np.log(positive), axis=0))
            low, high = np.nanmin(positive, axis=0), np.nanmax(positive, axis=0)
            lr_seen.extend(v for v in (np.nanmin(low), np.nanmax(high)) if np.isfinite(v))
        ax_lr.plot(epochs, geo, color=color, label=label, lw=1.6)
        ax_lr.fill_between(epochs, low, high, color=color, alpha=0.18, lw=0)
    ax_traj.set_xlabel("optimizer steps of the kept trajectory")
    ax_spent.set_xlabel("optimizer steps spent (all branches, members, trials)")
    ax_traj.set_ylabel(f"validation {ylabel}")
    for ax in (ax_traj, ax_spent):
        ax.grid(alpha=0.3)
    ax_spent.legend(loc="best")
    fig_val.suptitle(f"Validation {ylabel} (mean over seeds; shaded: min–max)")
    ax_lr.set_yscale("log")
    if lr_seen and max(lr_seen) < 1.01 * min(lr_seen):  # one lr throughout: give it room
        ax_lr.set_ylim(min(lr_seen) / 2, max(lr_seen) * 2)
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate (epoch mean)")
    ax_lr.grid(alpha=0.3)
    ax_lr.legend(loc="best")
    fig_lr.suptitle("Learning rate (geometric mean over seeds; shaded: min–max)")
    return {f"val_{key}": fig_val, "lr": fig_lr}


# =============================================================================================
# Helpers
# =============================================================================================


def _split(spec: StrategySpec) -> tuple[StrategySpec, dict[str, Any]]:
    """``(spec, task changes)`` of a row; the changes may not touch the data."""
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[1], dict):
            raise TypeError(
                f"A pair in `strategies` must be (strategy, dict of task changes), got {spec!r}."
            )
        shared = Task.DATA_FIELDS & set(spec[1])
        if shared:
            raise ValueError(
                f"Task changes per row may not change the data ({sorted(shared)}): every row "
                "of a comparison trains on the same splits."
            )
        return spec[0], dict(spec[1])
    return spec, {}


def _build(spec: StrategySpec, seed: int) -> Strategy:
    from hpo._strategy import Strategy

    if isinstance(spec, Strategy):
        return spec
    if isinstance(spec, type):
        return spec()  # type: ignore[no-any-return]
    if callable(spec):
        built = spec(seed)
        if not isinstance(built, Strategy):
            raise TypeError(f"The factory {spec!r} returned {built!r}, which is not a strategy.")
        return built
    raise TypeError(
        f"Each value of `strategies` must be a strategy, a strategy class or a factory "
        f"seed -> strategy, but got {spec!r}."
    )


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, (bool, str, bytes)) or not isinstance(seeds, (int, Sequence)):
        raise TypeError(f"`seeds` must be an int or a sequence of ints, but got seeds={seeds!r}.")
    out = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not out or any(
        not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED for s in out
    ):
        raise ValueError(
            f"`seeds` must be a count >= 1 or ints in [0, {MAX_SEED}], but got seeds={seeds!r}."
        )
    unique = list(dict.fromkeys(out))
    if len(unique) < len(out):
        warnings.warn(
            f"`seeds` repeats a seed ({seeds!r}): a repeated seed gives the same run again, "
            f"so each is run once: {unique}.",
            UserWarning,
            stacklevel=3,
        )
    return unique


def _check_targets(targets: Sequence[float]) -> None:
    if not targets or any(not (0.0 < float(x) <= 1.0) for x in targets):
        raise ValueError(f"`targets` must be fractions in (0, 1], but got targets={targets!r}.")


def _pct(x: float) -> str:
    return f"{100 * x:g}"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def _finite_or(values: Sequence[float], default: float) -> list[float]:
    out = [v for v in values if math.isfinite(v)]
    return out or [default]


def _pm(mean: float, std: float, key: str = "acc") -> str:
    from trainers._metrics import PERCENT_KEYS

    if not math.isfinite(mean):
        return "-"
    if key in PERCENT_KEYS:
        return f"{100 * mean:.1f} ± {100 * std:.1f}%"
    return f"{mean:.4g} ± {std:.2g}"


def _stack(columns: Sequence[Sequence[float]]) -> np.ndarray:
    """Runs of unequal length, NaN-padded into a `runs x epochs` array."""
    if not columns:
        return np.empty((0, 0))
    n = max(len(c) for c in columns)
    out = np.full((len(columns), n), np.nan)
    for i, c in enumerate(columns):
        out[i, : len(c)] = np.asarray(c, dtype=float)
    return out


def _progress(
    progress: Any, total: int
) -> tuple[SeriesProgress | None, bool, Callable[[str], None] | None]:
    """``compare``'s ``progress``: (the bars to use, whether they are ours to close, the line
    callback)."""
    if isinstance(progress, SeriesProgress):
        return progress, False, None
    if callable(progress) and not isinstance(progress, bool):
        return None, False, progress
    if wants_bars(progress):
        return SeriesProgress(total), True, None
    return None, False, None


def default_run_name(kind: str, labels: Sequence[str], task: Task | None = None) -> str:
    """A parent run's name that tells two of them apart in MLflow's runs table: ``<kind>
    <labels> on <dataset>/<model> <date time>`` (the labels cut to 60 characters)."""
    what = ", ".join(labels)
    if len(what) > 60:
        what = what[:57] + "..."
    on = ""
    if task is not None:
        params = task.to_params()
        on = f" on {params.get('dataset')}/{params.get('model')}"
    return f"{kind} {what}{on} {time.strftime('%Y-%m-%d %H:%M')}"


def _progress_line(
    done: int, total: int, label: str, seed: int, history: History, start: float
) -> str:
    width = len(str(total))
    best = history.best
    final = history.final
    text = f"[{done:>{width}}/{total}] {label} seed {seed}: "
    if best is not None and final is not None:
        from trainers import format_score

        text += (
            f"best val {format_score(best.val_score, history.metric)}, {final.steps:,} steps "
            f"({final.spent_steps:,} spent), "
        )
    if history.status != "finished":
        text += f"{history.status}, "
    return text + f"{time.perf_counter() - start:.1f}s"


def _write_outputs(
    table: pd.DataFrame,
    text: str,
    figures: Mapping[str, Figure],
    output_dir: str | os.PathLike[str] | None,
) -> list[str]:
    """Write the table (CSV and ``format_table``'s ``text``) and the figures to ``output_dir``;
    return the paths of the CSV and the plots."""
    if output_dir is None:
        return []
    os.makedirs(output_dir, exist_ok=True)
    paths = [os.path.join(output_dir, "comparison.csv")]
    table.to_csv(paths[0])
    with open(os.path.join(output_dir, "comparison.txt"), "w") as f:
        f.write(text + "\n")
    for name, fig in figures.items():
        path = os.path.join(output_dir, f"{name}.png")
        fig.savefig(path, dpi=120)
        paths.append(path)
    return paths


def _log_comparison(
    client: Any, run_id: str, table: pd.DataFrame, text: str, figures: Mapping[str, Figure]
) -> None:
    """Log the table (CSV and ``text``), the figures and each row's headline metrics."""
    from hpo._tracking import log_metrics

    client.log_text(run_id, table.to_csv(), "comparison.csv")
    client.log_text(run_id, text, "comparison.txt")
    for name, fig in figures.items():
        client.log_figure(run_id, fig, f"plots/{name}.png")
    metrics = {}
    key = table.attrs.get("metric", "acc")
    for label, row in table.iterrows():
        for col in (
            f"best_val_{key}_mean",
            f"final_val_{key}_mean",
            f"test_{key}_at_best_mean",
            "spent_steps_mean",
        ):
            metrics[f"{label}.{col}"] = float(row[col])
    log_metrics(client, run_id, metrics, step=0)
