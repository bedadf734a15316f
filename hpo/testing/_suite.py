"""``StrategyTestSuite``: the conformance tests every strategy passes (as Optuna's sampler
tests and torch's ``OptimizerInfo``).

Subclass it in ``tests/strategies/test_<name>.py`` and supply a ``strategy`` fixture::

    class TestConstant(StrategyTestSuite):
        @pytest.fixture
        def strategy(self):
            return Constant(lr=0.05)
"""

from __future__ import annotations

import copy
import json
import math
import pathlib
import pickle
from dataclasses import asdict
from typing import Any

import pytest
import torch

import hpo
from hpo.testing._tasks import boring_task, regression_task

#: The suite's standard runs: (suite class, pickled strategy, pickled task) -> History.
_STANDARD_RUNS: dict[tuple[type, bytes, bytes], hpo.History] = {}


class StrategyTestSuite:
    """Checks the budget, the History, seeded determinism, pickling and the config round trip,
    on a classification task (``boring_task``: accuracy, maximised) and on a regression task
    (``regression_task``: a user's own model and data, MSE, minimised)."""

    #: Epochs of the runs the suite makes; strategies with warm-up phases may raise it.
    epochs: int = 3
    #: Changes to ``boring_task`` for every run of the suite (e.g. ``{"optimizer": "sgd"}``).
    task_options: dict[str, Any] = {}

    @pytest.fixture
    def strategy(self) -> Any:  # pragma: no cover - subclasses override
        raise NotImplementedError("Subclasses of StrategyTestSuite supply a `strategy` fixture.")

    @pytest.fixture(autouse=True, params=["classification", "regression"])
    def _problem(self, request: pytest.FixtureRequest) -> None:
        self._kind = request.param

    def _task(self) -> hpo.Task:
        make = regression_task if getattr(self, "_kind", "") == "regression" else boring_task
        return make(**{"epochs": self.epochs, **self.task_options})

    def _run(self, strategy: Any) -> hpo.History:
        """A fresh run of ``strategy`` on the suite's task."""
        return hpo.run(self._task(), strategy, tracking=False)

    def _standard_run(self, strategy: Any) -> hpo.History:
        """The suite's run of ``strategy`` (as ``_run``), made once per suite class, strategy
        config and task and shared by the tests that only read it: each gets a copy (the
        figures, which no test reads, are shared)."""
        task = self._task()
        key = (type(self), pickle.dumps(strategy), pickle.dumps(task))
        history = _STANDARD_RUNS.get(key)
        if history is None:
            history = _STANDARD_RUNS[key] = hpo.run(task, strategy, tracking=False)
        return copy.deepcopy(history, {id(history.figures): history.figures})

    def test_is_a_strategy(self, strategy: Any) -> None:
        assert isinstance(strategy, hpo.Strategy)
        assert strategy.name == strategy.name.lower() and " " not in strategy.name

    def test_respects_epoch_budget_and_records_each_epoch(self, strategy: Any) -> None:
        history = self._standard_run(strategy)
        assert history.status == "finished"
        assert [r.epoch for r in history.records] == list(range(1, self.epochs + 1))
        steps = [r.steps for r in history.records]
        assert all(b > a for a, b in zip(steps, steps[1:])), "trajectory steps must grow"
        spent = [r.spent_steps for r in history.records]
        assert all(s >= t for s, t in zip(spent, steps)), "spent work includes the trajectory"
        assert math.isfinite(history.test_score)

    def test_a_step_budget_cuts_the_spent_work(self, strategy: Any) -> None:
        full = self._standard_run(strategy)
        trainer = self._task().build_trainer()
        limit = trainer.steps_per_epoch
        cut = strategy.run(trainer, hpo.Budget(epochs=self.epochs, steps=limit))
        # Limits are checked where the strategy can stop (epoch, trial or round boundaries):
        # the run spends at least the limit and less than the run without it.
        assert cut.records, "at least one epoch is recorded"
        assert limit <= cut.final.spent_steps < full.final.spent_steps

    def test_same_seed_same_history(self, strategy: Any) -> None:
        a, b = self._standard_run(strategy), self._run(pickle.loads(pickle.dumps(strategy)))
        assert a.column("lr") == b.column("lr")
        assert a.column("val_score") == b.column("val_score")
        assert a.column("train_loss") == b.column("train_loss")

    def test_learns(self, strategy: Any) -> None:
        initial = self._task().build_trainer().evaluate().score
        history = self._standard_run(strategy)
        scores = history.column("val_score")
        if history.maximize:
            assert max(scores) > initial + 0.05, "accuracy rises"
        else:
            assert min(scores) < 0.95 * initial, "the error falls"

    def test_pickles(self, strategy: Any) -> None:
        clone = pickle.loads(pickle.dumps(strategy))
        assert type(clone) is type(strategy) and clone.config == strategy.config

    def test_config_round_trip(self, strategy: Any) -> None:
        config = strategy.config
        assert type(config)(**asdict(config)) == config

    def test_resumed_run_ends_as_an_uninterrupted_one(
        self, strategy: Any, tmp_path: pathlib.Path
    ) -> None:
        """Killed twice (at its second decision, then at the end of epoch 2) and resumed from
        its checkpoints, the run ends with the weights and History (wall times aside) of the
        run that never stopped; saving checkpoints changes nothing."""
        if not getattr(strategy, "checkpointing", False):
            with pytest.raises(ValueError, match="does not save its state"):
                hpo.run(self._task(), strategy, tracking=False, checkpoint_dir=tmp_path / "x")
            return
        whole, cut = tmp_path / "whole", tmp_path / "cut"
        reference = hpo.run(self._task(), strategy, tracking=False, checkpoint_dir=whole)
        assert _timeless(reference) == _timeless(self._standard_run(strategy))
        for crash in (_Crash(decision=2), _Crash(epoch=2)):
            try:
                hpo.run(
                    self._task(),
                    strategy,
                    tracking=False,
                    callbacks=[crash],
                    checkpoint_dir=cut,
                    resume=True,
                )
            except _Crashed:
                pass
        resumed = hpo.run(self._task(), strategy, tracking=False, checkpoint_dir=cut, resume=True)
        assert _timeless(resumed) == _timeless(reference)
        a = torch.load(whole / "checkpoint.pt", weights_only=True)["trainer"]["model"]
        b = torch.load(cut / "checkpoint.pt", weights_only=True)["trainer"]["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def test_history_json_round_trip(self, strategy: Any) -> None:
        history = self._standard_run(strategy)
        assert hpo.History.from_json(history.to_json()) == history


class _Crashed(Exception):
    """What ``_Crash`` raises (a test's stand-in for a crash)."""


class _Crash(hpo.Callback):
    """Raises at the ``decision``-th decision or at the end of epoch ``epoch`` of a run."""

    def __init__(self, *, decision: int | None = None, epoch: int | None = None) -> None:
        self.decision, self.epoch, self.seen = decision, epoch, 0

    def on_decision(self, history: hpo.History, decision: hpo.Decision) -> None:
        self.seen += 1
        if self.seen == self.decision:
            raise _Crashed(f"decision {self.seen}")

    def on_epoch_end(self, history: hpo.History, record: hpo.EpochRecord) -> None:
        if record.epoch == self.epoch:
            raise _Crashed(f"epoch {record.epoch}")


def _timeless(history: hpo.History) -> str:
    """The History as JSON without what depends on the clock (wall times, ``*_seconds``)."""
    data = history.to_dict()
    for record in data["records"]:
        record["wall_time"] = 0.0
        record["metrics"] = {
            k: v for k, v in record["metrics"].items() if not k.endswith("_seconds")
        }
    return json.dumps(data, sort_keys=True, default=str)
