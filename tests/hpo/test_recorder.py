from __future__ import annotations

import pytest
import torch

import hpo
from strategies import Constant


class ScoresOnTest(hpo.Callback):
    """Records the test accuracy of the weights after every epoch."""

    def __init__(self) -> None:
        self.test_score: list[float] = []

    def on_run_start(self, history, trainer):
        self.trainer = trainer

    def on_epoch_end(self, history, record):
        self.test_score.append(self.trainer.test().score)


def test_best_weights_are_scored_on_test(boring_data):
    task = hpo.testing.boring_task(epochs=6)
    trainer = task.build_trainer(boring_data)
    scores = ScoresOnTest()
    # a large lr makes validation accuracy bounce, so the best epoch is rarely the last
    history = Constant(lr=0.05).run(trainer, task.budget(), callbacks=[scores])
    best = max(range(6), key=lambda i: (history.records[i].val_score, -i))
    assert history.best_epoch == best + 1
    assert history.best_test_score == scores.test_score[best]
    assert history.test_score == scores.test_score[-1]


def test_decisions_are_attached_to_the_next_epoch(boring_data):
    trainer = hpo.testing.boring_task().build_trainer(boring_data)
    seen: list[str] = []

    class Seen(hpo.Callback):
        def on_decision(self, history, decision):
            seen.append(decision.reason)

    with hpo.Recorder(Constant(), trainer, hpo.Budget(epochs=2), [Seen()]) as rec:
        rec.decide(0.1, True, "before any epoch")
        rec.end_epoch(trainer.train_epoch(0.1))
        rec.decide(0.2, False, "after epoch 1", p=0.3)
        rec.end_epoch(trainer.train_epoch(0.1))
        rec.decide(0.3, True, "after the last epoch")
    h = rec.history
    assert seen == ["before any epoch", "after epoch 1", "after the last epoch"]
    assert [d.reason for d in h.records[0].decisions] == ["before any epoch"]
    assert h.records[1].decisions[0].details == {"p": 0.3} and h.records[1].decisions[0].epoch == 1
    assert h.records[1].decisions[-1].reason == "after the last epoch"


def test_scoring_the_best_weights_leaves_the_final_weights_in_place(boring_data):
    trainer = hpo.testing.boring_task().build_trainer(boring_data)
    with hpo.Recorder(Constant(), trainer, hpo.Budget(epochs=3)) as rec:
        while not rec.done:
            rec.end_epoch(trainer.train_epoch(0.05))
        final = [p.detach().clone() for p in trainer.model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(final, trainer.model.parameters()))


def test_a_step_budget_stops_at_the_first_epoch_boundary_past_it(boring_data):
    trainer = hpo.testing.boring_task().build_trainer(boring_data)
    spe = trainer.steps_per_epoch
    history = Constant(lr=0.01).run(trainer, hpo.Budget(steps=spe + 1))
    assert history.epochs == 2 and history.final.spent_steps == 2 * spe


def test_every_callback_gets_on_run_end_when_the_strategy_raises(boring_data):
    ended: list[str] = []

    class End(hpo.Callback):
        def on_run_end(self, history):
            ended.append(history.status)

    trainer = hpo.testing.boring_task().build_trainer(boring_data)
    with pytest.raises(KeyError):
        with hpo.Recorder(Constant(), trainer, hpo.Budget(epochs=2), [End(), End()]):
            raise KeyError("x")
    assert ended == ["failed", "failed"]
