from __future__ import annotations

import math

import optuna
import pytest
from mlflow import MlflowClient

import hpo
from strategies import Constant
from tests.hpo._study import ended_normally, study_process

optuna.logging.set_verbosity(optuna.logging.WARNING)


def lr_factory(trial: optuna.Trial) -> Constant:
    return Constant(lr=trial.suggest_float("lr", 1e-8, 1e9, log=True))


def enqueue(study: optuna.Study, lrs: list[float]) -> None:
    for lr in lrs:
        study.enqueue_trial({"lr": lr})


@pytest.mark.parametrize(
    "pruner",
    [
        pytest.param(
            optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0), id="median"
        ),
        pytest.param(optuna.pruners.PercentilePruner(50.0, n_startup_trials=2), id="percentile"),
        pytest.param(optuna.pruners.ThresholdPruner(lower=0.2), id="threshold"),
        pytest.param(
            optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2), id="sha"
        ),
    ],
)
def test_an_optuna_pruner_prunes_a_poor_trial(boring_data, pruner):
    study = optuna.create_study(direction="maximize", pruner=pruner)
    enqueue(study, [0.02, 0.01, 1e-7])  # the last barely learns: stuck near chance
    obj = hpo.objective(
        hpo.testing.boring_task(epochs=3), lr_factory, tracking=False, data=boring_data
    )
    study.optimize(obj, n_trials=3)
    states = [t.state for t in study.trials]
    assert states[-1] == optuna.trial.TrialState.PRUNED
    assert len(study.trials[-1].intermediate_values) < 3  # stopped before the last epoch
    assert study.best_trial.number in (0, 1)


@pytest.mark.parametrize(
    ("optimizer", "lr", "reason"),
    [
        pytest.param("sgd", 1e8, "non-finite loss", id="non-finite"),
        # a finite loss that explodes (the issue: Adam at lr 1e6 ended COMPLETE)
        pytest.param("adam", 1e6, "exploded", id="finite-explosion"),
    ],
)
def test_a_diverging_trial_is_pruned_marked_and_the_study_goes_on(
    boring_data, optimizer, lr, reason
):
    study = optuna.create_study(direction="maximize")
    enqueue(study, [lr, 0.05 if optimizer == "sgd" else 0.01])
    task = hpo.testing.boring_task(epochs=2, optimizer=optimizer)
    obj = hpo.objective(task, lr_factory, tracking=False, data=boring_data)
    study.optimize(obj, n_trials=2)  # does not raise
    diverged, fine = study.trials
    assert diverged.state == optuna.trial.TrialState.PRUNED
    attrs = diverged.user_attrs
    assert attrs["diverged"] is True and attrs["diverged_epoch"] == 1
    assert reason in attrs["diverged_reason"]
    assert fine.state == optuna.trial.TrialState.COMPLETE
    assert study.best_trial.number == 1


def test_the_value_is_the_best_or_the_final_epoch(boring_data):
    task = hpo.testing.boring_task(epochs=3)
    values = {}
    for summary in ("best", "final"):
        study = optuna.create_study(direction="maximize")
        enqueue(study, [0.05])
        study.optimize(
            hpo.objective(task, lr_factory, summary=summary, tracking=False, data=boring_data),
            n_trials=1,
        )
        values[summary] = study.trials[0]
    reported = list(values["best"].intermediate_values.values())
    assert values["best"].value == max(reported)
    assert values["final"].value == reported[-1]


def test_loss_metrics_need_a_minimizing_study(boring_data):
    study = optuna.create_study(direction="maximize")
    obj = hpo.objective(hpo.testing.boring_task(), lr_factory, "val_loss", tracking=False)
    with pytest.raises(ValueError, match="'val_loss' should be minimized.*direction='minimize'"):
        study.optimize(obj, n_trials=1)
    study = optuna.create_study(direction="minimize")
    enqueue(study, [0.02])
    study.optimize(
        hpo.objective(
            hpo.testing.boring_task(), lr_factory, "val_loss", tracking=False, data=boring_data
        ),
        n_trials=1,
    )
    assert math.isfinite(study.best_value)


