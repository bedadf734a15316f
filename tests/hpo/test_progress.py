"""What a person sees while waiting: live bars in a terminal, a line per run in a log, nothing
when asked for nothing."""

from __future__ import annotations

import io
import os
import select
import struct
import subprocess
import sys
import time

import optuna
import pytest

import hpo
from hpo._progress import RunProgress, StudyProgress, interactive
from strategies import Constant


def _in_a_terminal(argv: list[str], cwd) -> list[tuple[float, str]]:
    """Run ``python -m hpo ARGV`` attached to a pseudo-terminal of 40 x 120; return what it
    wrote, chunk by chunk, with the seconds at which each came."""
    pty = pytest.importorskip("pty")
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "hpo", *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        close_fds=True,
    )
    os.close(slave)
    chunks, start = [], time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not data:
                    break
                chunks.append((time.monotonic() - start, data.decode(errors="replace")))
            elif process.poll() is not None:
                break
            if time.monotonic() - start > 300:
                process.kill()
                break
    finally:
        os.close(master)
        process.wait()
    assert process.returncode == 0, "".join(c for _, c in chunks)[-2000:]
    return chunks


def test_hpo_compare_in_a_terminal_shows_each_epoch_of_the_first_run_as_it_comes(tmp_path):
    chunks = _in_a_terminal(
        [
            "compare",
            "--strategies",
            "constant,pbt",
            "--seeds",
            "1",
            "--epochs",
            "4",
            "--train-size",
            "500",
            "--device",
            "cpu",
            "--no-tracking",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        tmp_path,
    )
    text = "".join(c for _, c in chunks)
    first_done = text.index("[1/2] constant seed 0:")
    # the overall bar (runs done of all, with the ETA) and the first run's bar, updated epoch by
    # epoch before that run ends
    assert "compare: 0/2 runs" in text[:first_done]
    for epoch in (1, 2, 3):
        assert f"constant seed 0: epoch {epoch}/4" in text[:first_done], text[:first_done]
    assert "val acc" in text[:first_done]
    assert "compare: 1/2 runs" in text[first_done:]
    assert "pbt seed 0: epoch 4/4" in text
    # the epochs come in writes of their own, as they happen, not in one write at the end
    assert sum("constant seed 0: epoch" in c for _, c in chunks) >= 3


def test_in_a_log_compare_prints_a_line_per_run_and_no_bars(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpo",
            "compare",
            "--strategies",
            "constant",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--train-size",
            "300",
            "--device",
            "cpu",
            "--no-tracking",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "\r" not in done.stderr and "epoch 1/2" not in done.stderr
    assert [line.split(":")[0] for line in lines[1:]] == [
        "[1/2] constant seed 0",
        "[2/2] constant seed 1",
    ]


def test_the_python_api_is_silent_in_a_log_and_with_progress_false(capsys):
    task = hpo.testing.boring_task(epochs=2)
    hpo.run(task, Constant(lr=0.05), tracking=False)  # pytest's stderr is not a terminal
    hpo.compare(task, {"c": Constant(lr=0.05)}, seeds=1, tracking=False)
    hpo.run(task, Constant(lr=0.05), tracking=False, progress=False)
    hpo.compare(task, {"c": Constant(lr=0.05)}, seeds=1, tracking=False, progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert not interactive()


def test_progress_true_draws_the_bars_anywhere(capsys):
    task = hpo.testing.boring_task(epochs=2)
    hpo.run(task, Constant(lr=0.05), tracking=False, progress=True)
    err = capsys.readouterr().err
    assert "constant: epoch 2/2" in err and "val acc" in err
    hpo.compare(task, {"c": Constant(lr=0.05)}, seeds=2, tracking=False, progress=True)
    err = capsys.readouterr().err
    assert "compare: 2/2 runs" in err and "c seed 1: epoch 2/2" in err
    assert "[2/2] c seed 1: best val" in err


def test_a_line_callback_gets_a_line_per_run():
    lines: list[str] = []
    hpo.compare(
        hpo.testing.boring_task(epochs=1),
        {"c": Constant(lr=0.05)},
        seeds=2,
        tracking=False,
        progress=lines.append,
    )
    assert [line.split(":")[0] for line in lines] == ["[1/2] c seed 0", "[2/2] c seed 1"]


@pytest.mark.parametrize("progress", ["yes", 1])
def test_progress_takes_a_bool_or_none(progress):
    with pytest.raises(TypeError, match="`progress` must be True, False or None"):
        hpo.run(hpo.testing.boring_task(), Constant(), tracking=False, progress=progress)


def test_a_resumed_run_bar_starts_where_the_run_stopped(tmp_path):
    task = hpo.testing.boring_task(epochs=3)

    class Crash(hpo.Callback):
        def on_epoch_end(self, history, record):
            if record.epoch == 2:
                raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        hpo.run(
            task, Constant(lr=0.05), tracking=False, callbacks=[Crash()], checkpoint_dir=tmp_path
        )
    stream = io.StringIO()
    bar = RunProgress(total_epochs=3, stream=stream)
    hpo.run(
        task,
        Constant(lr=0.05),
        tracking=False,
        callbacks=[bar],
        checkpoint_dir=tmp_path,
        resume=True,
        progress=False,
    )
    text = stream.getvalue()
    assert "epoch 1/3" in text and "epoch 2/3" in text and "epoch 3/3" in text
    assert "epoch 0/3" not in text  # it started at the checkpoint's epoch, 1


def test_the_study_bar_counts_trials_and_shows_the_best_value():
    stream = io.StringIO()
    study = optuna.create_study(direction="maximize")
    bar = StudyProgress(3, "val_acc", stream=stream, line=lambda s, t: f"trial {t.number} done")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[bar])
    bar.close()
    text = stream.getvalue()
    assert "trials: 3/3" in text and "best val_acc" in text
    assert "trial 0 done" in text and "trial 2 done" in text
