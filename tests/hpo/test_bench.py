from __future__ import annotations

import math

import pandas as pd
import pytest
from mlflow import MlflowClient

import hpo
from hpo._anytime import anytime_scores, best_within, summarize_anytime
from hpo._bench import _format_keep, _keep
from hpo._cli import main
from tests.hpo._histories import history

# ---------------------------------------------------------------------------------------------
# anytime scores
# ---------------------------------------------------------------------------------------------


def test_best_within_counts_only_what_was_spent_by_then():
    h = history([0.5, 0.9, 0.7], cost=2)  # spent 20, 40, 60
    assert math.isnan(best_within(h, 19))
    assert best_within(h, 20) == 0.5 and best_within(h, 59) == 0.9 and best_within(h, 1e9) == 0.9


def test_a_grid_search_has_nothing_until_its_runs_are_paid_for():
    grid = history([0.6, 0.95], start=5 * 20)  # 5 runs of 20 steps, then the best replayed
    assert math.isnan(best_within(grid, 2 * 20)) and best_within(grid, 8 * 20) == 0.95


def test_a_diverged_run_counts_as_chance_from_its_divergence_on():
    h = history([0.8, 0.9, 0.1], status="diverged")  # diverged at epoch 3 (spent 30)
    assert best_within(h, 20, chance=0.1) == 0.9
    assert best_within(h, 30, chance=0.1) == 0.1  # not the 90 % it had before


def test_scores_are_normalised_between_chance_and_the_best_sound_run():
    runs = {
        "a": [history([0.5, 1.0]), history([0.55, 0.7])],
        "b": [history([0.99], status="diverged")],  # may not set the top of the scale
    }
    df = anytime_scores(runs, run_steps=20, chance=0.1, budgets=(0.5, 1.0))
    assert df.attrs["best"] == 1.0
    a = df[df.strategy == "a"].set_index(["seed", "budget"])["normalized"]
    assert a[(0, 0.5)] == pytest.approx((0.5 - 0.1) / 0.9) and a[(0, 1.0)] == 1.0
    assert df[df.strategy == "b"]["normalized"].tolist() == [0.0, 0.0]
    below = anytime_scores({"c": [history([0.05])]}, run_steps=10, chance=0.1, best=1.0)
    assert below["normalized"].eq(0.0).all()  # below chance clips to 0


def test_summary_means_and_ranks_over_tasks():
    rows = []
    for task, scores in (("t1", {"a": 1.0, "b": 0.5, "c": 0.5}), ("t2", {"a": 0.2, "b": 0.6})):
        for strategy, value in scores.items():
            rows.append(
                {"task": task, "strategy": strategy, "seed": 0, "budget": 1.0, "normalized": value}
            )
    s = summarize_anytime(pd.DataFrame(rows))
    assert s.loc["a", "score@1x"] == pytest.approx(0.6) and s.loc["b", "score@1x"] == 0.55
    assert s.loc["a", "rank@1x"] == pytest.approx((1 + 2) / 2)
    assert s.loc["b", "rank@1x"] == pytest.approx((2.5 + 1) / 2)  # tied with c on t1
    assert s.loc["c", "tasks"] == 1 and s.loc["a", "tasks"] == 2


def test_the_keep_verdict_compares_online_at_2x_with_the_tuned_grid_at_full_cost():
    rows = []
    for strategy, budget, value in (
        ("hyperdyn", 2.0, 0.9),
        ("sgd-sa", 2.0, 0.95),
        ("constant-grid", 8.0, 0.93),
        ("one-cycle-grid", 8.0, 0.96),
        ("pbt", 8.0, 1.0),  # an online strategy at 8x does not count
    ):
        rows.append(
            {"task": "t", "strategy": strategy, "seed": 0, "budget": budget, "normalized": value}
        )
    keep = _keep(pd.DataFrame(rows), (1.0, 2.0, 4.0, 8.0))
    row = keep.loc["t"]
    assert (row["online"], row["tuned"], bool(row["earns"])) == ("sgd-sa", "one-cycle-grid", False)


# ---------------------------------------------------------------------------------------------
# hpo.bench and hpo bench
# ---------------------------------------------------------------------------------------------


