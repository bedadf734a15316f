"""Progress output: live bars where a person watches (a terminal, a notebook), a line per run
where nobody does (a log file, CI), nothing when asked for nothing.

All bars are ``tqdm`` bars (a dependency of Optuna already): ``RunProgress`` over one run's
epochs, ``SeriesProgress`` over the runs of a comparison or a bench (with the current run's bar
below it), ``StudyProgress`` over a study's trials. ``ProgressPrinter`` is the plain line per
epoch, for logs that want it.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, TextIO

from hpo._callbacks import Callback

if TYPE_CHECKING:
    import optuna

    from hpo._history import Decision, EpochRecord, History
    from trainers import Trainer


def interactive(stream: TextIO | None = None) -> bool:
    """Whether someone watches ``stream`` (default ``sys.stderr``): a terminal, or a Jupyter
    kernel (whose bars are widgets). Logs, pipes and CI get no bars."""
    if _in_notebook():
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def wants_bars(progress: Any, stream: TextIO | None = None) -> bool:
    """``progress`` as the API takes it: ``True`` (bars), ``False`` (silence), ``None`` (bars
    when ``interactive``).

    Raises:
        TypeError: Anything else.
    """
    if progress is None:
        return interactive(stream)
    if isinstance(progress, bool):
        return progress
    raise TypeError(f"`progress` must be True, False or None, but got progress={progress!r}.")


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    get = getattr(shell, "get_ipython", None)
    return bool(get and getattr(get(), "kernel", None) is not None)


def _bar(**kwargs: Any) -> Any:
    """A tqdm bar: the notebook widget in Jupyter, the text bar elsewhere."""
    if _in_notebook():
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(dynamic_ncols=True, **kwargs)


def write(line: str, stream: TextIO | None = None) -> None:
    """Print ``line`` above any live bars (a plain print would tear them)."""
    from tqdm import tqdm

    tqdm.write(line, file=stream or sys.stderr)


class RunProgress(Callback):
    """A live bar over one run's epochs: ``epoch k/N``, the elapsed time and the ETA, the last
    validation score, the best one and the lr; before the first epoch (Hyperdyn's random start,
    Static's trials) it names the strategy's latest decision.

    Args:
        total_epochs: The run's length (``None``: a bar without an end, e.g. a time budget).
        stream: Where the bar goes (default ``sys.stderr``).
        desc: The bar's label (default: the strategy's name).
        position: The bar's line, counted from the first bar (a series puts runs on line 1).
        leave: Keep the finished bar on screen.

    Example:
        >>> import io, hpo
        >>> from strategies import Constant
        >>> stream = io.StringIO()
        >>> _ = hpo.run(hpo.testing.boring_task(epochs=2), Constant(lr=0.05), tracking=False,
        ...             callbacks=[RunProgress(total_epochs=2, stream=stream)], progress=False)
        >>> "2/2" in stream.getvalue()
        True
    """

    def __init__(
        self,
        *,
        total_epochs: int | None = None,
        stream: TextIO | None = None,
        desc: str | None = None,
        position: int = 0,
        leave: bool = True,
    ) -> None:
        self.total_epochs = total_epochs
        self.stream = stream
        self.desc = desc
        self.position = position
        self.leave = leave
        self.bar: Any = None

    def on_run_start(self, history: History, trainer: Trainer) -> None:
        self.bar = _bar(
            total=self.total_epochs,
            initial=history.epochs,  # a resumed run starts where it stopped
            desc=self.desc or history.strategy,
            unit="epoch",
            file=self.stream or sys.stderr,
            position=self.position,
            leave=self.leave,
            bar_format="{desc}: epoch {n_fmt}/{total_fmt} {bar} [{elapsed}<{remaining}]{postfix}"
            if self.total_epochs
            else "{desc}: epoch {n_fmt} [{elapsed}]{postfix}",
        )

    def on_decision(self, history: History, decision: Decision) -> None:
        if self.bar is not None and not history.records:
            self.bar.set_postfix_str(decision.reason[:60])

    def on_epoch_end(self, history: History, record: EpochRecord) -> None:
        if self.bar is None:
            return
        from trainers import format_score

        key = history.metric
        best = history.best
        self.bar.set_postfix_str(
            f"val {key} {format_score(record.val_score, key)}"
            + (f", best {format_score(best.val_score, key)}" if best is not None else "")
            + (f", lr {record.lr:.2g}" if math.isfinite(record.lr) else ""),
            refresh=False,
        )
        self.bar.update(1)
        self.bar.refresh()

    def on_run_end(self, history: History) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SeriesProgress:
    """The bars of a series of runs (``hpo.compare``, ``hpo.bench``): runs done of ``total``
    with the ETA on the first line, the current run's epochs on the second; each finished run
    also leaves a line above the bars.

    Args:
        total: How many runs the series makes.
        stream: Where the bars go (default ``sys.stderr``).
        desc: The first bar's label (``compare``, ``bench``).
    """

    def __init__(self, total: int, *, stream: TextIO | None = None, desc: str = "compare") -> None:
        self.stream = stream
        self.bar = _bar(
            total=total,
            desc=desc,
            unit="run",
            file=stream or sys.stderr,
            position=0,
            bar_format="{desc}: {n_fmt}/{total_fmt} runs {bar} [{elapsed}<{remaining}]{postfix}",
        )

    def run(self, label: str, epochs: int | None) -> RunProgress:
        """The bar of the next run (a callback to give that run)."""
        return RunProgress(
            total_epochs=epochs, stream=self.stream, desc=label, position=1, leave=False
        )

    def finished(self, line: str) -> None:
        """A run ended: one more done, and its ``line`` above the bars."""
        write(line, self.stream)
        self.bar.update(1)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class StudyProgress:
    """An Optuna callback: trials done of ``n_trials`` with the best value so far (and a line
    per finished trial above the bar).

    Args:
        n_trials: The trials this process runs.
        metric: The value's name (``val_acc``...).
        stream: Where the bar goes (default ``sys.stderr``).
        line: Makes a finished trial's line (``None``: no lines).
    """

    def __init__(
        self,
        n_trials: int,
        metric: str,
        *,
        stream: TextIO | None = None,
        line: Any = None,
    ) -> None:
        self.metric = metric
        self.stream = stream
        self.line = line
        self.bar = _bar(
            total=n_trials,
            desc="trials",
            unit="trial",
            file=stream or sys.stderr,
            bar_format="{desc}: {n_fmt}/{total_fmt} {bar} [{elapsed}<{remaining}]{postfix}",
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.line is not None:
            write(self.line(study, trial), self.stream)
        try:
            best = f"best {self.metric} {study.best_value:.4g} (trial {study.best_trial.number})"
        except ValueError:  # no completed trial yet
            best = "no completed trial yet"
        self.bar.set_postfix_str(best, refresh=False)
        self.bar.update(1)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class ProgressPrinter(Callback):
    """Print a progress line per epoch, e.g.::

        [schedule] epoch  3/60  lr 1.98e-02  train 1.254 / 55.1%  val 1.102 / 61.0%  1.1s elapsed

    Args:
        stream: Where to write (default ``sys.stderr``).
        total_epochs: The run's length, shown as ``epoch k/N``.
        prefix: Text in the brackets (default: the strategy's name).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        total_epochs: int | None = None,
        prefix: str | None = None,
    ) -> None:
        self.stream = stream
        self.total_epochs = total_epochs
        self.prefix = prefix

    def on_run_start(self, history: History, trainer: Trainer) -> None:
        self._name = self.prefix or history.strategy

    def on_epoch_end(self, history: History, record: EpochRecord) -> None:
        from trainers import format_score

        key = history.metric
        total = f"/{self.total_epochs}" if self.total_epochs else ""
        width = len(str(self.total_epochs or record.epoch))
        line = (
            f"[{self._name}] epoch {record.epoch:>{width}}{total}  lr {record.lr:.2e}  "
            f"train {record.train_loss:.3f} / {format_score(record.train_score, key):>6}  "
            f"val {record.val_loss:.3f} / {format_score(record.val_score, key):>6}  "
            f"{record.wall_time:5.1f}s elapsed"
        )
        if record.decisions:
            line += "  " + "; ".join(d.reason for d in record.decisions[-1:])
        print(line, file=self.stream or sys.stderr, flush=True)
