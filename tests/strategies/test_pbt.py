from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hpo
from hpo.testing import StrategyTestSuite
from strategies import PBT
from strategies._pbt import _TrainerMember


class TestPBT(StrategyTestSuite):
    @pytest.fixture
    def strategy(self):
        return PBT(population=3, interval=1, lr_min=1e-3, lr_max=0.1)


def test_runs_on_a_nos_optimizer(boring_data):
    task = hpo.testing.boring_task(optimizer="nos:opt6", epochs=2)
    history = hpo.run(task, PBT(population=2, interval=1), tracking=False, data=boring_data)
    assert history.status == "finished" and history.epochs == 2


def test_exploit_copies_weights_optimizer_state_and_hyperparameters_exactly(boring_data):
    task = hpo.testing.boring_task(optimizer="momentum")
    a = task.build_trainer(boring_data)
    b = a.clone(seed=7, reinitialize=True)
    a.train_epoch(0.05)
    b.train_epoch(0.01)
    pbt = PBT(population=2, quantile=0.5, resample_probability=0.0, factors=(2.0,))
    rng = np.random.default_rng(0)
    events = pbt.exploit_and_explore(
        [_TrainerMember(a), _TrainerMember(b)], [0.9, 0.1], rng, {"lr": (1e-4, 1.0, True)}
    )
    assert [(e.member, e.source) for e in events] == [(1, 0)]
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
        assert torch.equal(
            a.optimizer.state[pa]["momentum_buffer"], b.optimizer.state[pb]["momentum_buffer"]
        )
    assert b.lr == pytest.approx(2.0 * a.lr)  # explored: the source's lr times the factor


def test_the_bottom_quantile_copies_from_the_top_quantile():
    class Dummy:
        def __init__(self, i):
            self.i, self.hp, self.copied = i, {"lr": 0.1}, None

        def hyperparameters(self):
            return dict(self.hp)

        def set_hyperparameters(self, values):
            self.hp = dict(values)

        def copy_from(self, other):
            self.copied = other.i

    members = [Dummy(i) for i in range(8)]
    scores = [0.5, 0.1, 0.9, math.nan, 0.7, 0.3, 0.8, 0.2]
    events = PBT(population=8).exploit_and_explore(
        members, scores, np.random.default_rng(0), {"lr": (1e-4, 1.0, True)}
    )
    # ceil(8 * 0.25) = 2: the NaN member and the 0.1 member copy from {0.9, 0.8}
    assert sorted(e.member for e in events) == [1, 3]
    assert all(e.source in (2, 6) for e in events)
    for e in events:
        lr = members[e.member].hp["lr"]
        assert "lr" in e.resampled or lr == pytest.approx(0.12) or lr == pytest.approx(0.08)


def test_pbt_beats_both_members_trained_alone_on_the_papers_toy_problem():
    """Jaderberg et al. (2017), Fig. 2: maximise Q = 1.2 - theta0^2 - theta1^2 with two
    workers whose hyperparameters h weight a surrogate 1.2 - h0 theta0^2 - h1 theta1^2."""

    class Worker:
        def __init__(self, h):
            self.theta = np.array([0.9, 0.9])
            self.h = np.array(h, dtype=float)

        def step(self, eta=0.01):
            self.theta = self.theta - eta * 2 * self.h * self.theta  # ascent on the surrogate

        def q(self):
            return 1.2 - float(np.sum(self.theta**2))

        def hyperparameters(self):
            return {"h0": float(self.h[0]), "h1": float(self.h[1])}

        def set_hyperparameters(self, values):
            self.h = np.array([values["h0"], values["h1"]])

        def copy_from(self, other):
            self.theta, self.h = other.theta.copy(), other.h.copy()

    def train(workers, pbt=None, steps=400, interval=4):
        rng = np.random.default_rng(0)
        space = {"h0": (0.0, 1.0, False), "h1": (0.0, 1.0, False)}
        for t in range(1, steps + 1):
            for w in workers:
                w.step()
            if pbt is not None and t % interval == 0:
                pbt.exploit_and_explore(workers, [w.q() for w in workers], rng, space)
        return max(w.q() for w in workers)

    alone = [train([Worker(h)]) for h in ((1, 0), (0, 1))]
    together = train([Worker((1, 0)), Worker((0, 1))], PBT(population=2))
    assert max(alone) < 0.40  # each alone leaves one coordinate at 0.9: Q <= 1.2 - 0.81
    assert together > 1.15 and together > max(alone)


