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
    for text in (
        "--strategy",
        "(default: schedule)",
        "(default: mnist1d)",
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
        pytest.param(["run", "--epochs", "0"], "Task.`epochs` must be in [1, inf]", id="epochs"),
        pytest.param(["run", "--strategy", "nope"], "invalid choice: 'nope'", id="strategy"),
        pytest.param(["run", "--lr", "-1"], "`lr` must be in (0.0, inf]", id="lr"),
        pytest.param(["run", "--batch-size", "x"], "invalid int value: 'x'", id="batch"),
        pytest.param(["run", "--device", "tpu"], "Task.`device`", id="device"),
        pytest.param(["run", "--set", "kind=linear"], "`kind` must be one of", id="set"),
        pytest.param(["run", "--set", "bogus"], "--set takes KEY=VALUE", id="set-syntax"),
        pytest.param(["run", "--set", "bogus=1"], "unknown option(s) ['bogus']", id="set-key"),
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
    assert "epoch 3/3" in proc.stderr  # progress line per epoch
    assert "best    val acc" in proc.stdout and "test acc" in proc.stdout
    assert "mlflow ui" in proc.stdout
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cli-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_id in proc.stdout
    assert len(client.get_metric_history(run.info.run_id, "val_acc")) == 3
    assert not (tmp_path / "mlflow.db").exists()  # the given URI was used
