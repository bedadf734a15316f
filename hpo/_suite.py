"""The bench's fixed suite of small tasks and its rows: the baselines, what tuning costs a
user, every online strategy at its defaults and the papers' presets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo._task import Task

if TYPE_CHECKING:
    from hpo._strategy import Strategy

#: A bench row: builds the strategy for a task, or ``None`` where it does not apply.
Factory = Callable[[Task], "Strategy | None"]


@dataclass(frozen=True)
class BenchTask:
    """One task of the suite.

    Attributes:
        name: Its name on the command line.
        task: The training problem (its ``seed`` is replaced by each bench seed).
        rewards: What the task rewards, in a few words.
    """

    name: str
    task: Task
    rewards: str


def _task(**fields: Any) -> Task:
    return Task(epochs=20, batch_size=100, **fields)


#: The default suite: small tasks that reward different things, each 20 epochs at batch 100.
SUITE: dict[str, BenchTask] = {
    t.name: t
    for t in (
        BenchTask(
            "mnist1d-cnn-adam",
            _task(dataset="mnist1d", model="cnn", optimizer="adam"),
            "the project's default task: Adam, where the default lr is already good",
        ),
        BenchTask(
            "mnist1d-cnn-momentum",
            _task(dataset="mnist1d", model="cnn", optimizer="momentum"),
            "momentum SGD: a sharper lr optimum and a decay that pays",
        ),
        BenchTask(
            "mnist1d-mlp-sgd",
            _task(dataset="mnist1d", model="mlp", optimizer="sgd"),
            "plain SGD on an MLP that learns slowly: large lrs pay, SGD-SA's home",
        ),
        BenchTask(
            "digits-cnn-sgd",
            _task(dataset="digits", model="cnn", optimizer="sgd"),
            "plain SGD on 8x8 images: a second plain-SGD task, with few steps per epoch",
        ),
        BenchTask(
            "digits-cnn-adam",
            _task(dataset="digits", model="cnn", optimizer="adam"),
            "Conv2d on 8x8 images, 13 steps per epoch: little time to search",
        ),
        BenchTask(
            "digits-mlp-adam",
            _task(dataset="digits", model="mlp", optimizer="adam"),
            "an easy task that saturates: penalises strategies that break what works",
        ),
        BenchTask(
            "mnist1d-convnet-momentum",
            _task(
                dataset="mnist1d",
                model="convnet",
                optimizer="momentum",
                model_options={"base": 16},
            ),
            "BatchNorm (NOS's surrogate ConvNet, base 16): robust to lr, costly to branch",
        ),
    )
}

#: ``--quick``: the suite's tasks at 8 epochs, 2 seeds (about 5 minutes on 2 CPU cores).
QUICK_EPOCHS = 8
QUICK_SEEDS = 2
#: Rows run on every task unless ``strategies`` says otherwise, in table order.
DEFAULT_STRATEGIES = (
    "constant",
    "one-cycle",
    "constant-grid",
    "one-cycle-grid",
    "static-tpe",
    "random-search",
    "pbt",
    "pb2",
    "hyperdyn",
    "hyperdyn-paper",
    "sgd-sa",
    "sgd-sa-paper",
    "distancing",
    # what users reach for instead of tuning: the lr-free optimizers at their defaults
    "prodigy",
    "schedulefree-adamw",
    "schedulefree-sgd",
    "dadapt-adam",
    "dadapt-sgd",
)
#: The online strategies at their defaults and the tuned baselines, for the "earning its
#: keep" verdict (``BenchResult.keep``).
ONLINE = ("random-search", "pbt", "pb2", "hyperdyn", "sgd-sa", "epoch-bo")
TUNED = ("constant-grid", "one-cycle-grid")
#: The learning-rate-free optimizers' rows: what a user gets with no tuning at all.
LR_FREE_ROWS = ("prodigy", "schedulefree-adamw", "schedulefree-sgd", "dadapt-adam", "dadapt-sgd")
#: The verdict compares the online strategies at this budget with the tuned grids at theirs.
KEEP_BUDGET = 2.0
GRID_POINTS = 5  # the tuned baselines' lr grid: default lr x 10^(-1, -1/2, 0, 1/2, 1)


def bench_strategies() -> dict[str, Factory]:
    """The bench's rows by name: the baselines, the tuned baselines (what tuning costs a user,
    counted honestly), every online strategy at its defaults and the papers' presets.

    Any registered strategy name (``strategies.STRATEGIES``) is a row too, at its defaults.
    """
    from strategies import (
        PB2,
        PBT,
        SGDSA,
        Constant,
        Distancing,
        Hyperdyn,
        LrFree,
        RandomSearch,
        Schedule,
        Static,
    )
    from trainers import DEFAULT_LRS, LR_FREE

    def grid(schedule: str) -> Factory:
        def make(task: Task) -> Strategy | None:
            lr = DEFAULT_LRS.get(task.optimizer)
            if lr is None:  # a NOS optimizer: no default lr to centre the grid on
                return None
            return Static(
                sampler="grid",
                n_trials=GRID_POINTS,
                lr_min=lr / 10,
                lr_max=lr * 10,
                schedule=schedule,
            )

        return make

    return {
        "constant": lambda task: Constant(),
        "one-cycle": lambda task: Schedule(kind="one-cycle"),
        "constant-grid": grid("constant"),
        "one-cycle-grid": grid("one-cycle"),
        "static-tpe": lambda task: Static(sampler="tpe", n_trials=8),
        "random-search": lambda task: RandomSearch(),
        "pbt": lambda task: PBT(),
        "pb2": lambda task: PB2(),
        "hyperdyn": lambda task: Hyperdyn(),
        "hyperdyn-paper": lambda task: Hyperdyn(preset="paper"),
        "sgd-sa": lambda task: SGDSA(),
        # the paper's SGD-SA takes plain SGD steps; it refuses other optimizers
        "sgd-sa-paper": lambda task: SGDSA(preset="paper") if task.optimizer == "sgd" else None,
        "distancing": lambda task: Distancing(),
        # the answers that promise no lr to choose: the task's optimizer replaced by one of
        # them, trained at its package's defaults
        **{name: (lambda task, name=name: LrFree(optimizer=name)) for name in LR_FREE},
    }
