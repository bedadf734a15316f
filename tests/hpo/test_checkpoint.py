"""Checkpoints and resume: ``hpo run --checkpoint-dir DIR --resume`` after ``kill -9``, and
``hpo.run(..., checkpoint_dir=..., resume=True)``.

Every strategy's own resume test is in ``hpo.testing.StrategyTestSuite``
(``test_resumed_run_ends_as_an_uninterrupted_one``); here the whole path is checked with real
processes killed by SIGKILL and a real MLflow store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import hpo
from hpo._checkpoint import Checkpoint
from strategies import PBT, Constant, Hyperdyn, Schedule

#: ``hpo run`` flags of the killed runs: long enough to be killed after a checkpoint and
#: before the end, short enough for the suite.
KILLED = {
    "constant": ["--strategy", "constant", "--epochs", "10", "--train-size", "2000"],
    "hyperdyn": [
        "--strategy",
        "hyperdyn",
        "--epochs",
        "6",
        "--train-size",
        "800",
        "--hyperdyn.n-random-start",
        "2",
        "--hyperdyn.num-restarts",
        "2",
        "--hyperdyn.raw-samples",
        "32",
    ],
    "pbt": [
        "--strategy",
        "pbt",
        "--epochs",
        "6",
        "--train-size",
        "800",
        "--pbt.population",
        "3",
        "--pbt.interval",
        "1",
    ],
    "sgd-sa": [
        "--strategy",
        "sgd-sa",
        "--epochs",
        "6",
        "--train-size",
        "800",
        "--optimizer",
        "sgd",
    ],
}


def _hpo_run(flags: list[str], folder: Path, db: Path, *more: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "hpo",
        "run",
        *flags,
        "--device",
        "cpu",
        "--quiet",
        "--tracking-uri",
        f"sqlite:///{db}",
        "--checkpoint-dir",
        str(folder),
        *more,
    ]
    return subprocess.Popen(
        cmd, cwd=db.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return None


def _timeless(history: dict) -> str:
    for record in history["records"]:
        record["wall_time"] = 0.0
        record["metrics"] = {
            k: v for k, v in record["metrics"].items() if not k.endswith("_seconds")
        }
    return json.dumps(history, sort_keys=True)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", weights_only=True)["trainer"]["model"]


@pytest.mark.parametrize("strategy", list(KILLED))
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(strategy, tmp_path):
    from mlflow import MlflowClient

    flags = KILLED[strategy]
    epochs = int(flags[flags.index("--epochs") + 1])
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole_db, cut_db = tmp_path / "whole.db", tmp_path / "cut.db"
    reference = _hpo_run(flags, whole, whole_db)
    victim = _hpo_run(flags, cut, cut_db)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        meta = _meta(cut)
        if meta is not None and meta["epoch"] >= 1 or victim.poll() is not None:
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = _meta(cut)
    assert killed_at is not None and killed_at["status"] == "running"
    assert 1 <= killed_at["epoch"] < epochs

    resumed = _hpo_run(flags, cut, cut_db, "--resume")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err

    a = json.loads((whole / "history.json").read_text())
    b = json.loads((cut / "history.json").read_text())
    assert b["status"] == "finished" and len(b["records"]) == epochs
    assert _timeless(b) == _timeless(a)
    wa, wb = _weights(whole), _weights(cut)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    # one MLflow run, resumed: finished, every epoch logged once
    client = MlflowClient(f"sqlite:///{cut_db}")
    runs = client.search_runs([client.get_experiment_by_name("hpo").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["hpo.resumed"] == "1"
    assert run.info.run_id in out
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
    assert steps == list(range(1, epochs + 1))
    assert _meta(cut)["mlflow_run_ids"] == [run.info.run_id]


# =============================================================================================
# The API
# =============================================================================================


class _Crash(hpo.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, history, record):
        if record.epoch == self.epoch:
            raise RuntimeError(f"crash at epoch {record.epoch}")


def test_a_failed_run_resumes_into_the_same_mlflow_run(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    task, strategy = hpo.testing.boring_task(epochs=4), Constant(lr=0.05)
    with pytest.raises(RuntimeError, match="crash at epoch 3"):
        hpo.run(task, strategy, tracking=uri, callbacks=[_Crash(3)], checkpoint_dir=tmp_path / "c")
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("hpo").experiment_id])
    assert run.info.status == "FAILED"
    history = hpo.run(task, strategy, tracking=uri, checkpoint_dir=tmp_path / "c", resume=True)
    assert history.status == "finished" and history.epochs == 4
    (again,) = client.search_runs([client.get_experiment_by_name("hpo").experiment_id])
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    # epoch 3 was logged before the crash and trained again: logged once
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
    assert steps == [1, 2, 3, 4]


def test_an_ended_run_is_not_run_again(tmp_path):
    task, strategy = hpo.testing.boring_task(epochs=2), Constant(lr=0.05)
    first = hpo.run(task, strategy, tracking=False, checkpoint_dir=tmp_path)
    stamp = (tmp_path / "checkpoint.pt").stat().st_mtime_ns
    again = hpo.run(task, strategy, tracking=False, checkpoint_dir=tmp_path, resume=True)
    assert again == first
    assert (tmp_path / "checkpoint.pt").stat().st_mtime_ns == stamp


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    task, strategy = hpo.testing.boring_task(epochs=2), Constant(lr=0.05)
    history = hpo.run(task, strategy, tracking=False, checkpoint_dir=tmp_path / "new", resume=True)
    assert history.status == "finished" and history.epochs == 2


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        pytest.param({"strategy": Constant(lr=0.1)}, "config.lr=0.1", id="config"),
        pytest.param({"strategy": Schedule(lr=0.05)}, "strategy='schedule'", id="strategy"),
        pytest.param({"task": {"seed": 3}}, "task.seed=3", id="task"),
        pytest.param({"budget": hpo.Budget(epochs=5)}, "budget.epochs=5", id="budget"),
    ],
)
def test_a_checkpoint_of_another_run_is_refused(tmp_path, changes, named):
    task, strategy = hpo.testing.boring_task(epochs=3), Constant(lr=0.05)
    with pytest.raises(RuntimeError):
        hpo.run(task, strategy, tracking=False, callbacks=[_Crash(2)], checkpoint_dir=tmp_path)
    other_task = task.replace(**changes.get("task", {}))
    with pytest.raises(ValueError, match="is of another run") as err:
        hpo.run(
            other_task,
            changes.get("strategy", strategy),
            budget=changes.get("budget"),
            tracking=False,
            checkpoint_dir=tmp_path,
            resume=True,
        )
    assert named in str(err.value)


def test_a_checkpoint_is_not_overwritten_without_resume(tmp_path):
    task, strategy = hpo.testing.boring_task(epochs=2), Constant(lr=0.05)
    hpo.run(task, strategy, tracking=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="already holds the checkpoint of a run"):
        hpo.run(task, strategy, tracking=False, checkpoint_dir=tmp_path)


def test_checkpoints_are_read_with_weights_only(tmp_path):
    """A checkpoint holding an object beyond tensors and plain values is refused on loading
    (``torch.load(weights_only=True)``), naming what it holds, and no code runs."""
    import fractions

    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "evil": fractions.Fraction(1, 3)}, path)
    with pytest.raises(TypeError, match="fractions.Fraction"):
        Checkpoint(tmp_path).load()


def test_a_strategy_state_that_cannot_be_read_back_fails_when_saved(tmp_path):
    import numpy as np

    class NumpyState(Constant):
        checkpointing = True

        def run(self, trainer, budget, *, callbacks=()):
            with hpo.Recorder(self, trainer, budget, callbacks) as rec:
                while not rec.done:
                    rec.end_epoch(trainer.train_epoch(0.05))
                    rec.checkpoint({"score": np.float64(1.0)})
            return rec.history

    with pytest.raises(TypeError, match="numpy"):
        hpo.run(hpo.testing.boring_task(), NumpyState(), tracking=False, checkpoint_dir=tmp_path)


def test_the_writes_are_atomic(tmp_path):
    """No temporary file is left behind, and the state on disk is always a whole one."""
    task = hpo.testing.boring_task(epochs=3)
    hpo.run(task, PBT(population=2, interval=1), tracking=False, checkpoint_dir=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "checkpoint.pt", "history.json"]
    state = Checkpoint(tmp_path).load()
    assert state is not None and len(state["strategy"]["members"]) == 1


def test_a_strategy_without_checkpoints_is_refused_up_front(tmp_path):
    class Plain(Constant):
        checkpointing = False

    with pytest.raises(ValueError, match="does not save its state"):
        hpo.run(hpo.testing.boring_task(), Plain(), tracking=False, checkpoint_dir=tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_checkpoints_change_nothing_in_a_run(tmp_path):
    task, strategy = hpo.testing.boring_task(epochs=3), Hyperdyn(n_random_start=2)
    plain = hpo.run(task, strategy, tracking=False)
    saved = hpo.run(task, strategy, tracking=False, checkpoint_dir=tmp_path)
    assert _timeless(plain.to_dict()) == _timeless(saved.to_dict())
