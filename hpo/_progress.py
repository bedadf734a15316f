"""``ProgressPrinter``: one line per epoch on a text stream (the CLI's progress output)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from hpo._callbacks import Callback

if TYPE_CHECKING:
    from hpo._history import EpochRecord, History
    from trainers import Trainer


class ProgressPrinter(Callback):
    """Print a progress line per epoch, e.g.::

        [schedule] epoch  3/60  lr 1.98e-02  train 1.254 / 55.1%  val 1.102 / 61.0%  1.1s

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
            f"{record.wall_time:5.1f}s"
        )
        if record.decisions:
            line += "  " + "; ".join(d.reason for d in record.decisions[-1:])
        print(line, file=self.stream or sys.stderr, flush=True)
