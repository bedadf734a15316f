"""``Checkpoint``: a run's whole state on disk at every epoch boundary, so that a run killed at
any moment resumes where its last epoch ended and finishes exactly as if it had never stopped.

The directory holds three files:

* ``checkpoint.pt``: the trainer's state (weights, optimizer state, random streams, counters),
  the History so far, the recorder's memory (the best weights, the divergence monitor), every
  callback's state (the MLflow run's id, ...) and the strategy's own state (Hyperdyn's GP data
  and random stream, PBT's population, SGD-SA's temperature...). Written atomically (a
  temporary file, flushed, renamed over the old one) and read with
  ``torch.load(weights_only=True)``, so a checkpoint cannot run code when it is loaded.
* ``checkpoint.json``: what the run is (strategy, task, budget), how far it got and its
  status, for people and for the identity check of ``resume``.
* ``history.json``: the final History, once the run has ended.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo._callbacks import Callback
from hpo._validation import check_range

if TYPE_CHECKING:
    from hpo._history import History

#: The checkpoint's file format; a newer file is refused with a clear message.
FORMAT = 1
STATE_FILE = "checkpoint.pt"
META_FILE = "checkpoint.json"
HISTORY_FILE = "history.json"
#: Statuses after which there is nothing left to resume.
ENDED = ("finished", "diverged")


class Checkpoint(Callback):
    """Save a run's state into ``directory`` at every epoch boundary; resume from it.

    ``hpo.run(task, strategy, checkpoint_dir=DIR, resume=True)`` (``hpo run --checkpoint-dir
    DIR --resume``) makes one; a strategy's ``hpo.Recorder`` finds it among the callbacks and
    writes the state whenever the strategy calls ``rec.checkpoint(...)`` (once per epoch in
    every built-in strategy), and once before the first epoch, so that a resumed run logs into
    the same MLflow run even when the first epoch never ended.

    Args:
        directory: Where the files go; created when missing (its parent must exist).
        resume: Load the state found in ``directory`` when the run starts. Without a
            checkpoint there the run starts afresh.
        identity: What the run is (strategy, task, budget) as plain data; a resumed run
            must have the same (``hpo.run`` fills it in).
        every: Write every that many epochs (and after the last one), >= 1.

    Example:
        >>> import tempfile, hpo
        >>> from strategies import Constant
        >>> task, folder = hpo.testing.boring_task(epochs=2), tempfile.mkdtemp()
        >>> h = hpo.run(task, Constant(lr=0.05), tracking=False, checkpoint_dir=folder)
        >>> sorted(os.listdir(folder))
        ['checkpoint.json', 'checkpoint.pt', 'history.json']
        >>> hpo.run(task, Constant(lr=0.05), tracking=False, checkpoint_dir=folder,
        ...         resume=True) == h  # nothing left to run: the stored History
        True
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        resume: bool = False,
        identity: dict[str, Any] | None = None,
        every: int = 1,
    ) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(
                f"Checkpoint.`directory` must be a path, but got directory={directory!r}."
            )
        check_range("Checkpoint", "every", every, 1, integer=True)
        self.directory = Path(directory)
        self.resume = bool(resume)
        self.identity = _plain(identity or {})
        self.every = every
        self.saved_epoch: int | None = None
        self.mlflow_run_ids: list[str] = []
        self._verified = False

    # ---------------------------------------------------------------- files

    @property
    def state_path(self) -> Path:
        """``<directory>/checkpoint.pt``."""
        return self.directory / STATE_FILE

    @property
    def meta_path(self) -> Path:
        """``<directory>/checkpoint.json``."""
        return self.directory / META_FILE

    @property
    def history_path(self) -> Path:
        """``<directory>/history.json`` (written when the run ends)."""
        return self.directory / HISTORY_FILE

    def meta(self) -> dict[str, Any] | None:
        """The contents of ``checkpoint.json``, or ``None`` when there is no checkpoint.

        Raises:
            ValueError: The file is not a checkpoint's (unreadable JSON, a newer format).
        """
        if not self.meta_path.exists():
            return None
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{self.meta_path} is not a readable checkpoint file: {err}") from err
        if not isinstance(meta, dict) or meta.get("format", 0) > FORMAT:
            raise ValueError(
                f"{self.meta_path} was written by a newer hpo (format "
                f"{meta.get('format') if isinstance(meta, dict) else '?'}; this one reads "
                f"format {FORMAT})."
            )
        return meta

    def check_identity(self) -> None:
        """Raise unless the checkpoint in ``directory`` is of the run ``identity`` describes.

        Raises:
            ValueError: Another strategy, config, task or budget; each difference is named.
        """
        meta = self.meta()
        if meta is None:
            return
        saved = meta.get("identity", {})
        if isinstance(saved, dict) and saved.get("strategy") != self.identity.get("strategy"):
            saved, now = (
                {"strategy": saved.get("strategy")},
                {"strategy": self.identity.get("strategy")},
            )
        else:
            now = self.identity
        diffs = _differences(saved, now)
        if not diffs:
            return
        raise ValueError(
            f"The checkpoint in {self.directory} is of another run: "
            + "; ".join(diffs[:6])
            + (f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else "")
            + ". Resume with the same options, or use another checkpoint directory."
        )

    def load(self) -> dict[str, Any] | None:
        """The saved state (tensors on the CPU), or ``None`` when there is none.

        Raises:
            ValueError: The file cannot be read as a checkpoint.
        """
        import torch

        if not self.state_path.exists():
            return None
        try:
            state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        except Exception as err:  # unpickling errors come as several types
            text = str(err)
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            if found:
                raise TypeError(
                    f"{self.state_path} holds a {found.group(1)}, which "
                    "torch.load(weights_only=True) does not read: a checkpoint's state must be "
                    "tensors and plain Python values (numbers, strings, lists, dicts...)."
                ) from err
            raise ValueError(
                f"{self.state_path} cannot be read as a checkpoint ({type(err).__name__}: "
                f"{text.splitlines()[0] if text else ''})."
            ) from err
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{self.state_path} is not a checkpoint of format {FORMAT}.")
        return state

    def save(self, state: dict[str, Any], *, epoch: int, status: str = "running") -> None:
        """Write ``state`` (atomically) and the metadata beside it."""
        from trainers import atomic_save

        self.directory.mkdir(exist_ok=True)
        state = {"format": FORMAT, **state}
        atomic_save(state, self.state_path)
        if not self._verified:  # a state that cannot be read back must fail now, not at resume
            self.load()
            self._verified = state.get("strategy") is not None
        self.saved_epoch = epoch
        self.mlflow_run_ids = [
            str(cb["run_id"])
            for cb in state.get("callbacks", {}).values()
            if isinstance(cb, dict) and "run_id" in cb
        ]
        self._write_meta(epoch=epoch, status=status)

    def _write_meta(self, *, epoch: int, status: str, **more: Any) -> None:
        meta = {
            "format": FORMAT,
            "identity": self.identity,
            "epoch": epoch,
            "status": status,
            "mlflow_run_ids": self.mlflow_run_ids,
            "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **more,
        }
        _atomic_text(self.meta_path, json.dumps(meta, indent=1, default=str))

    # ---------------------------------------------------------------- hooks

    def on_run_end(self, history: History) -> None:
        """Store the final History and the run's status beside the state."""
        self.directory.mkdir(exist_ok=True)
        _atomic_text(self.history_path, history.to_json(indent=1))
        self._write_meta(
            epoch=history.epochs if self.saved_epoch is None else self.saved_epoch,
            status=history.status,
            epochs=history.epochs,
        )


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists; NaN kept)."""
    return json.loads(json.dumps(value, default=str))


def _differences(saved: Any, now: Any, prefix: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(now, dict):
        out: list[str] = []
        for key in sorted(set(saved) | set(now), key=str):
            name = f"{prefix}{key}"
            if key not in saved:
                out.append(f"{name}={now[key]!r} (not in the checkpoint)")
            elif key not in now:
                out.append(f"{name} missing (the checkpoint has {saved[key]!r})")
            else:
                out += _differences(saved[key], now[key], f"{name}.")
        return out
    same = saved == now or (
        isinstance(saved, float)
        and isinstance(now, float)
        and math.isnan(saved)
        and math.isnan(now)
    )
    return [] if same else [f"{prefix.rstrip('.')}={now!r} (the checkpoint has {saved!r})"]