def test_bench_runs_rows_on_tasks_logs_one_parent_and_writes_the_outputs(tracking_uri, tmp_path):
    lines: list[str] = []
    result = hpo.bench(
        ["digits-mlp-adam"],
        ["constant", "constant-grid", "sgd-sa", "sgd-sa-paper"],
        seeds=[0, 1],
        epochs=2,
        device="cpu",
        tracking=tracking_uri,
        experiment="bench-test",
        output_dir=tmp_path,
        progress=lines.append,
    )
    table = result.tables["digits-mlp-adam"]
    # the paper's SGD-SA takes plain SGD steps: not run on an Adam task
    assert list(table.index) == ["constant", "constant-grid", "sgd-sa"]
    assert set(result.scores["strategy"]) == {"constant", "constant-grid", "sgd-sa"}
    assert len(result.scores) == 3 * 2 * 4  # rows x seeds x budgets
    grid = result.scores[result.scores.strategy == "constant-grid"]
    assert grid[grid.budget < 5]["score"].isna().all()  # nothing before its 5 runs are paid
    assert grid[grid.budget == 8]["normalized"].gt(0).all()
    assert list(result.summary.columns[:2]) == ["score@1x", "rank@1x"]
    assert result.keep.loc["digits-mlp-adam", "tuned"] == "constant-grid"
    assert "earning its keep" in result.format()
    names = {p.rsplit("/", 1)[-1] for p in result.paths}
    assert {"bench.txt", "scores.csv", "summary.csv", "summary.png"} <= names
    assert "anytime-digits-mlp-adam.png" in names
    assert (tmp_path / "digits-mlp-adam" / "comparison.csv").exists()
    assert any("[task 1/1]" in line for line in lines)
    assert sum(line.startswith("  digits-mlp-adam [") for line in lines) == 3 * 2  # per run

    client = MlflowClient(tracking_uri)
    parent = client.get_run(result.mlflow_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["hpo.role"] == "bench"
    assert "constant.score_8x" in parent.data.metrics
    exp = parent.info.experiment_id
    runs = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(runs) == 1  # the task's comparison, with a child per run
    children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{runs[0].info.run_id}'")
    assert len(children) == 3 * 2
    plots = {f.path for f in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/summary.png" in plots


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"tasks": ["imagenet"]}, r"`tasks` must name tasks of the suite", id="task"),
        pytest.param({"strategies": ["nope"]}, r"`strategies` must name bench rows", id="row"),
        pytest.param({"strategies": ["pbt", "pbt"]}, r"names a row twice", id="twice"),
        pytest.param({"budgets": (0,)}, r"`budgets` must be positive", id="budget"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hpo.bench(**{"tracking": False, **kwargs})


def test_the_command_prints_the_tables_and_the_verdict(capsys, tmp_path):
    code = main(
        [
            "bench",
            "--tasks",
            "digits-mlp-adam",
            "--strategies",
            "constant,one-cycle,random-search,constant-grid",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--no-tracking",
            "--output-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "== digits-mlp-adam" in out and "score@2x" in out and "earns" in out
    assert (tmp_path / "summary.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--tasks", "nope"], "`tasks` must name tasks of the suite", id="task"),
        pytest.param(["--strategies", "nope"], "`strategies` must name bench rows", id="row"),
        pytest.param(["--seeds", "0"], "--seeds must be >= 1", id="seeds"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(capsys, argv, message):
    code = main(["bench", *argv, "--no-tracking"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_the_verdict_also_compares_online_at_2x_with_the_lr_free_optimizers_at_1x():
    rows = []
    for strategy, budget, value in (
        ("hyperdyn", 2.0, 0.92),
        ("one-cycle-grid", 8.0, 0.96),
        ("prodigy", 1.0, 0.95),
        ("dadapt-sgd", 1.0, 0.10),
        ("schedulefree-sgd", 1.0, 0.97),  # the best lr-free row
        ("schedulefree-sgd", 2.0, 0.99),  # its score at 2x is not what a user paid
    ):
        rows.append(
            {"task": "t", "strategy": strategy, "seed": 0, "budget": budget, "normalized": value}
        )
    keep = _keep(pd.DataFrame(rows), (1.0, 2.0, 4.0, 8.0))
    row = keep.loc["t"]
    assert (row["lr_free"], row["lr_free_score"]) == ("schedulefree-sgd", 0.97)
    assert not row["beats_lr_free"]
    text = _format_keep(keep)
    assert "vs  schedulefree-sgd 0.97 @1x  -> not better" in text
    assert "beats the best learning-rate-free optimizer at 1x (no tuning) on 0 of 1 tasks" in text


def test_without_lr_free_rows_the_verdict_says_nothing_of_them():
    rows = [
        {"task": "t", "strategy": "hyperdyn", "seed": 0, "budget": 2.0, "normalized": 0.9},
        {"task": "t", "strategy": "constant-grid", "seed": 0, "budget": 8.0, "normalized": 0.9},
    ]
    keep = _keep(pd.DataFrame(rows), (1.0, 2.0, 4.0, 8.0))
    assert "learning-rate-free" not in _format_keep(keep)