def test_threads_share_one_study(boring_data):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    obj = hpo.objective(
        hpo.testing.boring_task(epochs=1), Constant.suggest, tracking=False, data=boring_data
    )
    study.optimize(obj, n_trials=4, n_jobs=2)
    assert len(study.trials) == 4


def test_trials_are_mlflow_children_of_the_study_run(tracking_uri, boring_data):
    study = optuna.create_study(
        direction="maximize", study_name="nested-study", sampler=optuna.samplers.RandomSampler(0)
    )
    enqueue(study, [0.02, 1e-7])
    with hpo.objective(
        hpo.testing.boring_task(epochs=2),
        lr_factory,
        tracking=tracking_uri,
        experiment="optuna-nesting",
        data=boring_data,
    ) as obj:
        study.optimize(obj, n_trials=2)
    client = MlflowClient(tracking_uri)
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    # whoever finds a dead worker's trial closes its MLflow run there (test_recovery.py)
    assert study.user_attrs["mlflow_tracking_uri"] == tracking_uri
    parent = client.get_run(parent_id)
    assert parent.info.run_name == "nested-study" and parent.info.status == "FINISHED"
    assert parent.data.tags["hpo.role"] == "study"
    assert (
        parent.data.params["sampler"] == "RandomSampler"
        and parent.data.params["value_metric"] == "val_acc"
    )
    exp = client.get_experiment_by_name("optuna-nesting")
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert {r.info.run_id for r in children} == {
        t.user_attrs["mlflow_run_id"] for t in study.trials
    }
    for trial in study.trials:
        child = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert child.info.run_name == f"trial {trial.number}"
        assert float(child.data.params["trial.lr"]) == pytest.approx(trial.params["lr"])
        history = client.get_metric_history(child.info.run_id, "val_acc")
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == list(
            trial.intermediate_values.values()
        )


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_processes_share_one_study(tmp_path, kind):
    storage = (
        f"sqlite:///{tmp_path / 'study.db'}"
        if kind == "sqlite"
        else f"journal:{tmp_path / 'study.log'}"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    procs = [study_process(storage, "shared", uri, tmp_path) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=hpo._optuna.make_storage(storage))
    assert len(study.trials) == 4
    assert len({t.number for t in study.trials}) == 4
    assert all(ended_normally(t) for t in study.trials)
    # both processes nested their trials under the one parent run stored in the study
    parent = study.user_attrs["mlflow_parent_run_id"]
    client = MlflowClient(uri)
    parents = {
        client.get_run(t.user_attrs["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
        for t in study.trials
    }
    assert parents == {parent}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"task": "mnist1d"}, TypeError, "`task` must be an hpo.Task", id="task"),
        pytest.param(
            {"strategy_factory": 3},
            TypeError,
            "`strategy_factory` must be a callable",
            id="factory",
        ),
        pytest.param(
            {"summary": "mean"},
            ValueError,
            r"`summary` must be one of \{'best', 'final'\}",
            id="summary",
        ),
        pytest.param(
            {"tracking": 1.5}, TypeError, "`tracking` must be True, False or a URI", id="tracking"
        ),
    ],
)
def test_objective_rejects_bad_arguments(kwargs, error, match):
    args = {"task": hpo.testing.boring_task(), "strategy_factory": lr_factory, **kwargs}
    with pytest.raises(error, match=match):
        hpo.objective(args.pop("task"), args.pop("strategy_factory"), **args)


def test_make_storage_names_the_schemes():
    with pytest.raises(
        ValueError,
        match=r"'redis://localhost' has the scheme 'redis'; use one of sqlite:///PATH.*journal:PATH",
    ):
        hpo._optuna.make_storage("redis://localhost")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param("sqlite:///mlflow.db", "sqlite:///{cwd}/mlflow.db", id="relative"),
        pytest.param("sqlite:////abs/m.db", "sqlite:////abs/m.db", id="absolute"),
        pytest.param("http://127.0.0.1:5000", "http://127.0.0.1:5000", id="server"),
    ],
)
def test_the_study_keeps_a_tracking_uri_other_workers_can_reach(
    tmp_path, monkeypatch, uri, expected
):
    monkeypatch.chdir(tmp_path)
    assert hpo._optuna._portable_uri(uri) == expected.format(cwd=tmp_path)