def test_history_records_lineage_and_the_population_cost():
    task = hpo.testing.boring_task(epochs=4)
    h = hpo.run(task, PBT(population=4, interval=2), tracking=False)
    lineage = h.info["lineage"]
    assert lineage and all(ev["epoch"] in (2,) for ev in lineage)  # epoch 4 is the last
    assert len(lineage) == 1  # ceil(4 * 0.25) = 1 member exploits per round
    assert h.final.spent_steps == 4 * h.final.steps
    assert len(h.info["members"]) == 4
    assert all(f"member_{i}_lr" in h.records[0].metrics for i in range(4))
    decisions = [d for d in h.all_decisions if "<- member" in d.reason]
    assert len(decisions) == len(lineage)


def test_batched_population_matches_members_trained_one_after_another(boring_data):
    task = hpo.testing.boring_task(model="mlp", optimizer="momentum", epochs=4)
    runs = {}
    for batched in (False, True):
        trainer = task.build_trainer(boring_data)
        strategy = PBT(population=4, interval=1, lr_min=1e-3, lr_max=0.3, batched=batched)
        runs[batched] = strategy.run(trainer, task.budget())
    seq, bat = runs[False], runs[True]
    key = lambda ev: (ev["epoch"], ev["member"], ev["source"])  # noqa: E731
    assert [key(e) for e in bat.info["lineage"]] == [key(e) for e in seq.info["lineage"]]
    for a, b in zip(seq.info["members"], bat.info["members"]):
        assert b["lr"] == pytest.approx(a["lr"], rel=1e-12)
    for a, b in zip(seq.records, bat.records):
        assert b.val_score == pytest.approx(a.val_score, abs=1e-9)
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)
        assert (b.steps, b.spent_steps) == (a.steps, a.spent_steps)
        for i in range(4):
            name = f"member_{i}_val_acc"
            assert b.metrics[name] == pytest.approx(a.metrics[name], abs=1e-9)


def test_a_population_that_all_diverges_ends_the_run_without_a_warning():
    task = hpo.testing.boring_task(epochs=2)
    h = hpo.run(task, PBT(population=2, lr_min=1e8, lr_max=1e9), tracking=False)
    assert h.status == "diverged" and h.epochs == 1
    metrics = h.records[0].metrics
    assert metrics["population_diverged"] == 2.0
    assert math.isnan(metrics["population_val_acc_mean"])
    assert math.isnan(metrics["population_val_acc_worst"])


def test_momentum_is_tuned_only_where_the_optimizer_has_it():
    with pytest.raises(ValueError, match="PBT cannot tune 'momentum'.*Adam"):
        hpo.run(hpo.testing.boring_task(), PBT(hyperparameters=("lr", "momentum")), tracking=False)
    task = hpo.testing.boring_task(optimizer="momentum", epochs=2)
    h = hpo.run(
        task, PBT(population=2, interval=1, hyperparameters=("lr", "momentum")), tracking=False
    )
    assert all("momentum" in m for m in h.info["members"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"population": 1}, r"PBTConfig.`population` must be in \[2, inf\)", id="pop"),
        pytest.param({"interval": 0}, r"PBTConfig.`interval`", id="interval"),
        pytest.param({"quantile": 0.6}, r"PBTConfig.`quantile` must be in \(0.0, 0.5\]", id="q"),
        pytest.param({"resample_probability": 1.5}, r"PBTConfig.`resample_probability`", id="p"),
        pytest.param({"factors": ()}, r"PBTConfig.`factors` must not be empty", id="factors"),
        pytest.param({"hyperparameters": ("momentum",)}, r"must include 'lr'", id="no-lr"),
        pytest.param(
            {"hyperparameters": ("lr", "beta1")},
            r"PBTConfig.`hyperparameters` must be one of",
            id="hp",
        ),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PBT(**kwargs)


def test_batched_must_be_a_bool():
    with pytest.raises(TypeError, match=r"PBTConfig.`batched` must be of type bool"):
        PBT(batched=1)
