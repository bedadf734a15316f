from __future__ import annotations

import math

import pytest

from trainers import SCHEDULES, Constant, Cosine, CosineRestarts, OneCycle, Step, make_schedule


def test_constant():
    assert [Constant(lr=0.3)(e, 10) for e in (0, 5, 9.9)] == [0.3, 0.3, 0.3]


def test_sgd_sa_scheduled_sgd_is_0_1_then_0_01_then_0_001():
    s = Step(lr=0.1)  # defaults: milestones (0.3, 0.7), gamma 0.1
    lrs = [s(e, 100) for e in range(100)]
    assert lrs[:30] == [0.1] * 30
    assert all(math.isclose(v, 0.01) for v in lrs[30:70])
    assert all(math.isclose(v, 0.001) for v in lrs[70:])


def test_cosine_goes_from_lr_to_final_lr():
    s = Cosine(lr=1.0, final_lr=0.1)
    assert s(0, 10) == 1.0 and math.isclose(s(5, 10), 0.55) and math.isclose(s(10, 10), 0.1)


def test_one_cycle_warms_up_linearly_holds_then_decays():
    s = OneCycle(lr=2.0, warmup=0.1, hold=0.1)
    assert s(0, 100) == 0.0 and math.isclose(s(5, 100), 1.0) and s(15, 100) == 2.0
    assert math.isclose(s(60, 100), 1.0) and math.isclose(s(100, 100), 0.0, abs_tol=1e-12)


def test_restarts_reset_the_lr_at_each_period():
    s = CosineRestarts(lr=1.0, period=0.25)
    assert s.restart_epochs(20) == [5.0, 10.0, 15.0]
    for start in (0, 5, 10, 15):
        assert s(start, 20) == 1.0
        assert s(start + 4.99, 20) < 0.01


def test_restarts_with_growing_periods():
    s = CosineRestarts(lr=1.0, period=0.1, mult=2.0)
    assert s.restart_epochs(70) == [7.0, 21.0, 49.0]


@pytest.mark.parametrize("kind", SCHEDULES)
def test_make_schedule_builds_every_kind(kind):
    assert make_schedule(kind, 0.1)(0.0, 10) >= 0.0


@pytest.mark.parametrize(
    ("kind", "options", "match"),
    [
        pytest.param("linear", {}, "Unknown schedule 'linear'.*constant, step", id="unknown"),
        pytest.param("step", {"gamma": 0.0}, r"Step.`gamma` must be in \(0.0, inf\)", id="gamma"),
        pytest.param("step", {"milestones": (0.7, 0.3)}, "increasing", id="milestones"),
        pytest.param("step", {"milestones": (1.5,)}, r"milestones.*\(0.0, 1.0\)", id="ms-range"),
        pytest.param("one-cycle", {"warmup": 0.6, "hold": 0.5}, "warmup.*hold.*< 1", id="wh"),
        pytest.param("cosine", {"final_lr": 1.0}, r"final_lr.*\[0.0, 0.1\]", id="final"),
        pytest.param("restarts", {"mult": 0.5}, r"mult.*\[1.0, inf\)", id="mult"),
        pytest.param("cosine", {"period": 0.5}, r"takes the options \['final_lr'\]", id="opt"),
    ],
)
def test_bad_schedules(kind, options, match):
    with pytest.raises(ValueError, match=match):
        make_schedule(kind, 0.1, **options)
