from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Sequence

import mlflow
import optuna
import pytest
from mlflow import MlflowClient

import hpo
from strategies import Constant


class CrashAt(hpo.BaseStrategy):
    """A strategy that trains normally and raises at a given epoch."""

    name = "crash-at"
    config_class = dict  # unused: built by hand below

    def __init__(self, epoch: int) -> None:
        self.config = None
        self.epoch = epoch

    def run(self, trainer, budget, *, callbacks: Sequence[hpo.Callback] = ()):
        with hpo.Recorder(self, trainer, budget, callbacks) as rec:
            while not rec.done:
                if rec.history.epochs + 1 == self.epoch:
                    raise RuntimeError("boom")
                rec.end_epoch(trainer.train_epoch(0.01))
        return rec.history


class PruneAt(hpo.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, history, record):
        if record.epoch == self.epoch:
            raise optuna.TrialPruned()


def runs_in(client: MlflowClient, experiment: str = "hpo") -> list:
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=10_000)


def test_run_logs_params_metrics_per_epoch_and_artifacts(tracking_uri, tmp_path):
    client = MlflowClient(tracking_uri)
    cb = hpo.MLflowCallback(tracking_uri=tracking_uri, run_name="finished-run")
    history = hpo.run(hpo.testing.boring_task(), Constant(lr=0.01), tracking=cb)
    run = client.get_run(cb.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["hpo.status"] == "finished"
    assert run.data.params["dataset"] == "mnist1d" and run.data.params["strategy.lr"] == "0.01"
    assert run.data.params["model_parameters"] == "5210"
    vals = client.get_metric_history(cb.run_id, "val_acc")
    assert [m.step for m in sorted(vals, key=lambda m: m.step)] == [1, 2, 3]
    assert [m.value for m in sorted(vals, key=lambda m: m.step)] == history.column("val_acc")
    for key in ("lr", "train_loss", "train_acc", "val_loss"):
        assert len(client.get_metric_history(cb.run_id, key)) == 3
    assert run.data.metrics["test_acc"] == history.test_score
    files = {f.path for f in client.list_artifacts(cb.run_id)}
    assert {"history.json", "plots"} <= files
    local = client.download_artifacts(cb.run_id, "history.json", str(tmp_path))
    with open(local) as f:
        assert hpo.History.from_json(f.read()) == history
    assert [f.path for f in client.list_artifacts(cb.run_id, "plots")] == ["plots/history.png"]


def test_a_crashing_run_is_failed_in_mlflow_with_its_metrics_kept(tracking_uri):
    client = MlflowClient(tracking_uri)
    cb = hpo.MLflowCallback(tracking_uri=tracking_uri, run_name="crash")
    with pytest.raises(RuntimeError, match="boom"):
        hpo.run(hpo.testing.boring_task(), CrashAt(3), tracking=cb)
    run = client.get_run(cb.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["hpo.status"] == "failed" and "boom" in run.data.tags["hpo.error"]
    assert sorted(m.step for m in client.get_metric_history(cb.run_id, "val_acc")) == [1, 2]
    assert "history.json" in {f.path for f in client.list_artifacts(cb.run_id)}


@pytest.mark.parametrize(
    ("optimizer", "lr", "reason"),
    [
        pytest.param("sgd", 1e8, "non-finite loss", id="non-finite"),
        # the issue: Adam at lr 1e6 (train loss ~1e27, accuracy at chance) ended FINISHED
        pytest.param("adam", 1e6, "exploded", id="finite-explosion"),
    ],
)
def test_a_diverging_run_returns_a_diverged_history_and_a_failed_mlflow_run(
    tracking_uri, optimizer, lr, reason
):
    client = MlflowClient(tracking_uri)
    cb = hpo.MLflowCallback(tracking_uri=tracking_uri, run_name="diverge")
    task = hpo.testing.boring_task(optimizer=optimizer, epochs=5)
    history = hpo.run(task, Constant(lr=lr), tracking=cb)  # does not raise
    assert history.status == "diverged" and history.diverged_epoch == 1
    assert reason in history.diverged_reason
    assert history.epochs == 1, "training stops at the divergence"
    assert history.best_epoch is None and math.isnan(history.test_score)
    run = client.get_run(cb.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["hpo.status"] == "diverged" and run.data.tags["hpo.diverged_epoch"] == "1"
    assert reason in run.data.tags["hpo.diverged_reason"]


def test_pruning_from_a_callback_ends_the_run_as_killed(tracking_uri):
    client = MlflowClient(tracking_uri)
    cb = hpo.MLflowCallback(tracking_uri=tracking_uri, run_name="pruned")
    with pytest.raises(optuna.TrialPruned):
        hpo.run(hpo.testing.boring_task(), Constant(lr=0.01), tracking=cb, callbacks=[PruneAt(2)])
    run = client.get_run(cb.run_id)
    assert run.info.status == "KILLED" and run.data.tags["hpo.status"] == "pruned"
    assert len(client.get_metric_history(cb.run_id, "val_acc")) == 2


def test_runs_nest_under_an_active_fluent_run(tracking_uri):
    # the fluent API reads MLFLOW_TRACKING_URI, which the session fixture set
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("nesting") or client.get_experiment(
        client.create_experiment("nesting")
    )
    with mlflow.start_run(experiment_id=exp.experiment_id) as parent:
        cb = hpo.MLflowCallback(tracking_uri=tracking_uri, experiment="nesting")
        hpo.run(hpo.testing.boring_task(epochs=1), Constant(lr=0.01), tracking=cb)
    child = MlflowClient(tracking_uri).get_run(cb.run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_tracking_true_uses_the_environment_uri_and_false_logs_nothing(tracking_uri):
    assert os.environ["MLFLOW_TRACKING_URI"] == tracking_uri
    client = MlflowClient(tracking_uri)
    before = len(runs_in(client))
    hpo.run(hpo.testing.boring_task(epochs=1), Constant(lr=0.01), tracking=False)
    assert len(runs_in(client)) == before
    hpo.run(hpo.testing.boring_task(epochs=1), Constant(lr=0.01))
    assert len(runs_in(client)) == before + 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"task": "mnist1d"}, "`task` must be an hpo.Task", id="task"),
        pytest.param(
            {"strategy": object()}, "`strategy` must implement hpo.Strategy", id="strategy"
        ),
        pytest.param({"tracking": 3}, "`tracking` must be True, False", id="tracking"),
    ],
)
def test_run_rejects_bad_arguments(kwargs, match):
    args = {"task": hpo.testing.boring_task(), "strategy": Constant(lr=0.1), "tracking": False}
    args.update(kwargs)
    task, strategy = args.pop("task"), args.pop("strategy")
    with pytest.raises(TypeError, match=match):
        hpo.run(task, strategy, **args)


