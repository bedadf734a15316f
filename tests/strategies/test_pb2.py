from __future__ import annotations

import math

import numpy as np
import pytest

import hpo
from hpo.testing import StrategyTestSuite
from strategies import PB2, PBT
from strategies._pb2 import GPBandit


class TestPB2(StrategyTestSuite):
    @pytest.fixture
    def strategy(self):
        return PB2(population=3, interval=1, lr_min=1e-3, lr_max=0.1)


class DriftingWorker:
    """A member whose score rises each round by ``1 - 8 (h - h*(t))^2``: the best value h*
    drifts from 0.2 to 0.8 over the run, so a good explore step must follow it."""

    def __init__(self, h: float) -> None:
        self.h, self.score = h, 0.0

    def step(self, t: float, rng: np.random.Generator) -> None:
        self.score += 1.0 - 8.0 * (self.h - optimum(t)) ** 2 + 0.02 * rng.normal()

    def hyperparameters(self) -> dict[str, float]:
        return {"h": self.h}

    def set_hyperparameters(self, values) -> None:
        self.h = float(values["h"])

    def copy_from(self, other: DriftingWorker) -> None:
        self.h, self.score = other.h, other.score


def optimum(t: float) -> float:
    return 0.2 + 0.6 * t


def chosen_distance(strategy: PBT, seed: int, rounds: int = 12) -> float:
    """Mean |h - h*| of the values explore chose, over the second half of the run."""
    rng = np.random.default_rng(seed)
    space = {"h": (0.0, 1.0, False)}
    workers = [DriftingWorker(float(h)) for h in rng.uniform(size=6)]
    explorer = strategy.make_explorer(space)
    distances = []
    for r in range(1, rounds + 1):
        t = r / rounds
        for w in workers:
            w.step(t, rng)
        scores = [w.score for w in workers]
        if explorer is not None:
            explorer.observe(r, scores)
        events = strategy.exploit_and_explore(workers, scores, rng, space, explorer=explorer)
        if explorer is not None:
            explorer.restart(r, [w.hyperparameters() for w in workers], [w.score for w in workers])
        if r > rounds // 2:  # the next round's optimum is what a choice should aim at
            distances += [abs(e.hyperparameters["h"] - optimum((r + 1) / rounds)) for e in events]
    return float(np.mean(distances))


def test_the_gp_bandit_tracks_a_drifting_optimum_better_than_random_perturbation():
    pb2 = [chosen_distance(PB2(population=6, seed=s), s) for s in range(3)]
    pbt = [chosen_distance(PBT(population=6, seed=s), s) for s in range(3)]
    assert np.mean(pb2) < 0.75 * np.mean(pbt), (pb2, pbt)


def test_the_batch_rule_removes_the_uncertainty_at_a_rounds_earlier_choices():
    """GP-BUCB: once a value is chosen in a round, the uncertainty UCB weighs there for the
    round's next choice is (nearly) gone, while the mean is unchanged."""
    space = {"h": (0.0, 1.0, False)}
    bandit = GPBandit(PB2(population=4).config, space)
    rng = np.random.default_rng(0)
    for r in range(1, 6):
        hs = rng.uniform(size=4)
        bandit.restart(r - 1, [{"h": h} for h in hs], [0.0] * 4)
        bandit.observe(r, (1 - 4 * (hs - 0.5) ** 2 + 0.05 * rng.normal(size=4)).tolist())
    first, _ = bandit.explore({"h": 0.5}, 0.0, rng)
    probe = [[first["h"]], [0.05]]  # the choice, and a point far from it
    mean_after, std_after = bandit.posterior(probe, 0.0)
    pending, bandit.pending = bandit.pending, []
    mean_before, std_before = bandit.posterior(probe, 0.0)
    bandit.pending = pending
    assert std_after[0] < 0.5 * std_before[0]  # at the choice: the uncertainty is spent
    assert std_after[1] == pytest.approx(std_before[1], rel=0.2)  # far away: little change
    assert mean_after == pytest.approx(mean_before, abs=1e-6)


def test_history_records_lineage_the_population_cost_and_the_choices():
    task = hpo.testing.boring_task(epochs=4)
    h = hpo.run(task, PB2(population=4, interval=1), tracking=False, progress=False)
    lineage = h.info["lineage"]
    assert len(lineage) == 3  # one member exploits at each of epochs 1..3
    assert lineage[0]["resampled"] == ("lr",)  # no observations yet: drawn at random
    assert all(ev["resampled"] == () for ev in lineage[1:])  # then the GP chooses
    assert h.final.spent_steps == 4 * h.final.steps
    for ev in lineage:
        assert 1e-4 <= ev["hyperparameters"]["lr"] <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"epsilon": 0.9}, r"PB2Config.`epsilon` must be in", id="epsilon"),
        pytest.param({"ucb_c2": 0.0}, r"PB2Config.`ucb_c2`", id="c2"),
        pytest.param({"window": 1}, r"PB2Config.`window`", id="window"),
        pytest.param({"population": 1}, r"PB2Config.`population`", id="population"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PB2(**kwargs)


def test_pb2_has_no_random_perturbation_options():
    with pytest.raises(TypeError, match="unknown option"):
        PB2(factors=(1.2, 0.8))
    assert math.isclose(PB2().config.quantile, 0.25)
