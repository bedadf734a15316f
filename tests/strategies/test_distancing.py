from __future__ import annotations

import math

import pytest
import torch
from mlflow import MlflowClient

import hpo
from hpo.testing import StrategyTestSuite
from strategies import Constant, DistancePenalty, Distancing, Schedule, ensemble_accuracy


class TestDistancing(StrategyTestSuite):
    epochs = 4

    @pytest.fixture(params=["restarts", "every"])
    def strategy(self, request):
        if request.param == "restarts":
            return Distancing(Schedule(kind="restarts", lr=0.02, period=0.5), s=1.0, sigma=2.0)
        return Distancing(Constant(lr=0.02), s=1.0, sigma=2.0, checkpoints="every", every=1)


# ---------------------------------------------------------------------------------------------
# the penalty
# ---------------------------------------------------------------------------------------------


def formula(params, checkpoints, s, sigma, nus):
    """s * mean_c exp(-d_c^2 / (2 sigma^2)), d_c^2 = sum_i nu_i (theta_i - theta_c,i)^2."""
    total = 0.0
    for ckpt, nu in zip(checkpoints, nus):
        d2 = sum((nu_l * (p - c) ** 2).sum() for p, c, nu_l in zip(params, ckpt, nu))
        total = total + torch.exp(-d2 / (2 * sigma**2))
    return s * total / len(checkpoints)


@pytest.mark.parametrize("distance", ["l2", "layer"])
def test_penalty_and_its_gradient_match_the_formula_and_autograd(distance):
    torch.manual_seed(0)
    params = [
        torch.nn.Parameter(torch.randn(3, 2, dtype=torch.float64)),
        torch.nn.Parameter(torch.randn(4, dtype=torch.float64)),
    ]
    penalty = DistancePenalty(
        params, strength=0.7, width=1.5, distance=distance, max_checkpoints=3
    )
    checkpoints, nus = [], []
    for _ in range(3):
        penalty.add_checkpoint()
        checkpoints.append([p.detach().clone() for p in params])
        nus.append(
            [1.0 / float(p.detach().pow(2).sum()) if distance == "layer" else 1.0 for p in params]
        )
        with torch.no_grad():
            for p in params:
                p.add_(0.4 * torch.randn_like(p))
    expected = formula(params, checkpoints, 0.7, 1.5, nus)
    assert float(penalty.value()) == pytest.approx(float(expected.detach()), rel=1e-12)
    expected.backward()
    reference = [p.grad.clone() for p in params]
    for p in params:
        p.grad = torch.zeros_like(p)
    penalty.add_gradient()
    for got, want in zip((p.grad for p in params), reference):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-14)
    d = penalty.distances()
    assert d.shape == (3,) and float(d[-1]) > 0


def test_at_distance_zero_the_penalty_is_s_and_the_oldest_checkpoint_is_dropped():
    params = [torch.nn.Parameter(torch.ones(5))]
    penalty = DistancePenalty(params, strength=2.0, width=1.0, max_checkpoints=2)
    assert float(penalty.value()) == 0.0 and penalty.count == 0
    for value in (1.0, 2.0, 3.0):
        with torch.no_grad():
            params[0].fill_(value)
        penalty.add_checkpoint()
    assert penalty.count == 2 and float(penalty.checkpoints[0, 0]) == 2.0
    assert float(penalty.distances()[-1]) == 0.0


# ---------------------------------------------------------------------------------------------
# training with it
# ---------------------------------------------------------------------------------------------


def test_with_s_zero_training_is_bit_identical_to_plain_training(boring_data):
    task = hpo.testing.boring_task(epochs=6)
    inner = Schedule(kind="restarts", lr=0.02, period=1 / 3)
    plain = task.build_trainer(boring_data)
    h_plain = inner.run(plain, task.budget())
    wrapped = task.build_trainer(boring_data)
    h_wrapped = Distancing(inner, s=0.0, sigma=1.0).run(wrapped, task.budget())
    assert h_wrapped.column("train_loss") == h_plain.column("train_loss")
    assert h_wrapped.column("val_acc") == h_plain.column("val_acc")
    assert all(
        torch.equal(a, b) for a, b in zip(plain.model.parameters(), wrapped.model.parameters())
    )
    assert h_wrapped.info["checkpoint_epochs"] == [2, 4]  # the checkpoints were still taken


def test_distancing_pushes_the_weights_away_from_the_checkpoint(boring_data):
    task = hpo.testing.boring_task(epochs=6)
    far = {}
    for s in (0.0, 2.0):
        strategy = Distancing(Constant(lr=0.02), s=s, sigma=3.0, checkpoints="epochs", at=(2,))
        h = strategy.run(task.build_trainer(boring_data), task.budget())
        far[s] = h.column("distance_c0")[-1]
    assert far[2.0] > far[0.0] > 0


