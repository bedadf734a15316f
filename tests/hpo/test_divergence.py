from __future__ import annotations

import math

import pytest
import torch

import hpo
from hpo import DivergenceMonitor, DivergenceRule
from strategies import Constant


class BreakAfter(hpo.BaseStrategy):
    """Train at a good lr, then zero every weight after ``epochs_before`` epochs: the network
    predicts one class (chance) with a finite, unexploded loss of log(classes)."""

    name = "break-after"
    config_class = hpo.Budget  # any frozen dataclass: the strategy has no options of its own

    def __init__(self, epochs_before: int) -> None:
        self.config = hpo.Budget(epochs=epochs_before)
        self.epochs_before = epochs_before

    def run(self, trainer, budget, *, callbacks=()):
        with hpo.Recorder(self, trainer, budget, callbacks) as rec:
            while not rec.done:
                if rec.history.epochs == self.epochs_before:
                    with torch.no_grad():
                        for p in trainer.model.parameters():
                            p.zero_()
                    rec.end_epoch(trainer.train_epoch(0.0))
                else:
                    rec.end_epoch(trainer.train_epoch(0.02))
        return rec.history


def test_back_at_chance_after_learning_for_three_epochs_is_diverged(boring_data):
    task = hpo.testing.boring_task(epochs=12)
    history = hpo.run(task, BreakAfter(6), tracking=False, data=boring_data)
    assert history.status == "diverged" and history.diverged_epoch == 9  # epochs 7, 8, 9
    assert "back at chance for 3 epochs" in history.diverged_reason
    assert history.epochs == 9 and history.best_epoch <= 6
    chance = boring_data.chance_accuracy("val")
    assert history.best.val_score >= chance + 0.25 * (1 - chance)  # it had learned
    assert math.isfinite(history.records[-1].val_loss)  # finite: only rule 3 could fire


def test_a_slow_start_at_chance_is_not_a_divergence(boring_data):
    task = hpo.testing.boring_task(epochs=3)
    history = hpo.run(task, Constant(lr=1e-9), tracking=False, data=boring_data)
    assert history.status == "finished"
    assert max(history.column("val_acc")) < 0.3  # it never learned


def test_the_monitor_leaves_the_trajectory_untouched(boring_data):
    task = hpo.testing.boring_task(epochs=2)
    alone = task.build_trainer(boring_data)
    for _ in range(2):
        alone.train_epoch(0.02)
    watched = task.build_trainer(boring_data)
    DivergenceMonitor(watched)  # evaluates the initial weights
    hpo.run(task, Constant(lr=0.02), tracking=False, data=boring_data)
    for _ in range(2):
        watched.train_epoch(0.02)
    for a, b in zip(alone.model.parameters(), watched.model.parameters()):
        assert torch.equal(a, b)


def test_a_dip_to_chance_that_recovers_is_not_a_divergence(boring_data):
    monitor = DivergenceMonitor(hpo.testing.boring_task().build_trainer(boring_data))
    at_chance = {"train_loss": 1.0, "val_loss": 1.0, "score": monitor.chance}
    assert monitor.check(train_loss=1.0, val_loss=1.0, score=0.9) is None
    assert monitor.check(**at_chance) is None and monitor.check(**at_chance) is None
    assert monitor.check(train_loss=1.0, val_loss=1.0, score=0.8) is None  # recovered
    assert monitor.epochs_at_chance == 0 and monitor.best == 0.9
    assert monitor.check(**at_chance) is None and monitor.check(**at_chance) is None
    assert "chance for 3 epochs" in monitor.check(**at_chance)
    monitor.reset()
    assert all(monitor.check(**at_chance) is None for _ in range(5))  # never learned


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"loss_factor": 1.0}, r"DivergenceRule.`loss_factor`", id="factor"),
        pytest.param({"chance_margin": -0.1}, r"DivergenceRule.`chance_margin`", id="margin"),
        pytest.param({"learned": 0.0}, r"DivergenceRule.`learned`", id="learned"),
        pytest.param({"chance_epochs": 0}, r"DivergenceRule.`chance_epochs`", id="epochs"),
    ],
)
def test_bad_rule(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DivergenceRule(**kwargs)


def test_a_rule_can_be_switched_off():
    rule = DivergenceRule(loss_factor=math.inf, learned=1.0)
    assert (
        rule.reason(
            train_loss=1e30,
            val_loss=1e30,
            score=0.1,
            best=0.99,
            initial_loss=2.3,
            chance=0.1,
            ideal=1.0,
        )
        is None
    )
