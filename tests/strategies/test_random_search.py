from __future__ import annotations

import pytest
import torch

import hpo
from hpo.testing import StrategyTestSuite
from strategies import RandomSearch


class TestRandomSearch(StrategyTestSuite):
    @pytest.fixture
    def strategy(self):
        return RandomSearch(n_candidates=3, lr_min=1e-3, lr_max=0.1)


def test_keeps_the_best_branch_and_pays_for_every_branch():
    task = hpo.testing.boring_task(epochs=3)
    h = hpo.run(task, RandomSearch(n_candidates=4, lr_min=1e-4, lr_max=1.0), tracking=False)
    for record in h.records:
        (decision,) = record.decisions
        tried = decision.details["val_scores"]
        assert record.val_score == max(a for a in tried if a is not None)
        assert decision.lr in decision.details["candidates"] and record.lr == decision.lr
        assert all(1e-4 <= lr <= 1.0 for lr in decision.details["candidates"])
    assert h.final.spent_steps == 4 * h.final.steps


def test_the_kept_branch_is_the_branch_trained_alone(boring_data):
    """Continuing from the chosen branch equals training that lr from the same start."""
    task = hpo.testing.boring_task(epochs=1)
    strategy = RandomSearch(n_candidates=3, batched=False)  # bit for bit: one after another
    h = strategy.run(task.build_trainer(boring_data), task.budget())
    alone = task.build_trainer(boring_data)
    result = alone.train_epoch(h.records[0].lr)
    assert result.loss == h.records[0].train_loss
    assert alone.evaluate().score == h.records[0].val_score


def test_batched_branches_match_branches_trained_one_after_another(boring_data):
    task = hpo.testing.boring_task(model="mlp", optimizer="momentum", epochs=3)
    runs = {}
    for batched in (False, True):
        trainer = task.build_trainer(boring_data)
        strategy = RandomSearch(n_candidates=4, lr_min=1e-3, lr_max=0.3, batched=batched)
        runs[batched] = (strategy.run(trainer, task.budget()), trainer)
    (seq, t_seq), (bat, t_bat) = runs[False], runs[True]
    assert [r.lr for r in bat.records] == [r.lr for r in seq.records]  # the same branches won
    for a, b in zip(seq.records, bat.records):
        assert b.val_score == pytest.approx(a.val_score, abs=1e-9)
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)
        assert (b.steps, b.spent_steps) == (a.steps, a.spent_steps)
    for p, q in zip(t_seq.model.parameters(), t_bat.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"n_candidates": 0},
            ValueError,
            r"RandomSearchConfig.`n_candidates` must be in \[1, inf\)",
            id="n",
        ),
        pytest.param(
            {"lr_min": 0.0},
            ValueError,
            r"RandomSearchConfig.`lr_min` must be in \(0.0, inf\)",
            id="lr-min",
        ),
        pytest.param(
            {"lr_min": 0.1, "lr_max": 0.01}, ValueError, r"`lr_min` must be < `lr_max`", id="order"
        ),
        pytest.param({"seed": -1}, ValueError, r"RandomSearchConfig.`seed`", id="seed"),
        pytest.param(
            {"n_candidates": 2.0}, TypeError, r"`n_candidates` must be an int", id="type"
        ),
        pytest.param({"batched": "yes"}, TypeError, r"`batched` must be", id="batched"),
    ],
)
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        RandomSearch(**kwargs)
