from __future__ import annotations

import math

import pandas as pd
import pytest
from mlflow import MlflowClient

import hpo
from strategies import Constant, RandomSearch
from tests.hpo._histories import history


def test_steps_to_target_counts_the_trajectory_or_the_spent_steps():
    h = history([0.5, 0.8, 0.9], cost=3)
    assert hpo.steps_to_target(h, 0.8) == 20 and hpo.steps_to_target(h, 0.8, spent=True) == 60
    assert hpo.steps_to_target(h, 0.5) == 10 and hpo.steps_to_target(h, 0.91) is None


def test_summarize_arithmetic_on_hand_made_histories():
    runs = {
        "base": [history([0.5, 0.8, 0.9]), history([0.6, 0.7, 0.8])],
        "fast": [history([0.9, 1.0, 1.0], cost=2), history([0.8, 0.9, 0.95], cost=2)],
    }
    df = hpo.summarize(runs, targets=(0.85, 0.9, 0.95))
    # best any run reached: 1.0, so the targets are 0.85, 0.90, 0.95 themselves
    assert df.attrs["targets"] == {0.85: 0.85, 0.9: 0.9, 0.95: 0.95}
    base, fast = df.loc["base"], df.loc["fast"]
    assert base["steps_to_85"] == 30 and base["reached_85"] == 1  # only the first run gets there
    assert fast["steps_to_85"] == pytest.approx((10 + 20) / 2) and fast["reached_85"] == 2
    assert fast["speedup_85"] == pytest.approx(30 / 15)
    assert fast["spent_to_85"] == pytest.approx((20 + 40) / 2)
    assert base["reached_95"] == 0 and math.isnan(base["steps_to_95"])
    assert math.isnan(fast["speedup_95"])  # the baseline never got there
    assert base["final_val_acc_mean"] == pytest.approx(0.85)
    assert base["final_val_acc_std"] == pytest.approx(pd.Series([0.9, 0.8]).std())
    assert fast["best_val_acc_mean"] == pytest.approx(0.975)
    assert base["best_val_loss_mean"] == pytest.approx(1 / 3)
    assert fast["cost"] == 2 and base["cost"] == 1 and fast["spent_steps_mean"] == 60


def test_summarize_counts_diverged_runs_but_leaves_their_scores_out():
    df = hpo.summarize({"a": [history([0.5]), history([0.4, math.nan], status="diverged")]})
    assert df.loc["a", "diverged"] == 1 and df.loc["a", "runs"] == 2
    assert df.loc["a", "best_val_acc_mean"] == pytest.approx(0.5)


def test_a_diverged_run_neither_sets_the_targets_nor_heads_the_table():
    # the case: a schedule that diverged on both seeds after reaching the highest
    # accuracy of all had the highest "best val" row and set the targets
    runs = {
        "constant": [history([0.5, 0.8, 0.85]), history([0.6, 0.8, 0.84])],
        "step": [
            history([0.9, 0.95, 0.1], status="diverged"),
            history([0.92, 0.1], status="diverged"),
        ],
    }
    df = hpo.summarize(runs)
    assert df.attrs["targets"][0.95] == pytest.approx(0.95 * 0.85)  # the sound runs' best
    assert math.isnan(df.loc["step", "best_val_acc_mean"])
    assert df.loc["step", "reached_85"] == 0
    text = hpo.format_table(df)
    step_line = next(line for line in text.splitlines() if line.startswith("step"))
    assert "[2 diverged]" in step_line and "95.0" not in step_line and "never" in step_line
    assert "(85.0%)" in text  # the best any sound run reached


def test_format_table_has_a_row_per_strategy():
    df = hpo.summarize({"a": [history([0.5, 0.9])], "b": [history([0.9, 0.95])]}, baseline="b")
    text = hpo.format_table(df)
    lines = text.splitlines()
    assert (
        lines[0].startswith("strategy") and lines[2].startswith("a ") and lines[3].startswith("b ")
    )
    assert "speed-ups against 'b'" in text and "never" in lines[2]


