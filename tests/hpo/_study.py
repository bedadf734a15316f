"""``study_process``: an ``hpo study`` command in a child process (the shared-study tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def study_process(storage: str, name: str, tracking_uri: str, cwd: Path) -> subprocess.Popen:
    """Start ``hpo study`` for two 1-epoch trials of ``constant`` on ``storage``'s study
    ``name``, logging to ``tracking_uri``; stdout and stderr are piped (text)."""
    cmd = [
        sys.executable,
        "-m",
        "hpo",
        "study",
        "--strategy",
        "constant",
        "--n-trials",
        "2",
        "--storage",
        storage,
        "--study-name",
        name,
        "--epochs",
        "1",
        "--train-size",
        "300",
        "--device",
        "cpu",
        "--pruner",
        "none",
        "--tracking-uri",
        tracking_uri,
    ]
    return subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def ended_normally(trial: object) -> bool:
    """A trial that completed, or was pruned because its run diverged (the drawn lr may be too
    large for Adam: an exploding loss is pruned, never a crash)."""
    import optuna

    state = trial.state  # type: ignore[attr-defined]
    return state == optuna.trial.TrialState.COMPLETE or (
        state == optuna.trial.TrialState.PRUNED and trial.user_attrs.get("diverged") is True  # type: ignore[attr-defined]
    )
