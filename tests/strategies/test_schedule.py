from __future__ import annotations

import math

import pytest

import hpo
from hpo.testing import StrategyTestSuite
from strategies import Schedule, make_strategy
from trainers import SCHEDULES


@pytest.mark.parametrize("kind", SCHEDULES)
class TestSchedule(StrategyTestSuite):
    @pytest.fixture
    def strategy(self, kind):
        return Schedule(kind=kind, lr=0.02)


def test_step_schedule_drops_at_the_milestones():
    task = hpo.testing.boring_task(epochs=10, optimizer="sgd")
    h = hpo.run(task, Schedule(kind="step", lr=0.1), tracking=False)
    lrs = h.column("lr")
    assert lrs[:3] == [0.1] * 3
    assert all(math.isclose(v, 0.01) for v in lrs[3:7])
    assert all(math.isclose(v, 0.001) for v in lrs[7:])


def test_cosine_sets_the_lr_of_every_step():
    task = hpo.testing.boring_task(epochs=2)
    h = hpo.run(task, Schedule(kind="cosine", lr=0.02), tracking=False)
    first = h.records[0]
    assert first.lr_max == pytest.approx(0.02) and first.lr_min < first.lr_max
    assert h.records[1].lr_min == pytest.approx(0.02 * 0.5 * (1 + math.cos(math.pi * 19 / 20)))


def test_restarts_return_to_the_peak():
    task = hpo.testing.boring_task(epochs=4)
    h = hpo.run(task, Schedule(kind="restarts", lr=0.02, period=0.5), tracking=False)
    assert [r.lr_max for r in h.records] == pytest.approx(
        [0.02, 0.02 * 0.5 * (1 + math.cos(math.pi / 2)), 0.02, 0.01]
    )


def test_needs_an_epoch_budget():
    trainer = hpo.testing.boring_task().build_trainer()
    with pytest.raises(ValueError, match="Schedule needs `Budget.epochs`"):
        Schedule().run(trainer, hpo.Budget(steps=100))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"kind": "linear"}, r"ScheduleConfig.`kind` must be one of", id="kind"),
        pytest.param({"lr": -1.0}, r"ScheduleConfig.`lr` must be in \(0.0, inf\)", id="lr"),
        pytest.param({"kind": "step", "gamma": -0.1}, r"ScheduleConfig.`gamma`", id="gamma"),
        pytest.param(
            {"kind": "one-cycle", "warmup": 1.0}, r"ScheduleConfig.`warmup`", id="warmup"
        ),
        pytest.param({"kind": "restarts", "period": 0.0}, r"ScheduleConfig.`period`", id="period"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Schedule(**kwargs)


def test_registry_builds_by_name_and_lists_the_known_names():
    assert make_strategy("schedule", kind="step") == Schedule(kind="step")
    with pytest.raises(
        ValueError, match="Unknown strategy 'hyperband'; known strategies: constant, .*schedule"
    ):
        make_strategy("hyperband")
