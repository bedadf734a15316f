"""Every bad input gets one clear line, before any training: a table of them.

The command line is driven in-process through ``hpo._cli.main`` (exit code 2, one line on
stderr naming the flag and the value, no traceback), a sample of it through a real ``hpo``
process, and the Python API directly (the exception's type, a message naming the argument and
the value). Options that are ignored where they are given are answered with a warning.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Sequence

import pytest

import hpo
from hpo._cli import main
from strategies import PBT, SGDSA, Constant, Distancing, EpochBO, Hyperdyn, Schedule, Static

#: A quick ``hpo run`` that the bad flag is added to (it never gets to train).
RUN = ["run", "--strategy", "constant", "--epochs", "1", "--train-size", "200", "--quiet"]
RUN_OFFLINE = [*RUN, "--no-tracking"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A text file that is no database, a folder, a free port (nothing listens on it)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    text = root / "notes.txt"
    text.write_text("not a database\n")
    (root / "folder").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {
        "text": str(text),
        "folder": str(root / "folder"),
        "port": str(port),
        "root": str(root),
    }


def _fill(texts: Sequence[str], files: dict[str, str]) -> list[str]:
    """``texts`` with ``{root}``, ``{text}``, ``{folder}`` and ``{port}`` filled in."""
    out = []
    for text in texts:
        for key, value in files.items():
            text = text.replace("{" + key + "}", value)
        out.append(text)
    return out


#: (id, argv, the fragments the one-line message must hold: the flag or field, and the value)
CLI_CASES: list[tuple[str, list[str], tuple[str, ...]]] = [
    # --- the task
    ("epochs-0", [*RUN_OFFLINE, "--epochs", "0"], ("epochs", "0")),
    ("epochs-absurd", [*RUN_OFFLINE, "--epochs", "10000000"], ("epochs", "10000000")),
    ("epochs-text", [*RUN_OFFLINE, "--epochs", "ten"], ("--epochs", "'ten'")),
    ("seed-negative", [*RUN_OFFLINE, "--seed", "-1"], ("seed", "-1")),
    ("seed-huge", [*RUN_OFFLINE, "--seed", "99999999999"], ("seed", "99999999999")),
    ("batch-0", [*RUN_OFFLINE, "--batch-size", "0"], ("batch_size", "0")),
    ("device-typo", [*RUN_OFFLINE, "--device", "cpufoo"], ("device", "cpufoo")),
    ("device-cuda", [*RUN_OFFLINE, "--device", "cuda:7"], ("device", "cuda")),
    ("dataset", [*RUN_OFFLINE, "--dataset", "imagenet"], ("dataset", "imagenet")),
    ("model", [*RUN_OFFLINE, "--model", "transformer"], ("model", "transformer")),
    ("optimizer", [*RUN_OFFLINE, "--optimizer", "lion"], ("optimizer", "lion")),
    ("nos-name", [*RUN_OFFLINE, "--optimizer", "nos:opt99"], ("optimizer", "nos:opt99")),
    ("nos-json", [*RUN_OFFLINE, "--optimizer", "nos:genome:{"], ("optimizer", "JSON")),
    (
        "nos-momentum",
        [
            *RUN_OFFLINE,
            "--optimizer",
            'nos:genome:{"hidden": [], "root": {}, "momentum": 1.7}',
        ],
        ("optimizer", "Genome"),
    ),
    ("val-fraction-all", [*RUN_OFFLINE, "--val-fraction", "0.9999"], ("val_fraction", "0.9999")),
    ("val-fraction-0", [*RUN_OFFLINE, "--val-fraction", "0"], ("val_fraction", "0.0")),
    ("train-size-0", [*RUN_OFFLINE, "--train-size", "0"], ("train_size", "0")),
    ("precision", [*RUN_OFFLINE, "--precision", "fp16"], ("precision", "fp16")),
    ("weight-decay-inf", [*RUN_OFFLINE, "--weight-decay", "inf"], ("weight_decay", "inf")),
    ("weight-decay-neg", [*RUN_OFFLINE, "--weight-decay", "-0.1"], ("weight_decay", "-0.1")),
    (
        "momentum-range",
        [*RUN_OFFLINE, "--optimizer", "momentum", "--momentum", "1.5"],
        ("momentum", "1.5"),
    ),
    ("momentum-adam", [*RUN_OFFLINE, "--momentum", "0.9"], ("momentum", "adam")),
    ("model-option", [*RUN_OFFLINE, "--model-option", "bogus=1"], ("model_options", "bogus")),
    ("model-option-form", [*RUN_OFFLINE, "--model-option", "channels"], ("--model-option",)),
    ("augment", [*RUN_OFFLINE, "--augment", "mixup"], ("augment", "mixup")),
    ("augment-padding", [*RUN_OFFLINE, "--augment-padding", "0"], ("augment_padding", "0")),
    ("num-workers", [*RUN_OFFLINE, "--num-workers", "-1"], ("num_workers", "-1")),
    ("loss", [*RUN_OFFLINE, "--loss", "hinge"], ("loss", "hinge")),
    ("metric", [*RUN_OFFLINE, "--metric", "f1"], ("metric", "f1")),
    ("direction", [*RUN_OFFLINE, "--direction", "up"], ("direction", "up")),
    ("data-path", [*RUN_OFFLINE, "--data", "nowhere:nothing"], ("data", "nowhere")),
    ("data-form", [*RUN_OFFLINE, "--data", "{text}"], ("data", "notes.txt")),
    (
        "dataset-missing",
        [*RUN_OFFLINE, "--dataset", "cifar10", "--data-dir", "{folder}"],
        ("cifar10", "folder"),
    ),
    ("task-module", [*RUN_OFFLINE, "--task", "nowhere:task"], ("--task", "nowhere")),
    ("task-form", [*RUN_OFFLINE, "--task", "nocolon"], ("task", "nocolon")),
    ("task-returns", [*RUN_OFFLINE, "--task", "os:getcwd"], ("--task", "os:getcwd")),
    # --- the strategy
    ("strategy", [*RUN_OFFLINE, "--strategy", "adam"], ("--strategy", "'adam'")),
    ("lr-negative", [*RUN_OFFLINE, "--lr", "-1"], ("lr", "-1.0")),
    ("lr-inf", [*RUN_OFFLINE, "--lr", "inf"], ("lr", "inf")),
    ("lr-nan", [*RUN_OFFLINE, "--lr", "nan"], ("lr", "nan")),
    ("lr-zero", [*RUN_OFFLINE, "--lr", "0"], ("lr", "0.0")),
    ("lr-text", [*RUN_OFFLINE, "--lr", "fast"], ("--lr", "'fast'")),
    ("set-form", [*RUN_OFFLINE, "--set", "lr"], ("--set", "'lr'")),
    ("set-unknown", [*RUN_OFFLINE, "--set", "bogus=1"], ("bogus",)),
    ("set-value", [*RUN_OFFLINE, "--set", "lr=fast"], ("lr", "'fast'")),
    (
        "schedule-kind",
        [*RUN_OFFLINE, "--strategy", "schedule", "--set", "kind=linear"],
        ("kind", "linear"),
    ),
    (
        "schedule-milestone",
        [
            *RUN_OFFLINE,
            "--strategy",
            "schedule",
            "--schedule.kind",
            "step",
            "--schedule.milestones",
            "1.5",
        ],
        ("milestones", "1.5"),
    ),
    (
        "hyperdyn-window",
        [*RUN_OFFLINE, "--strategy", "hyperdyn", "--hyperdyn.window", "0"],
        ("window", "0"),
    ),
    (
        "hyperdyn-offset",
        [*RUN_OFFLINE, "--strategy", "hyperdyn", "--hyperdyn.offset", "-1"],
        ("offset", "-1.0"),
    ),
    (
        "hyperdyn-lr-max-inf",
        [*RUN_OFFLINE, "--strategy", "hyperdyn", "--hyperdyn.lr-max", "inf"],
        ("lr_max", "inf"),
    ),
    (
        "hyperdyn-lr-bounds",
        [
            *RUN_OFFLINE,
            "--strategy",
            "hyperdyn",
            "--hyperdyn.lr-min",
            "1",
            "--hyperdyn.lr-max",
            "0.1",
        ],
        ("lr_min", "lr_max"),
    ),
    (
        "hyperdyn-pair",
        [*RUN_OFFLINE, "--strategy", "hyperdyn", "--hyperdyn.momentum-bounds", "0.1"],
        ("momentum_bounds", "(0.1,)"),
    ),
    (
        "hyperdyn-hp",
        [*RUN_OFFLINE, "--strategy", "hyperdyn", "--hyperdyn.hyperparameters", "lr,gamma"],
        ("hyperparameters", "gamma"),
    ),
    (
        "hyperdyn-momentum-adam",
        [*RUN_OFFLINE, "--strategy", "hyperdyn", "--hyperdyn.hyperparameters", "lr,momentum"],
        ("momentum", "Adam"),
    ),
    (
        "hyperdyn-k",
        [*RUN_OFFLINE, "--strategy", "hyperdyn", "--hyperdyn.n-random-start", "0"],
        ("n_random_start", "0"),
    ),
    (
        "pbt-population",
        [*RUN_OFFLINE, "--strategy", "pbt", "--pbt.population", "1"],
        ("population", "1"),
    ),
    (
        "pbt-quantile",
        [*RUN_OFFLINE, "--strategy", "pbt", "--pbt.quantile", "0.9"],
        ("quantile", "0.9"),
    ),
    ("pbt-lr-max", [*RUN_OFFLINE, "--strategy", "pbt", "--pbt.lr-max", "inf"], ("lr_max", "inf")),
    (
        "pbt-momentum-adam",
        [*RUN_OFFLINE, "--strategy", "pbt", "--pbt.hyperparameters", "lr,momentum"],
        ("momentum", "Adam"),
    ),
    ("sgd-sa-t0", [*RUN_OFFLINE, "--strategy", "sgd-sa", "--sgd-sa.t0", "inf"], ("t0", "inf")),
    (
        "sgd-sa-cooling",
        [*RUN_OFFLINE, "--strategy", "sgd-sa", "--sgd-sa.cooling", "1.5"],
        ("cooling", "1.5"),
    ),
    (
        "sgd-sa-lrs",
        [*RUN_OFFLINE, "--strategy", "sgd-sa", "--sgd-sa.lrs", "0.1,inf"],
        ("lrs", "inf"),
    ),
    (
        "sgd-sa-scale",
        [*RUN_OFFLINE, "--strategy", "sgd-sa", "--sgd-sa.loss-scale", "inf"],
        ("loss_scale", "inf"),
    ),
    (
        "sgd-sa-paper-adam",
        [*RUN_OFFLINE, "--strategy", "sgd-sa", "--sgd-sa.preset", "paper"],
        ("preset='paper'", "Adam"),
    ),
    (
        "distancing-s-inf",
        [*RUN_OFFLINE, "--strategy", "distancing", "--distancing.s", "inf"],
        ("s", "inf"),
    ),
    (
        "distancing-s-neg",
        [*RUN_OFFLINE, "--strategy", "distancing", "--distancing.s", "-1"],
        ("s", "-1.0"),
    ),
    (
        "distancing-sigma",
        [*RUN_OFFLINE, "--strategy", "distancing", "--distancing.sigma", "0"],
        ("sigma", "0.0"),
    ),
    (
        "static-trials",
        [*RUN_OFFLINE, "--strategy", "static", "--static.n-trials", "0"],
        ("n_trials", "0"),
    ),
    (
        "static-sampler",
        [*RUN_OFFLINE, "--strategy", "static", "--static.sampler", "bayes"],
        ("sampler", "bayes"),
    ),
    (
        "random-search-n",
        [*RUN_OFFLINE, "--strategy", "random-search", "--random-search.n-candidates", "0"],
        ("n_candidates", "0"),
    ),
    (
        "nos-evaluation-genome",
        [*RUN_OFFLINE, "--strategy", "nos-evaluation"],
        ("nos-evaluation", "genome"),
    ),
    (
        "nos-evaluation-bad-genome",
        [*RUN_OFFLINE, "--strategy", "nos-evaluation", "--nos-evaluation.genome", "{}"],
        ("genome", "hidden"),
    ),
    # --- checkpoints
    (
        "checkpoint-parent",
        [*RUN_OFFLINE, "--checkpoint-dir", "{root}/missing/run"],
        ("--checkpoint-dir", "missing"),
    ),
    (
        "checkpoint-file",
        [*RUN_OFFLINE, "--checkpoint-dir", "{text}"],
        ("--checkpoint-dir", "notes.txt"),
    ),
    ("resume-alone", [*RUN_OFFLINE, "--resume"], ("--resume", "--checkpoint-dir")),
    # --- tracking
    (
        "tracking-folder",
        [*RUN, "--tracking-uri", "sqlite:///{root}/missing/m.db"],
        ("--tracking-uri", "missing"),
    ),
    (
        "tracking-not-db",
        [*RUN, "--tracking-uri", "sqlite:///{text}"],
        ("--tracking-uri", "notes.txt"),
    ),
    ("tracking-scheme", [*RUN, "--tracking-uri", "ftp://example.org"], ("--tracking-uri", "ftp")),
    (
        "tracking-refused",
        [*RUN, "--tracking-uri", "http://127.0.0.1:{port}"],
        ("--tracking-uri", "127.0.0.1:{port}"),
    ),
    # --- compare
    (
        "compare-strategies",
        ["compare", "--strategies", "constant,adam", "--no-tracking"],
        ("--strategies", "adam"),
    ),
    (
        "compare-empty",
        ["compare", "--strategies", ",", "--no-tracking"],
        ("--strategies", "empty"),
    ),
    (
        "compare-twice",
        ["compare", "--strategies", "pbt,pbt", "--no-tracking"],
        ("--strategies", "pbt,pbt"),
    ),
    ("compare-seeds", ["compare", "--seeds", "0", "--no-tracking"], ("--seeds", "0")),
    (
        "compare-baseline",
        ["compare", "--strategies", "constant", "--baseline", "pbt", "--no-tracking"],
        ("--baseline", "pbt"),
    ),
    (
        "compare-set",
        ["compare", "--set", "hyperdyn.window=2", "--no-tracking"],
        ("--set", "hyperdyn.window=2"),
    ),
    ("compare-budget", ["compare", "--budget-steps", "0", "--no-tracking"], ("steps", "0")),
    (
        "compare-output",
        ["compare", "--output-dir", "{text}", "--no-tracking"],
        ("--output-dir", "notes.txt"),
    ),
    ("compare-tracking", ["compare", "--tracking-uri", "ftp://x"], ("--tracking-uri", "ftp")),
    (
        "compare-option",
        ["compare", "--strategies", "pbt", "--pbt.population", "1", "--no-tracking"],
        ("population", "1"),
    ),
    # --- bench
    ("bench-tasks", ["bench", "--tasks", "imagenet", "--no-tracking"], ("tasks", "imagenet")),
    (
        "bench-strategies",
        ["bench", "--strategies", "adam", "--no-tracking"],
        ("strategies", "adam"),
    ),
    ("bench-seeds", ["bench", "--seeds", "0", "--no-tracking"], ("--seeds", "0")),
    ("bench-epochs", ["bench", "--epochs", "0", "--no-tracking"], ("--epochs", "0")),
    (
        "bench-output",
        ["bench", "--output-dir", "{text}", "--no-tracking"],
        ("--output-dir", "notes.txt"),
    ),
    ("bench-device", ["bench", "--device", "gpu", "--no-tracking"], ("device", "gpu")),
    ("bench-task", ["bench", "--task", "nowhere:task", "--no-tracking"], ("--task", "nowhere")),
    (
        "bench-tracking",
        ["bench", "--tracking-uri", "http://127.0.0.1:{port}"],
        ("--tracking-uri", "{port}"),
    ),
    # --- study
    ("study-trials", ["study", "--n-trials", "0", "--no-tracking"], ("--n-trials", "0")),
    (
        "study-storage-scheme",
        ["study", "--storage", "redis://x", "--no-tracking"],
        ("--storage", "redis"),
    ),
    (
        "study-storage-folder",
        ["study", "--storage", "sqlite:///{root}/missing/s.db", "--no-tracking"],
        ("--storage", "missing"),
    ),
    (
        "study-storage-not-db",
        ["study", "--storage", "sqlite:///{text}", "--no-tracking"],
        ("--storage", "notes.txt"),
    ),
    (
        "study-journal-folder",
        ["study", "--storage", "journal:{root}/missing/j.log", "--no-tracking"],
        ("--storage", "missing"),
    ),
    (
        "study-journal-garbage",
        ["study", "--storage", "journal:{text}", "--no-tracking"],
        ("--storage", "notes.txt"),
    ),
    (
        "study-postgres-refused",
        ["study", "--storage", "postgresql://u@127.0.0.1:{port}/db", "--no-tracking"],
        ("--storage", "{port}"),
    ),
    (
        "study-driver",
        ["study", "--storage", "mysql+nodriver://u@localhost/db", "--no-tracking"],
        ("--storage", "nodriver"),
    ),
    ("study-sampler", ["study", "--sampler", "bayes", "--no-tracking"], ("--sampler", "'bayes'")),
    ("study-pruner", ["study", "--pruner", "always", "--no-tracking"], ("--pruner", "'always'")),
    (
        "study-heartbeat",
        ["study", "--heartbeat-interval", "-1", "--no-tracking"],
        ("--heartbeat-interval", "-1"),
    ),
    (
        "study-grace",
        ["study", "--heartbeat-interval", "5", "--grace-period", "1", "--no-tracking"],
        ("--grace-period", "1"),
    ),
    ("study-retry", ["study", "--max-retry", "-1", "--no-tracking"], ("--max-retry", "-1")),
    (
        "study-sampler-seed",
        ["study", "--sampler-seed", "-1", "--no-tracking"],
        ("--sampler-seed", "-1"),
    ),
    (
        "study-objective",
        ["study", "--objective", "accuracy", "--no-tracking"],
        ("--objective", "'accuracy'"),
    ),
    ("study-name", ["study", "--study-name", "", "--no-tracking"], ("--study-name", "''")),
    ("study-epochs", ["study", "--epochs", "0", "--no-tracking"], ("epochs", "0")),
    (
        "study-tracking",
        ["study", "--tracking-uri", "sqlite:///{text}"],
        ("--tracking-uri", "notes.txt"),
    ),
]

#: The cases also run through a real ``hpo`` process (``python -m hpo``).
SUBPROCESS = {
    "epochs-0",
    "lr-inf",
    "device-typo",
    "val-fraction-all",
    "hyperdyn-pair",
    "checkpoint-parent",
    "tracking-refused",
    "compare-output",
    "study-storage-folder",
    "study-postgres-refused",
    "nos-momentum",
}


def _one_line_error(command: str, stderr: str, fragments: tuple[str, ...]) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, stderr
    line = errors[0]
    assert line.startswith(f"hpo {command}: error: ") or line.startswith("hpo: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"


@pytest.mark.parametrize(
    ("argv", "fragments"), [pytest.param(a, f, id=i) for i, a, f in CLI_CASES]
)
def test_the_command_line_answers_a_bad_input_with_one_line(argv, fragments, files, monkeypatch):
    monkeypatch.chdir(files["root"])
    argv, fragments = _fill(argv, files), tuple(_fill(fragments, files))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse's own errors
            code = exit.code
    assert code == 2, err.getvalue()
    _one_line_error(argv[0], err.getvalue(), fragments)


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [pytest.param(a, f, id=i) for i, a, f in CLI_CASES if i in SUBPROCESS],
)
def test_a_real_hpo_process_answers_a_bad_input_with_one_line(argv, fragments, files):
    argv, fragments = _fill(argv, files), tuple(_fill(fragments, files))
    done = subprocess.run(
        [sys.executable, "-m", "hpo", *argv],
        cwd=files["root"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{files['root']}/mlflow.db"},
    )
    assert done.returncode == 2, done.stderr
    _one_line_error(argv[0], done.stderr, fragments)


def test_an_unreachable_server_fails_fast(files):
    """A server that accepts the connection and never answers: the check gives up in ~10 s
    (MLflow's own retries took ~285 s)."""
    import time

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        start = time.monotonic()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main([*RUN, "--tracking-uri", f"http://127.0.0.1:{port}"])
        took = time.monotonic() - start
    assert code == 2
    _one_line_error("run", err.getvalue(), ("--tracking-uri", str(port)))
    assert took < 20, f"took {took:.0f} s"


# =============================================================================================
# The Python API
# =============================================================================================


def _boring() -> hpo.Task:
    return hpo.testing.boring_task()


API_CASES: list[tuple[str, object, type[Exception], tuple[str, ...]]] = [
    (
        "run-budget-int",
        lambda: hpo.run(_boring(), Constant(), budget=5),
        TypeError,
        ("budget", "5"),
    ),
    ("run-task", lambda: hpo.run("mnist1d", Constant()), TypeError, ("task", "str")),
    ("run-strategy", lambda: hpo.run(_boring(), "constant"), TypeError, ("strategy", "str")),
    (
        "run-tracking",
        lambda: hpo.run(_boring(), Constant(), tracking=3),
        TypeError,
        ("tracking", "3"),
    ),
    (
        "run-resume",
        lambda: hpo.run(_boring(), Constant(), resume=True),
        ValueError,
        ("resume", "checkpoint_dir"),
    ),
    (
        "run-checkpoint-type",
        lambda: hpo.run(_boring(), Constant(), checkpoint_dir=3),
        TypeError,
        ("checkpoint_dir", "3"),
    ),
    (
        "compare-list",
        lambda: hpo.compare(_boring(), [Constant()]),
        TypeError,
        ("strategies", "list"),
    ),
    ("compare-empty", lambda: hpo.compare(_boring(), {}), ValueError, ("strategies", "none")),
    (
        "compare-seeds",
        lambda: hpo.compare(_boring(), {"c": Constant()}, seeds=0),
        ValueError,
        ("seeds", "0"),
    ),
    (
        "compare-seed-range",
        lambda: hpo.compare(_boring(), {"c": Constant()}, seeds=[-1]),
        ValueError,
        ("seeds", "-1"),
    ),
    (
        "compare-baseline",
        lambda: hpo.compare(_boring(), {"c": Constant()}, baseline="x"),
        ValueError,
        ("baseline", "'x'"),
    ),
    (
        "compare-budget",
        lambda: hpo.compare(_boring(), {"c": Constant()}, budget=3),
        TypeError,
        ("budget", "3"),
    ),
    (
        "hyperdyn-pair",
        lambda: Hyperdyn(momentum_bounds=(0.1,)),
        TypeError,
        ("momentum_bounds", "(0.1,)"),
    ),
    ("hyperdyn-lr-max", lambda: Hyperdyn(lr_max=math.inf), ValueError, ("lr_max", "inf")),
    (
        "hyperdyn-bounds",
        lambda: Hyperdyn(lr_min=1.0, lr_max=0.1),
        ValueError,
        ("lr_min=1.0", "lr_max=0.1"),
    ),
    ("hyperdyn-unknown", lambda: Hyperdyn(windw=3), TypeError, ("windw",)),
    (
        "hyperdyn-relative",
        lambda: Hyperdyn(lr_relative=(0.1, math.inf)),
        ValueError,
        ("lr_relative", "inf"),
    ),
    ("constant-inf", lambda: Constant(lr=math.inf), ValueError, ("lr", "inf")),
    ("constant-nan", lambda: Constant(lr=math.nan), ValueError, ("lr", "nan")),
    ("constant-text", lambda: Constant(lr="0.1"), TypeError, ("lr", "'0.1'")),
    ("pbt-lr-max", lambda: PBT(lr_max=math.inf), ValueError, ("lr_max", "inf")),
    ("pbt-factor", lambda: PBT(factors=(1.2, math.inf)), ValueError, ("factors", "inf")),
    ("sgd-sa-lrs", lambda: SGDSA(lrs=(0.1, math.inf)), ValueError, ("lrs", "inf")),
    ("sgd-sa-t0", lambda: SGDSA(t0=math.inf), ValueError, ("t0", "inf")),
    ("distancing-s", lambda: Distancing(s=math.inf), ValueError, ("s", "inf")),
    ("schedule-lr", lambda: Schedule(lr=math.inf), ValueError, ("lr", "inf")),
    ("static-lr-max", lambda: Static(lr_max=math.inf), ValueError, ("lr_max", "inf")),
    (
        "task-val-fraction",
        lambda: hpo.Task(val_fraction=0.9999),
        ValueError,
        ("val_fraction", "0.9999"),
    ),
    ("task-device", lambda: hpo.Task(device="cpufoo"), ValueError, ("device", "cpufoo")),
    (
        "task-model-options",
        lambda: hpo.Task(model_options={"bogus": 1}),
        ValueError,
        ("model_options", "bogus"),
    ),
    (
        "task-factory-options",
        lambda: hpo.Task(model=lambda hidden=8: None, model_options={"hiden": 2}),
        ValueError,
        ("model_options", "hiden"),
    ),
    ("task-seed", lambda: hpo.Task(seed=2**40), ValueError, ("seed", str(2**40))),
    ("task-epochs", lambda: hpo.Task(epochs=10**9), ValueError, ("epochs", str(10**9))),
    (
        "task-weight-decay",
        lambda: hpo.Task(weight_decay=math.inf),
        ValueError,
        ("weight_decay", "inf"),
    ),
    (
        "task-genome-momentum",
        lambda: hpo.Task(
            optimizer='nos:genome:{"hidden": [], "root": {"arity": 1}, "momentum": 1.7}'
        ),
        ValueError,
        ("optimizer", "Genome"),
    ),
    ("budget-seconds-inf", lambda: hpo.Budget(seconds=math.inf), ValueError, ("seconds", "inf")),
    ("budget-none", lambda: hpo.Budget(), ValueError, ("epochs", "seconds")),
    ("budget-epochs", lambda: hpo.Budget(epochs=10**9), ValueError, ("epochs", str(10**9))),
    (
        "objective-metric",
        lambda: hpo.objective(_boring(), Constant.suggest, metric="val_f1"),
        ValueError,
        ("metric", "val_f1"),
    ),
    (
        "objective-factory",
        lambda: hpo.objective(_boring(), "constant"),
        TypeError,
        ("strategy_factory", "'constant'"),
    ),
    (
        "objective-summary",
        lambda: hpo.objective(_boring(), Constant.suggest, summary="mean"),
        ValueError,
        ("summary", "mean"),
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "fragments"), [pytest.param(c, e, f, id=i) for i, c, e, f in API_CASES]
)
def test_the_api_names_the_argument_and_the_value(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message.strip()
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# =============================================================================================
# Ignored options say so
# =============================================================================================


WARNING_CASES: list[tuple[str, object, tuple[str, ...]]] = [
    ("download-builtin", lambda: hpo.Task(download=True), ("download=True", "ignored")),
    ("data-dir-builtin", lambda: hpo.Task(data_dir="/tmp"), ("data_dir", "ignored")),
    ("streaming-builtin", lambda: hpo.Task(streaming=True), ("streaming=True", "ignored")),
    ("epoch-bo-offset", lambda: EpochBO(offset=0.1), ("offset=0.1", "ignored")),
    (
        "schedule-unused",
        lambda: Schedule(kind="cosine", milestones=(0.5,)),
        ("milestones", "ignored"),
    ),
    (
        "compare-seeds-repeat",
        lambda: hpo.compare(
            hpo.testing.boring_task(epochs=1),
            {"c": Constant(lr=0.05)},
            seeds=[0, 0],
            tracking=False,
        ),
        ("seeds", "repeat"),
    ),
]


@pytest.mark.parametrize(
    ("call", "fragments"), [pytest.param(c, f, id=i) for i, c, f in WARNING_CASES]
)
def test_an_ignored_option_is_warned_about(call, fragments):
    with pytest.warns(UserWarning) as caught:
        call()
    messages = " | ".join(str(w.message) for w in caught)
    for fragment in fragments:
        assert fragment in messages, messages


def test_no_tracking_with_a_tracking_uri_is_warned_about(files):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*RUN_OFFLINE, "--tracking-uri", "sqlite:///x.db"])
    assert code == 0
    assert "hpo run: warning: --tracking-uri sqlite:///x.db is ignored with --no-tracking" in (
        err.getvalue()
    )


def test_download_for_a_builtin_dataset_is_warned_about_on_one_line():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            code = main([*RUN_OFFLINE, "--download"])
    assert code == 0
    lines = [line for line in err.getvalue().splitlines() if "warning" in line]
    assert lines == [
        "hpo run: warning: Task: download=True is ignored: the dataset 'mnist1d' is made "
        "here, nothing is downloaded."
    ]


def test_the_table_is_large():
    assert len(CLI_CASES) + len(API_CASES) + len(WARNING_CASES) >= 100


def test_a_bug_in_training_is_not_reported_as_a_usage_error(tmp_path, monkeypatch):
    """A ValueError raised once training has started is the program's, not the input's: it
    propagates (its traceback is what a bug report needs), it does not exit with code 2."""
    import trainers

    def broken(self, lr=None):  # noqa: ANN001, ANN202
        raise ValueError("a bug deep in training")

    monkeypatch.setattr(trainers.Trainer, "train_epoch", broken)
    with pytest.raises(ValueError, match="a bug deep in training"):
        main(RUN_OFFLINE)