def test_checkpoints_follow_the_restarts_and_the_maximum_kept(boring_data):
    task = hpo.testing.boring_task(epochs=8)
    strategy = Distancing(
        Schedule(kind="restarts", lr=0.02, period=0.25), s=0.5, max_checkpoints=2
    )
    trainer = task.build_trainer(boring_data)
    h = strategy.run(trainer, task.budget())
    assert h.info["checkpoint_epochs"] == [2, 4, 6]
    assert h.column("checkpoints") == [0, 1, 1, 2, 2, 2, 2, 2]
    assert trainer.penalty is None  # the hook is removed after the run
    ens = h.info["ensemble"]
    assert ens["members"] == 3  # the 2 kept checkpoints and the final weights
    assert 0.0 <= ens["val_score"] <= 1.0 and ens["best_single_val_score"] == max(
        ens["single_val_scores"]
    )


def test_restart_checkpoints_need_a_restarts_schedule():
    trainer = hpo.testing.boring_task().build_trainer()
    with pytest.raises(ValueError, match="needs an inner Schedule\\(kind='restarts'\\)"):
        Distancing(Constant(lr=0.01)).run(trainer, hpo.Budget(epochs=3))


def test_the_ensemble_averages_probabilities_not_logits_or_votes():
    labels = torch.tensor([0])
    # one extreme member: averaged logits follow it (class 1), averaged probabilities do not
    logits = [torch.tensor([[0.0, 20.0]])] + [torch.tensor([[2.0, 0.0]])] * 3
    probs = [torch.softmax(z, 1) for z in logits]
    assert int(torch.stack(logits).mean(0).argmax(1)) == 1
    assert ensemble_accuracy(probs, labels) == 1.0
    # one confident member against two mildly wrong ones: the vote says 1, the average says 0
    logits = [torch.tensor([[5.0, 0.0]])] + [torch.tensor([[0.0, 0.5]])] * 2
    probs = [torch.softmax(z, 1) for z in logits]
    votes = [int(p.argmax(1)) for p in probs]
    assert max(set(votes), key=votes.count) == 1
    assert ensemble_accuracy(probs, labels) == 1.0
    assert ensemble_accuracy(probs[1:], labels) == 0.0


def test_logs_distances_penalty_and_ensemble_to_mlflow(tracking_uri):
    cb = hpo.MLflowCallback(tracking_uri=tracking_uri, run_name="distancing")
    strategy = Distancing(Schedule(kind="restarts", lr=0.02, period=0.5), s=0.5)
    hpo.run(hpo.testing.boring_task(epochs=4), strategy, tracking=cb)
    client = MlflowClient(tracking_uri)
    run = client.get_run(cb.run_id)
    assert run.data.params["strategy.inner"] == "schedule"
    assert run.data.params["strategy.inner.kind"] == "restarts"
    assert run.data.tags["hpo.strategy"] == "distancing"
    steps = sorted(m.step for m in client.get_metric_history(cb.run_id, "distance_c0"))
    assert steps == [2, 3, 4]  # from the first checkpoint (end of epoch 2) on
    assert len(client.get_metric_history(cb.run_id, "penalty")) == 4
    assert "ensemble_val_acc" in run.data.metrics and "ensemble_test_acc" in run.data.metrics
    plots = {f.path for f in client.list_artifacts(cb.run_id, "plots")}
    assert "plots/distancing.png" in plots


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"s": -1.0}, ValueError, r"DistancingConfig.`s` must be in \[0.0, inf\)", id="s"
        ),
        pytest.param(
            {"sigma": 0.0},
            ValueError,
            r"DistancingConfig.`sigma` must be in \(0.0, inf\)",
            id="sigma",
        ),
        pytest.param(
            {"checkpoints": "best"},
            ValueError,
            r"`checkpoints` must be one of \{'restarts', 'every', 'epochs'\}",
            id="when",
        ),
        pytest.param({"checkpoints": "epochs"}, ValueError, r"needs the epochs in `at`", id="at"),
        pytest.param({"every": 0}, ValueError, r"DistancingConfig.`every`", id="every"),
        pytest.param(
            {"max_checkpoints": 0}, ValueError, r"DistancingConfig.`max_checkpoints`", id="max"
        ),
        pytest.param(
            {"distance": "cosine"},
            ValueError,
            r"`distance` must be one of \{'l2', 'layer'\}",
            id="distance",
        ),
        pytest.param(
            {"at": (0,)}, ValueError, r"DistancingConfig.`at` must be in \[1, inf\)", id="at-0"
        ),
    ],
)
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        Distancing(**kwargs)


def test_cannot_wrap_itself():
    with pytest.raises(TypeError, match="cannot wrap another Distancing"):
        Distancing(Distancing())


def test_no_nan_in_distances_after_checkpoints(boring_data):
    task = hpo.testing.boring_task(epochs=3)
    h = Distancing(Constant(lr=0.02), s=1.0, checkpoints="every", every=1).run(
        task.build_trainer(boring_data), task.budget()
    )
    assert all(math.isfinite(v) for v in h.column("distance_c0"))
