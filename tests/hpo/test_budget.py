from __future__ import annotations

import pytest

import hpo


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({}, ValueError, "at least one of", id="empty"),
        pytest.param(
            {"epochs": 0}, ValueError, r"Budget.`epochs` must be in \[1, 1000000\]", id="epochs"
        ),
        pytest.param({"steps": -5}, ValueError, r"Budget.`steps`", id="steps"),
        pytest.param(
            {"seconds": 0.0}, ValueError, r"Budget.`seconds` must be in \(0.0, inf\)", id="seconds"
        ),
        pytest.param(
            {"examples": 1.5}, TypeError, r"Budget.`examples` must be an int", id="examples"
        ),
    ],
)
def test_bad_budgets(kwargs, error, match):
    with pytest.raises(error, match=match):
        hpo.Budget(**kwargs)


@pytest.mark.parametrize(
    ("budget", "reached"),
    [
        (hpo.Budget(epochs=3), False),
        (hpo.Budget(epochs=2), True),
        (hpo.Budget(steps=100), True),
        (hpo.Budget(steps=101), False),
        (hpo.Budget(examples=10_000), False),
        (hpo.Budget(seconds=1.0), True),
    ],
)
def test_reached_when_any_limit_is(budget, reached):
    assert budget.reached(epochs=2, spent_steps=100, spent_examples=5000, seconds=1.5) is reached