def test_compare_runs_every_strategy_and_seed_and_logs_parent_and_children(tracking_uri, tmp_path):
    lines: list[str] = []
    df = hpo.compare(
        hpo.testing.boring_task(epochs=2),
        {
            "constant": Constant(lr=0.02),
            "random": lambda seed: RandomSearch(n_candidates=2, seed=seed),
        },
        seeds=[0, 1],
        tracking=tracking_uri,
        experiment="compare-test",
        output_dir=tmp_path,
        progress=lines.append,
    )
    assert list(df.index) == ["constant", "random"] and (df["runs"] == 2).all()
    assert df.loc["random", "cost"] == pytest.approx(2.0) and df.loc["constant", "cost"] == 1.0
    assert len(lines) == 4 and lines[-1].startswith("[4/4] random seed 1")
    histories = df.attrs["histories"]
    assert [h.task["seed"] for h in histories["constant"]] == [0, 1]
    assert {p.split("/")[-1] for p in df.attrs["plots"]} == {
        "comparison.csv",
        "val_acc.png",
        "lr.png",
    }
    assert pd.read_csv(tmp_path / "comparison.csv", index_col=0).shape[0] == 2

    client = MlflowClient(tracking_uri)
    parent = client.get_run(df.attrs["mlflow_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["hpo.role"] == "comparison"
    artifacts = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.csv", "plots"} <= artifacts
    plots = {f.path for f in client.list_artifacts(parent.info.run_id, "plots")}
    assert plots == {"plots/val_acc.png", "plots/lr.png"}
    exp = client.get_experiment_by_name("compare-test")
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    names = sorted(r.info.run_name for r in children)
    assert names == ["constant seed 0", "constant seed 1", "random seed 0", "random seed 1"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"strategies": {}}, ValueError, "at least one strategy", id="empty"),
        pytest.param(
            {"baseline": "nope"}, ValueError, r"`baseline` must be one of \['c'\]", id="baseline"
        ),
        pytest.param({"seeds": 0}, ValueError, "`seeds` must be a count >= 1", id="seeds-0"),
        pytest.param({"seeds": [-1]}, ValueError, "`seeds` must be a count", id="seeds-neg"),
        pytest.param({"seeds": "3"}, TypeError, "`seeds` must be an int", id="seeds-str"),
        pytest.param(
            {"targets": (0.9, 1.5)},
            ValueError,
            r"`targets` must be fractions in \(0, 1\]",
            id="targets",
        ),
        pytest.param(
            {"strategies": {"c": 3}},
            TypeError,
            "must be a strategy, a strategy class or a factory",
            id="spec",
        ),
    ],
)
def test_compare_rejects_bad_arguments(kwargs, error, match):
    args = {"strategies": {"c": Constant(lr=0.02)}, "seeds": 1, "tracking": False, **kwargs}
    with pytest.raises(error, match=match):
        hpo.compare(hpo.testing.boring_task(epochs=1), args.pop("strategies"), **args)


def test_a_row_may_change_the_task_to_compare_optimizers():
    task = hpo.testing.boring_task(epochs=1)
    df = hpo.compare(
        task,
        {"adam": Constant(lr=0.01), "sgd": (Constant(lr=0.3), {"optimizer": "sgd"})},
        seeds=1,
        tracking=False,
    )
    histories = df.attrs["histories"]
    assert histories["adam"][0].task["optimizer"] == "adam"
    assert histories["sgd"][0].task["optimizer"] == "sgd"
    with pytest.raises(ValueError, match=r"may not change the data \(\['dataset'\]\)"):
        hpo.compare(task, {"x": (Constant(), {"dataset": "digits"})}, seeds=1, tracking=False)
    with pytest.raises(TypeError, match="must be \\(strategy, dict of task changes\\)"):
        hpo.compare(task, {"x": (Constant(), "sgd")}, seeds=1, tracking=False)
