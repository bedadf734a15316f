from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainers import LOSSES, METRICS, get_loss, get_metric

OUT = torch.tensor([[2.0, 0.1, 0.3], [0.1, 0.2, 3.0], [0.5, 0.6, 0.1], [1.0, 0.0, 0.0]])
LABELS = torch.tensor([0, 2, 0, 0])
PRED = torch.tensor([[1.0], [2.5], [2.0], [5.0]])
TARGET = torch.tensor([1.5, 2.0, 2.0, 4.0])


@pytest.mark.parametrize(
    ("name", "outputs", "targets", "expected", "maximize"),
    [
        ("accuracy", OUT, LABELS, 3 / 4, True),
        ("error", OUT, LABELS, 1 / 4, False),
        ("mse", PRED, TARGET, (0.25 + 0.25 + 0 + 1) / 4, False),
        ("mae", PRED, TARGET, (0.5 + 0.5 + 0 + 1) / 4, False),
        (
            "r2",
            PRED,
            TARGET,
            1 - 1.5 / float(((TARGET - TARGET.mean()) ** 2).sum()),
            True,
        ),
    ],
)
def test_metrics_compute_their_formula_in_their_direction(
    name, outputs, targets, expected, maximize
):
    metric = get_metric(name)
    assert metric(outputs, targets) == pytest.approx(expected)
    assert metric.maximize is maximize
    assert metric.signed(1.0) == (1.0 if maximize else -1.0)


def test_accuracy_is_the_exact_count_over_n():
    out = torch.randn(400, 10, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (400,), generator=torch.Generator().manual_seed(1))
    count = int((out.argmax(1) == y).sum())
    assert get_metric("accuracy")(out, y) == count / 400  # bit for bit, as before


def test_chance_and_ideal_scores():
    y = torch.tensor([0, 0, 0, 1])
    assert get_metric("accuracy").chance_score(y) == 0.75
    assert get_metric("error").chance_score(y) == 0.25
    t = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert get_metric("mse").chance_score(t) == pytest.approx(np.var([1, 2, 3, 4]))
    assert get_metric("r2").chance_score(t) == 0.0 and get_metric("r2").ideal == 1.0
    assert math.isnan(get_metric("loss").chance_score(t))


def test_regression_outputs_of_width_one_line_up_with_flat_targets():
    # `n x 1` against `n` must not broadcast to `n x n`
    assert float(get_loss("mse")(PRED, TARGET)) == pytest.approx(0.375)
    assert float(get_loss("mse").total(PRED, TARGET)) == pytest.approx(1.5)


def test_a_callable_metric_needs_and_keeps_its_direction():
    metric = get_metric(lambda o, t: float((o - t).abs().max()), direction="minimize")
    assert not metric.maximize and metric(PRED.squeeze(1), TARGET) == 1.0
    assert metric.key == "lambda"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(lambda: get_metric("f1"), ValueError, r"Unknown metric 'f1'", id="name"),
        pytest.param(
            lambda: get_metric(lambda o, t: 0.0), ValueError, r"needs a `direction`", id="dir"
        ),
        pytest.param(
            lambda: get_metric("mse", direction="maximize"),
            ValueError,
            r"'mse' is minimized",
            id="conflict",
        ),
        pytest.param(
            lambda: get_metric("mse", direction="up"), ValueError, r"`direction`", id="bad-dir"
        ),
        pytest.param(lambda: get_metric(3), TypeError, r"`metric` must be a name", id="type"),
        pytest.param(lambda: get_loss("huber"), ValueError, r"Unknown loss 'huber'", id="loss"),
        pytest.param(
            lambda: get_loss(lambda o: o), TypeError, r"`loss` must take \(outputs", id="arity"
        ),
    ],
)
def test_bad_losses_and_metrics(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_the_registries_list_what_the_readme_promises():
    assert set(METRICS) == {"accuracy", "error", "loss", "mse", "mae", "r2"}
    assert set(LOSSES) == {"cross_entropy", "mse", "l1", "smooth_l1"}