# ---------------------------------------------------------------------------------------------
# A real MLflow tracking server on 127.0.0.1, queried over its REST API
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("mlflow server exited at start-up")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def _rest(url: str, path: str, **query: str) -> dict:
    with urllib.request.urlopen(
        f"{url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
    ) as r:
        return json.loads(r.read())


def test_end_to_end_with_a_real_mlflow_server(mlflow_server):
    cb = hpo.MLflowCallback(tracking_uri=mlflow_server, experiment="server-e2e")
    history = hpo.run(hpo.testing.boring_task(), Constant(lr=0.01), tracking=cb)
    run = _rest(mlflow_server, "runs/get", run_id=cb.run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["strategy.lr"] == "0.01" and params["model"] == "cnn"
    metrics = _rest(mlflow_server, "metrics/get-history", run_id=cb.run_id, metric_key="val_acc")
    values = [m["value"] for m in sorted(metrics["metrics"], key=lambda m: m["step"])]
    assert values == pytest.approx(history.column("val_acc"))
    artifacts = _rest(mlflow_server, "artifacts/list", run_id=cb.run_id)
    assert "history.json" in {f["path"] for f in artifacts.get("files", [])}


# =============================================================================================
# What MLflow shows is what ran
# =============================================================================================


def test_mlflow_params_hold_the_values_that_ran(tmp_path):
    """The default lr as a number (not None), the device as resolved (not auto), and the lr range
    Hyperdyn derived from the optimizer's lr."""
    from trainers import DEFAULT_LRS

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    task = hpo.testing.boring_task(epochs=1, device="auto")
    hpo.run(task, Constant(), tracking=tracking_uri)
    hpo.run(task, hpo_strategies().Hyperdyn(n_random_start=2), tracking=tracking_uri)
    runs = {r.data.tags["hpo.strategy"]: r for r in runs_in(MlflowClient(tracking_uri))}
    constant, hyperdyn = runs["constant"].data.params, runs["hyperdyn"].data.params
    assert float(constant["strategy.lr"]) == DEFAULT_LRS["adam"]
    assert constant["device"] == "cpu"
    assert float(hyperdyn["strategy.lr_min"]) == pytest.approx(DEFAULT_LRS["adam"] * 0.01)
    assert float(hyperdyn["strategy.lr_max"]) == pytest.approx(DEFAULT_LRS["adam"] * 10)


def hpo_strategies():
    import strategies

    return strategies


def test_two_comparisons_are_told_apart_by_their_parent_runs_names(tmp_path):
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    task = hpo.testing.boring_task(epochs=1)
    hpo.compare(task, {"constant": Constant(lr=0.05)}, seeds=1, tracking=tracking_uri)
    hpo.compare(task, {"fast": Constant(lr=0.2)}, seeds=1, tracking=tracking_uri)
    hpo.compare(
        task, {"c": Constant(lr=0.05)}, seeds=1, tracking=tracking_uri, run_name="my comparison"
    )
    parents = [
        r
        for r in runs_in(MlflowClient(tracking_uri))
        if r.data.tags.get("hpo.role") == "comparison"
    ]
    names = sorted(r.info.run_name for r in parents)
    assert len(names) == 3 and len(set(names)) == 3
    assert "my comparison" in names
    assert any(n.startswith("compare constant on mnist1d/cnn ") for n in names)
    assert any(n.startswith("compare fast on mnist1d/cnn ") for n in names)
    for r in parents:
        assert r.data.params["device"] == "cpu"


def test_a_study_names_its_value(tmp_path):
    study = optuna.create_study(direction="maximize")
    obj = hpo.objective(hpo.testing.boring_task(epochs=1), Constant.suggest, tracking=False)
    study.optimize(obj, n_trials=1)
    assert study.metric_names == ["val_acc"]
    named = optuna.create_study(direction="minimize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        named.set_metric_names(["mine"])
    hpo.objective(hpo.testing.boring_task(epochs=1), Constant.suggest, "val_loss", tracking=False)(
        named.ask()
    )
    assert named.metric_names == ["mine"]  # a name the user set is kept


def test_no_lock_file_is_left_beside_the_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpo",
            "run",
            "--strategy",
            "constant",
            "--epochs",
            "1",
            "--train-size",
            "200",
            "--device",
            "cpu",
            "--tracking-uri",
            "sqlite:///mlflow.db",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "mlflow.db" in os.listdir(tmp_path)
    left = [p for p in tmp_path.rglob("*") if p.name.endswith((".lock", ".tmp"))]
    assert not left, left
