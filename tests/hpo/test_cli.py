from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from hpo._cli import main


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: mnist1d)" not in out  # not twice
    for text in (
        "--strategy",
        "(default: schedule)",
        "(default the embedded MNIST-1D)",  # said once, by the field's own description
        "(default: cnn)",
        "(default: adam)",
        "--tracking-uri",
        "--experiment",
        "(default: auto)",
    ):
        assert text in out


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "run" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["run", "--epochs", "0"], "Task.`epochs` must be in [1, 1000000]", id="epochs"
        ),
        pytest.param(["run", "--strategy", "nope"], "invalid choice: 'nope'", id="strategy"),
        pytest.param(["run", "--lr", "-1"], "`lr` must be in (0.0, inf)", id="lr"),
        pytest.param(["run", "--batch-size", "x"], "invalid int value: 'x'", id="batch"),
        pytest.param(["run", "--device", "tpu"], "Task.`device`", id="device"),
        pytest.param(["run", "--optimizer", "lion"], "Task.`optimizer` must be one of", id="opt"),
        pytest.param(["run", "--optimizer", "nos:opt99"], "names no NOS optimizer", id="nos"),
        pytest.param(["run", "--set", "kind=linear"], "`kind` must be one of", id="set"),
        pytest.param(["run", "--set", "bogus"], "--set takes KEY=VALUE", id="set-syntax"),
        pytest.param(["run", "--set", "bogus=1"], "has no option 'bogus'", id="set-key"),
    ],
)
def test_bad_values_give_one_line_and_exit_2(capsys, argv, message):
    try:
        code = main([*argv, "--no-tracking", "--quiet"])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_hpo_run_trains_prints_a_summary_and_is_visible_in_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpo",
            "run",
            "--epochs",
            "3",
            "--train-size",
            "500",
            "--device",
            "cpu",
            "--experiment",
            "cli-test",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # stderr is no terminal: no bar, and no line per epoch in a log
    assert "best    val acc" in proc.stdout and "test acc" in proc.stdout
    assert "mlflow ui" in proc.stdout
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cli-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_id in proc.stdout
    assert len(client.get_metric_history(run.info.run_id, "val_acc")) == 3
    assert not (tmp_path / "mlflow.db").exists()  # the given URI was used


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["compare", "--strategies", "constant,nope"], "unknown ['nope']", id="unknown"
        ),
        pytest.param(
            ["compare", "--strategies", "constant,constant"], "names a strategy twice", id="twice"
        ),
        pytest.param(
            ["compare", "--set", "pbt.population=4", "--strategies", "constant"],
            "STRATEGY.KEY=VALUE",
            id="set",
        ),
        pytest.param(
            ["compare", "--set", "constant.lr=-1", "--strategies", "constant"],
            "`lr` must be in",
            id="value",
        ),
        pytest.param(["compare", "--seeds", "0"], "--seeds must be >= 1, but got 0", id="seeds"),
        pytest.param(
            ["compare", "--baseline", "pbt", "--strategies", "constant"],
            "--baseline must be one of the compared strategies",
            id="baseline",
        ),
        pytest.param(["study", "--n-trials", "0"], "--n-trials must be >= 1", id="n-trials"),
        pytest.param(
            ["study", "--storage", "redis://x"],
            "--storage: 'redis://x' has the scheme",
            id="storage",
        ),
        pytest.param(["study", "--sampler", "smac"], "invalid choice: 'smac'", id="sampler"),
    ],
)
def test_compare_and_study_bad_values_give_one_line_and_exit_2(capsys, argv, message):
    try:
        code = main([*argv, "--no-tracking"])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_hpo_compare_prints_the_table_and_says_where_the_plots_are(tmp_path, capsys):
    code = main(
        [
            "compare",
            "--strategies",
            "constant,random-search",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--train-size",
            "300",
            "--device",
            "cpu",
            "--set",
            "random-search.n_candidates=2",
            "--output-dir",
            str(tmp_path / "out"),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert "[4/4] random-search seed 1" in err  # progress
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("strategy"))
    assert lines[header + 2].startswith("constant") and lines[header + 3].startswith(
        "random-search"
    )
    assert "(2.0x)" in lines[header + 3]  # two branches per epoch: twice the steps spent
    assert str(tmp_path / "out" / "val_acc.png") in out and "MLflow parent run" in out
    assert (tmp_path / "out" / "lr.png").exists()


def test_hpo_study_runs_trials_and_reports_the_best(tmp_path, capsys):
    code = main(
        [
            "study",
            "--strategy",
            "constant",
            "--n-trials",
            "3",
            "--epochs",
            "2",
            "--train-size",
            "300",
            "--device",
            "cpu",
            "--storage",
            f"sqlite:///{tmp_path / 's.db'}",
            "--study-name",
            "cli",
            "--no-tracking",
            "--sampler-seed",
            "0",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert err.count("trial ") == 3
    assert "study 'cli': 3 trials in the storage" in out and "best trial" in out
