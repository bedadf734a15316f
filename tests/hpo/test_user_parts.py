"""A user's own model, data, loss and metric through every entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import optuna
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

import hpo
from hpo._cli import main
from strategies import PBT, Constant, Schedule

USER_MODULE = """
import torch
from torch import nn

import hpo


def make_model(hidden=16):
    return nn.Sequential(nn.Flatten(), nn.Linear(6, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def make_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return {"train": (x[:300], y[:300]), "val": (x[300:350], y[300:350]),
            "test": (x[350:], y[350:])}


def make_task():
    return hpo.Task(model="usermod:make_model", data="usermod:make_data", epochs=2,
                    batch_size=50, device="cpu")


def regression_task():
    return hpo.testing.regression_task(epochs=1)


def not_a_task():
    return 42
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``usermod``, a module of the user's own parts, importable in this process and in
    child processes (PYTHONPATH)."""
    (tmp_path / "usermod.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    sys.modules.pop("usermod", None)
    yield tmp_path
    sys.modules.pop("usermod", None)


def test_a_users_module_runs_compares_and_optimizes(user_module):
    import usermod

    task = usermod.make_task()
    history = hpo.run(task, Constant(lr=0.01), tracking=False)
    assert history.status == "finished" and history.metric == "acc"
    assert history.task["model"] == "usermod:make_model"
    table = hpo.compare(task, {"c": Constant(lr=0.01), "s": Schedule()}, seeds=2, tracking=False)
    assert list(table.index) == ["c", "s"] and "best_val_acc_mean" in table.columns
    study = optuna.create_study(direction="maximize")
    study.optimize(hpo.objective(task, Constant.suggest, tracking=False), n_trials=2)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_tensors_and_a_factory_in_hand():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 4, generator=g), torch.randint(0, 2, (300,), generator=g)
    task = hpo.Task(model=lambda: nn.Linear(4, 2), data={"train": (x, y)}, epochs=2, device="cpu")
    history = hpo.run(task, Constant(lr=0.05), tracking=False)
    assert history.status == "finished"
    assert history.task["model"].startswith("<") and history.task["data"] == "<dict>"
    assert history.test_score != history.test_score  # no test split: NaN


def test_a_model_factory_is_seeded_per_run():
    task = hpo.testing.regression_task()
    a, b = task.build_trainer(), task.build_trainer()
    c = task.build_trainer(seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert not torch.equal(next(a.model.parameters()), next(c.model.parameters()))


def test_a_regression_task_minimises_its_metric_everywhere():
    task = hpo.testing.regression_task(epochs=4)
    table = hpo.compare(task, {"pbt": PBT(population=3, interval=1)}, seeds=1, tracking=False)
    assert table.attrs["metric"] == "mse" and table.attrs["maximize"] is False
    history = table.attrs["histories"]["pbt"][0]
    assert history.best.val_score == min(history.column("val_mse"))
    study = optuna.create_study(direction="maximize")
    with pytest.raises(ValueError, match="should be minimized"):
        study.optimize(hpo.objective(task, Constant.suggest, tracking=False), n_trials=1)


def test_a_task_of_import_paths_round_trips_through_its_params():
    task = hpo.testing.regression_task(model_options={"hidden": 8})
    assert task.serializable
    again = hpo.Task.from_params(task.to_params())
    assert again == task
    assert again.build_trainer().model[0].out_features == 8
    with pytest.raises(ValueError, match="give an import path"):
        hpo.Task.from_params(hpo.Task(model=lambda: nn.Linear(1, 1)).to_params())


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        pytest.param({"model": nn.Linear(2, 2)}, TypeError, r"`model`.*instance", id="instance"),
        pytest.param({"model": 42}, TypeError, r"Task.`model` must be a name", id="model-type"),
        pytest.param({"model": "nope"}, ValueError, r"Task.`model` must be one of", id="name"),
        pytest.param(
            {"model": "nomodule:f"}, ValueError, r"Task.`model`: cannot import", id="mod"
        ),
        pytest.param({"model": "hpo:nothing"}, ValueError, r"`model`: 'hpo' has no", id="attr"),
        pytest.param({"model": "hpo:"}, ValueError, r"'package.module:function'", id="path"),
        pytest.param({"data": "hpo:nothing"}, ValueError, r"Task.`data`", id="data-path"),
        pytest.param({"loss": "huber"}, ValueError, r"Task.`loss` must be one of", id="loss"),
        pytest.param({"loss": lambda o: o}, TypeError, r"`loss` must take", id="loss-arity"),
        pytest.param({"metric": "f1"}, ValueError, r"Task.`metric` must be one of", id="metric"),
        pytest.param(
            {"metric": lambda o, t: 0.0}, ValueError, r"needs a `direction`", id="metric-dir"
        ),
        pytest.param({"direction": "up"}, ValueError, r"`direction`", id="direction"),
        pytest.param({"augment": "blur"}, ValueError, r"Task.`augment`", id="augment"),
        pytest.param({"num_workers": -1}, ValueError, r"Task.`num_workers`", id="workers"),
    ],
)
def test_bad_parts_are_named_when_the_task_is_made(fields, error, match):
    with pytest.raises(error, match=match):
        hpo.Task(**fields)


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        pytest.param({"data": 42}, TypeError, r"`data` must be DataSplits", id="data"),
        pytest.param({"data": {"val": None}}, ValueError, r"needs 'train'", id="no-train"),
        pytest.param(
            {"data": "hpo.testing._tasks:regression_data", "metric": "accuracy"},
            ValueError,
            r"Task.`metric` 'accuracy' needs class labels",
            id="acc-on-regression",
        ),
        pytest.param(
            {"data": "hpo.testing._tasks:regression_data", "model": lambda: 3},
            TypeError,
            r"Task.`model` must build an nn.Module",
            id="factory-returns",
        ),
    ],
)
def test_bad_parts_found_with_the_data_stop_a_run_before_it_trains(fields, error, match):
    with pytest.raises(error, match=match):
        hpo.run(hpo.Task(device="cpu", **fields), Constant(), tracking=False)


def test_the_command_takes_a_task_from_an_import_path(user_module, capsys):
    code = main(
        ["run", "--task", "usermod:make_task", "--epochs", "1", "--no-tracking", "--quiet"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "usermod:make_data/usermod:make_model" in out
    code = main(["run", "--task", "usermod:regression_task", "--no-tracking", "--quiet"])
    assert code == 0 and "val mse" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--task", "usermod:not_a_task"], "must return an hpo.Task", id="returns"),
        pytest.param(["--task", "usermod:missing"], "has no attribute", id="missing"),
        pytest.param(["--task", "usermod"], "'package.module:function'", id="path"),
        pytest.param(["--metric", "f1"], "Task.`metric` must be one of", id="metric"),
    ],
)
def test_a_bad_task_on_the_command_line_is_one_line(user_module, capsys, argv, message):
    code = main(["run", *argv, "--no-tracking", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_two_study_processes_rebuild_the_task_from_its_import_path(user_module):
    storage = f"sqlite:///{user_module / 'study.db'}"
    uri = f"sqlite:///{user_module / 'mlflow.db'}"
    cmd = [
        sys.executable, "-m", "hpo", "study", "--task", "usermod:regression_task",
        "--strategy", "constant", "--n-trials", "2", "--storage", storage,
        "--study-name", "user", "--pruner", "none", "--tracking-uri", uri,
    ]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, cwd=user_module, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="user", storage=storage)
    assert len(study.trials) == 4
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # val_mse
    assert study.user_attrs["task"]["data"] == "hpo.testing._tasks:regression_data"
    rebuilt = hpo.Task.from_params(study.user_attrs["task"])
    assert rebuilt.metric == "mse" and rebuilt.epochs == 1
    parent = study.user_attrs["mlflow_parent_run_id"]
    client = MlflowClient(uri)
    children = client.search_runs(
        [client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert len(children) == 4 and all("val_mse" in c.data.metrics for c in children)


def test_flags_are_generated_for_every_task_field():
    import dataclasses

    from hpo._flags import field_docs

    docs = field_docs(hpo.Task)
    assert {f.name for f in dataclasses.fields(hpo.Task)} <= set(docs)
    text = subprocess.run(
        [sys.executable, "-m", "hpo", "run", "--help"], capture_output=True, text=True
    ).stdout
    for flag in ("--momentum", "--val-fraction", "--model-option", "--loss", "--metric",
                 "--augment", "--streaming", "--task", "--schedule.kind"):  # fmt: skip
        assert flag in text, flag


def test_a_users_bench_task():
    result = hpo.bench(
        [hpo.BenchTask("regression", hpo.testing.regression_task(), "a user's task")],
        ["constant", "sgd-sa"],
        seeds=1,
        epochs=2,
        device="cpu",
        tracking=False,
    )
    assert result.tables["regression"].attrs["metric"] == "mse"
    assert result.scores["normalized"].between(0, 1).all()
    assert result.rewards["regression"] == "a user's task"
