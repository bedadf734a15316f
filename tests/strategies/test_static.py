from __future__ import annotations

import math

import pytest

import hpo
from hpo.testing import StrategyTestSuite
from strategies import Static


class TestStatic(StrategyTestSuite):
    @pytest.fixture
    def strategy(self):
        return Static(sampler="grid", n_trials=3, lr_min=1e-4, lr_max=1.0)


@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes", "random", "grid"])
def test_every_sampler_searches_and_keeps_the_best_trial(sampler):
    task = hpo.testing.boring_task(epochs=2)
    h = hpo.run(task, Static(sampler=sampler, n_trials=3), tracking=False)
    trials = h.info["trials"]
    assert len(trials) == 3
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(complete, key=lambda t: t["best_val_score"])
    assert h.info["best_trial"]["number"] == best["number"]
    assert max(h.column("val_acc")) == best["best_val_score"]
    assert set(h.column("lr")) == {best["lr"]}
    # the honest cost: every trial's epochs, paid before the answer is known
    assert h.final.spent_steps == sum(t["epochs"] for t in trials) * (h.final.steps // 2)


def test_grid_is_log_spaced_over_the_range():
    task = hpo.testing.boring_task(epochs=1)
    h = hpo.run(task, Static(sampler="grid", n_trials=3, lr_min=1e-4, lr_max=1.0), tracking=False)
    assert sorted(t["lr"] for t in h.info["trials"]) == pytest.approx([1e-4, 1e-2, 1.0])


def test_can_choose_the_optimizer_too():
    task = hpo.testing.boring_task(epochs=1)
    s = Static(sampler="random", n_trials=4, optimizers=("sgd", "adam"), lr_min=1e-3, lr_max=0.1)
    h = hpo.run(task, s, tracking=False)
    assert {t["optimizer"] for t in h.info["trials"]} <= {"sgd", "adam"}
    assert h.info["best_trial"]["optimizer"] in ("sgd", "adam")


def test_every_trial_starts_from_the_same_weights(boring_data):
    task = hpo.testing.boring_task(epochs=1)
    h = Static(sampler="grid", n_trials=2, lr_max=0.1).run(
        task.build_trainer(boring_data), task.budget()
    )
    for t in h.info["trials"]:
        alone = task.build_trainer(boring_data)
        alone.train_epoch(t["lr"])
        assert alone.evaluate().score == t["best_val_score"]


@pytest.mark.parametrize(
    ("optimizer", "lr_max"),
    [
        pytest.param("sgd", 1e8, id="non-finite"),
        pytest.param("adam", 1e6, id="finite-explosion"),
    ],
)
def test_diverged_trials_never_win(optimizer, lr_max):
    task = hpo.testing.boring_task(epochs=2, optimizer=optimizer)
    static = Static(sampler="grid", n_trials=2, lr_min=0.01, lr_max=lr_max)
    h = hpo.run(task, static, tracking=False)
    large = max(h.info["trials"], key=lambda t: t["lr"])
    assert (large["state"], large["epochs"]) == ("FAIL", 1)  # stopped at the epoch it diverged
    assert h.status == "finished" and h.info["best_trial"]["lr"] == pytest.approx(0.01)


def test_hyperband_pruning_stops_poor_trials_early():
    task = hpo.testing.boring_task(epochs=4)
    # the study's name is fixed, so Hyperband's brackets (and what it prunes) are too
    static = Static(sampler="grid", n_trials=9, pruner="hyperband", lr_min=1e-4, lr_max=1.0)
    h = hpo.run(task, static, tracking=False)
    epochs = [t["epochs"] for t in h.info["trials"]]
    assert any(t["state"] == "PRUNED" for t in h.info["trials"])
    assert min(epochs) < 4 and math.isfinite(h.best.val_score)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param(
            {"sampler": "smac"},
            r"StaticConfig.`sampler` must be one of \{'tpe', 'gp'",
            id="sampler",
        ),
        pytest.param({"n_trials": 0}, r"StaticConfig.`n_trials`", id="n"),
        pytest.param(
            {"optimizers": ("lion",)}, r"StaticConfig.`optimizers` must be one of", id="opt"
        ),
        pytest.param(
            {"pruner": "asha"}, r"StaticConfig.`pruner` must be one of \{'none'", id="pruner"
        ),
        pytest.param({"sampler": "grid", "optimizers": ("sgd",)}, "grid.*lr only", id="grid-opt"),
        pytest.param({"lr_min": 1.0, "lr_max": 0.1}, "`lr_min` must be < `lr_max`", id="order"),
        pytest.param(
            {"schedule": "linear"}, r"StaticConfig.`schedule` must be one of", id="schedule"
        ),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Static(**kwargs)


def test_a_schedule_searches_its_peak_lr_and_replays_the_same_run(boring_data):
    from strategies import Schedule

    task = hpo.testing.boring_task(epochs=3)
    static = Static(sampler="grid", n_trials=2, lr_min=0.003, lr_max=0.03, schedule="one-cycle")
    h = hpo.run(task, static, tracking=False, data=boring_data)
    peak = h.info["best_trial"]["lr"]
    alone = hpo.run(task, Schedule(kind="one-cycle", lr=peak), tracking=False, data=boring_data)
    assert h.column("val_acc") == alone.column("val_acc")
    assert h.column("lr") == pytest.approx(alone.column("lr"))
    assert max(h.column("lr")) < peak  # the lr followed the schedule, not the peak throughout
