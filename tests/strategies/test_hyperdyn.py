from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

import hpo
from hpo.testing import StrategyTestSuite
from strategies import EpochBO, Hyperdyn, HyperdynConfig, TimeDecayKernel
from strategies._hyperdyn import build_gp, check_accuracy_trend, keep_log_probability
from strategies._hyperdyn._model import suggest


class TestHyperdyn(StrategyTestSuite):
    @pytest.fixture(params=["robust", "paper"])
    def strategy(self, request):
        return Hyperdyn(preset=request.param, n_random_start=2, num_restarts=2, raw_samples=16)


class TestEpochBO(StrategyTestSuite):
    @pytest.fixture
    def strategy(self):
        return EpochBO(n_random_start=2, num_restarts=2, raw_samples=16, lr_max=0.1)


# ---------------------------------------------------------------------------------------------
# the time kernel and the GP
# ---------------------------------------------------------------------------------------------


def test_time_kernel_is_one_on_the_diagonal_and_one_third_one_epoch_apart():
    k = TimeDecayKernel()  # alpha = 1, beta = 1/2
    t = torch.arange(6, dtype=torch.float64).unsqueeze(-1)
    K = k(t).to_dense()
    assert torch.allclose(K.diagonal(), torch.ones(6, dtype=torch.float64))
    assert K[0, 1].item() == pytest.approx(1 / 3) and K[2, 3].item() == pytest.approx(1 / 3)
    assert K[0, 4].item() == pytest.approx(0.5 / 4.5)
    assert torch.equal(k(t, diag=True), torch.ones(6, dtype=torch.float64))


def test_time_scale_keeps_beta_in_epochs():
    t = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    raw = TimeDecayKernel()(t).to_dense()
    scaled = TimeDecayKernel(time_scale=30.0)(t / 30.0).to_dense()
    assert torch.allclose(raw, scaled)


def test_time_kernel_parameters_are_fixed_unless_learnable():
    fixed, free = TimeDecayKernel(), TimeDecayKernel(alpha=2.0, beta=0.3, learnable=True)
    assert not fixed.raw_alpha.requires_grad and free.raw_beta.requires_grad
    assert free.alpha.item() == pytest.approx(2.0) and free.beta.item() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="must be > 0"):
        TimeDecayKernel(beta=0.0)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_the_product_kernel_matrix_is_positive_semidefinite(d):
    g = torch.Generator().manual_seed(d)
    X = torch.rand(40, d + 1, generator=g, dtype=torch.float64)
    X[:, d] = torch.randint(0, 20, (40,), generator=g).double() / 20
    Y = torch.randn(40, 1, generator=g, dtype=torch.float64)
    model = build_gp(X, Y, time_scale=20.0)
    K = model.covar_module(X).to_dense().detach()
    assert torch.allclose(K, K.T)
    assert torch.linalg.eigvalsh(K).min().item() > -1e-8


def synthetic_observations(n: int, d: int, epochs: int = 20, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d + 1, generator=g, dtype=torch.float64)
    t = torch.randint(0, 10, (n,), generator=g).double()
    X[:, d] = t / epochs
    Y = (0.05 * torch.exp(-t / 5) * (1 - (X[:, 0] - 0.6).abs())).unsqueeze(-1)
    return X, Y + 0.005 * torch.randn(n, 1, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("d", [1, 2])
def test_the_ei_argmax_lies_in_the_bounds_with_the_epoch_fixed(d):
    from botorch.acquisition import LogExpectedImprovement

    X, Y = synthetic_observations(30, d)
    t_unit = 10 / 20
    s = suggest(X, Y, t_unit, time_scale=20.0, best_f=float(Y.max()), seed=0)
    assert s.x.shape == (1, d) and bool(((s.x >= 0) & (s.x <= 1)).all())
    # the optimiser's point is (close to) the best of a dense grid at the same epoch
    model = build_gp(X, Y, time_scale=20.0)
    model.load_state_dict(s.state)
    model.eval()
    acq = LogExpectedImprovement(model, best_f=float(Y.max()))
    axes = [torch.linspace(0, 1, 41, dtype=torch.float64)] * d
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    points = torch.cat([grid, torch.full((len(grid), 1), t_unit, dtype=torch.float64)], -1)
    with torch.no_grad():
        values = acq(points.unsqueeze(1))
    assert s.log_ei >= values.max().item() - 1e-3


def test_q_suggestions_are_distinct_points():
    X, Y = synthetic_observations(20, 1)
    s = suggest(
        X,
        Y,
        0.5,
        time_scale=20.0,
        best_f=float(Y.max()),
        q=3,
        seed=0,
        num_restarts=2,
        raw_samples=32,
    )
    assert s.x.shape == (3, 1) and len({round(v, 6) for v in s.x.reshape(-1).tolist()}) == 3


# ---------------------------------------------------------------------------------------------
# CheckAccuracyTrend
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ys", "window", "unit", "expected"),
    [
        pytest.param([0.80, 0.81, 0.79], 4, "percent", -1.01, id="fell-1pt-vs-oldest"),
        pytest.param([0.5, 0.6, 0.7, 0.8, 0.9, 0.85], 4, "percent", 0.0, id="rose-clipped"),
        pytest.param([0.5, 0.6, 0.7, 0.8, 0.9, 0.58], 4, "percent", -2.01, id="window-4"),
        pytest.param([0.80, 0.79], 1, "fraction", -0.02, id="fraction"),
        pytest.param([0.7], 4, "percent", -0.01, id="one-epoch"),
    ],
)
def test_keep_probability_follows_the_formula(ys, window, unit, expected):
    lp = keep_log_probability(ys, window=window, temperature=1.0, offset=0.01, unit=unit)
    assert lp == pytest.approx(expected)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_keep_frequency_over_many_seeded_draws_matches_the_probability(temperature):
    ys = [0.80, 0.82, 0.81, 0.80, 0.795]  # down 0.5 points over the window of 4
    lp = keep_log_probability(ys, window=4, temperature=temperature, offset=0.01)
    p = math.exp(-0.5 / temperature - 0.01)
    rng = np.random.default_rng(0)
    n = 40_000
    kept = sum(check_accuracy_trend(lp, float(rng.random())) for _ in range(n))
    assert kept / n == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n))


def test_an_infinite_offset_never_keeps():
    lp = keep_log_probability([0.1, 0.5, 0.9], window=4, temperature=1.0, offset=math.inf)
    assert lp == -math.inf
    assert not any(check_accuracy_trend(lp, u) for u in (0.0, 1e-12, 0.5, 0.999))


def test_epoch_bo_switches_every_epoch():
    task = hpo.testing.boring_task(epochs=4)
    h = hpo.run(task, EpochBO(n_random_start=2, lr_max=0.1), tracking=False)
    assert h.column("kept")[1:] == [0.0, 0.0, 0.0]
    assert h.column("keep_probability")[1:] == [0.0, 0.0, 0.0]
    assert h.column("lr")[1:] == h.column("bo_suggestion")[1:]


# ---------------------------------------------------------------------------------------------
# the strategy
# ---------------------------------------------------------------------------------------------


def test_batched_branches_match_branches_trained_one_after_another(boring_data):
    task = hpo.testing.boring_task(model="mlp", optimizer="momentum", epochs=4)
    runs = {}
    for batched in (False, True):
        strategy = Hyperdyn(n_random_start=3, q=2, lr_max=0.3, batched=batched)
        runs[batched] = strategy.run(task.build_trainer(boring_data), task.budget())
    seq, bat = runs[False], runs[True]
    assert [d.reason for d in bat.all_decisions][:3] == [d.reason for d in seq.all_decisions][:3]
    assert bat.column("kept") == seq.column("kept")  # the same branches kept
    # the outcomes differ by float rounding, and the BO suggestion (a continuous optimum of the
    # acquisition over them) with them
    assert bat.column("lr") == pytest.approx(seq.column("lr"), rel=1e-4)
    assert bat.column("val_acc") == pytest.approx(seq.column("val_acc"), abs=1e-9)
    assert bat.column("spent_steps") == seq.column("spent_steps")


class WeightsAtEpochEnd(hpo.Callback):
    def __init__(self) -> None:
        self.weights: list[list[torch.Tensor]] = []

    def on_run_start(self, history, trainer):
        self.trainer = trainer

    def on_epoch_end(self, history, record):
        self.weights.append([p.detach().clone() for p in self.trainer.model.parameters()])


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("offset", [0.01, math.inf])
def test_the_kept_branch_is_bit_identical_to_training_it_alone(boring_data, offset, batched):
    """One after another, bit for bit; batched, to float rounding (``trainers.Population``)."""
    task = hpo.testing.boring_task(epochs=4, optimizer="momentum")
    spy = WeightsAtEpochEnd()
    strategy = Hyperdyn(
        n_random_start=3,
        offset=offset,
        hyperparameters=("lr", "momentum"),
        lr_max=0.3,
        batched=batched,
    )
    h = strategy.run(task.build_trainer(boring_data), task.budget(), callbacks=[spy])
    alone = task.build_trainer(boring_data)
    for record, weights in zip(h.records, spy.weights):
        alone.set_hyperparameters(momentum=record.metrics["hp_momentum"])
        alone.train_epoch(record.lr)
        if batched:
            torch.testing.assert_close(
                list(alone.model.parameters()), weights, rtol=1e-4, atol=1e-6
            )
        else:
            assert all(torch.equal(a, b) for a, b in zip(alone.model.parameters(), weights))
    assert alone.evaluate().score == pytest.approx(
        h.final.val_score, abs=0 if not batched else 1e-9
    )


def test_same_seed_same_trajectory_other_seed_other_trajectory(boring_data):
    task = hpo.testing.boring_task(epochs=4)

    def lrs(seed):
        s = Hyperdyn(n_random_start=3, seed=seed, offset=math.inf)
        return s.run(task.build_trainer(boring_data), task.budget()).column("lr")

    assert lrs(0) == lrs(0)
    assert lrs(0) != lrs(1)


@pytest.mark.parametrize(
    ("preset", "score"),
    [
        ("paper", lambda d: d.details["val_score"]),  # Algorithm 3: the most accurate point
        ("robust", lambda d: -d.details["val_loss"]),  # the lowest validation loss
    ],
)
def test_random_start_keeps_the_best_of_k_and_pays_for_all(preset, score):
    task = hpo.testing.boring_task(epochs=1)
    h = hpo.run(task, Hyperdyn(preset=preset, n_random_start=4), tracking=False)
    starts = h.records[0].decisions
    assert len(starts) == 4 and all("random start" in d.reason for d in starts)
    assert h.records[0].lr == max(starts, key=score).lr
    assert h.final.spent_steps == 4 * h.final.steps


def test_q_suggestions_train_one_branch_each():
    task = hpo.testing.boring_task(epochs=3)
    h = hpo.run(
        task, Hyperdyn(n_random_start=2, q=2, num_restarts=2, raw_samples=16), tracking=False
    )
    spe = h.final.steps // 3
    assert h.final.spent_steps == (2 + 3 * 2) * spe


def test_temperature_can_change_with_the_epoch():
    task = hpo.testing.boring_task(epochs=5)
    h = hpo.run(
        task, Hyperdyn(n_random_start=2, temperature=4.0, temperature_final=0.25), tracking=False
    )
    temps = h.column("temperature")[1:]
    assert temps[0] == pytest.approx(4.0) and temps[-1] == pytest.approx(0.25)
    assert all(a > b for a, b in zip(temps, temps[1:]))


def test_warm_started_gp_still_suggests_inside_the_space():
    task = hpo.testing.boring_task(epochs=4)
    h = hpo.run(
        task,
        Hyperdyn(n_random_start=2, warm_start_gp=True, lr_min=1e-3, lr_max=0.1),
        tracking=False,
    )
    assert all(1e-3 <= lr <= 0.1 for lr in h.column("bo_suggestion")[1:])


def test_adam_betas_are_tuned_and_applied():
    task = hpo.testing.boring_task(epochs=3)
    s = Hyperdyn(n_random_start=2, hyperparameters=("lr", "beta1", "beta2"), offset=math.inf)
    h = hpo.run(task, s, tracking=False)
    for r in h.records:
        assert 0.0 <= r.metrics["hp_beta1"] <= 0.99 and 0.9 <= r.metrics["hp_beta2"] <= 0.9999


def test_tuning_momentum_needs_an_optimizer_with_momentum():
    with pytest.raises(ValueError, match="cannot tune 'momentum'.*Adam"):
        hpo.run(
            hpo.testing.boring_task(), Hyperdyn(hyperparameters=("lr", "momentum")), tracking=False
        )


def test_logs_the_decision_signals_and_the_lr_trajectory_plot(tracking_uri):
    cb = hpo.MLflowCallback(tracking_uri=tracking_uri, run_name="hyperdyn")
    hpo.run(hpo.testing.boring_task(epochs=3), Hyperdyn(n_random_start=2), tracking=cb)
    client = MlflowClient(tracking_uri)
    run = client.get_run(cb.run_id)
    for key in (
        "bo_suggestion",
        "bo_ei",
        "bo_log_ei",
        "kept",
        "keep_probability",
        "val_acc_current_branch",
        "val_acc_suggestion_branch",
        "gp_fit_seconds",
    ):
        assert len(client.get_metric_history(cb.run_id, key)) == 2, key
    plots = {f.path for f in client.list_artifacts(cb.run_id, "plots")}
    assert plots == {"plots/history.png", "plots/lr_trajectory.png"}
    assert run.data.params["strategy.offset"] == "0.01"


def test_needs_an_epoch_budget():
    trainer = hpo.testing.boring_task().build_trainer()
    with pytest.raises(ValueError, match="Hyperdyn needs `Budget.epochs`"):
        Hyperdyn().run(trainer, hpo.Budget(steps=100))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"hyperparameters": ("momentum",)}, ValueError, "must start with 'lr'", id="no-lr"
        ),
        pytest.param(
            {"hyperparameters": ("lr", "gamma")},
            ValueError,
            r"HyperdynConfig.`hyperparameters` must be one of",
            id="unknown",
        ),
        pytest.param(
            {"hyperparameters": ("lr", "beta1")},
            ValueError,
            "'beta1' and 'beta2' together",
            id="beta",
        ),
        pytest.param(
            {"lr_min": 0.0},
            ValueError,
            r"HyperdynConfig.`lr_min` must be in \(0.0, inf\)",
            id="lr-min",
        ),
        pytest.param(
            {"lr_min": 1.0, "lr_max": 0.1}, ValueError, "`lr_min` must be < `lr_max`", id="order"
        ),
        pytest.param(
            {"momentum_bounds": (0.5, 0.2)}, ValueError, "momentum_bounds.*low < high", id="bounds"
        ),
        pytest.param(
            {"n_random_start": 0},
            ValueError,
            r"HyperdynConfig.`n_random_start` must be in \[1, inf\)",
            id="k",
        ),
        pytest.param({"window": 0}, ValueError, r"HyperdynConfig.`window`", id="window"),
        pytest.param(
            {"temperature": 0.0},
            ValueError,
            r"HyperdynConfig.`temperature` must be in \(0.0, inf\)",
            id="T",
        ),
        pytest.param(
            {"offset": -0.1},
            ValueError,
            r"HyperdynConfig.`offset` must be in \[0.0, inf\]",
            id="offset",
        ),
        pytest.param(
            {"accuracy_unit": "ratio"},
            ValueError,
            r"`accuracy_unit` must be one of \{'percent', 'fraction'\}",
            id="unit",
        ),
        pytest.param({"q": 0}, ValueError, r"HyperdynConfig.`q`", id="q"),
        pytest.param(
            {"incumbent": "best"}, ValueError, r"`incumbent` must be one of", id="incumbent"
        ),
        pytest.param(
            {"switch_to": "best"}, ValueError, r"`switch_to` must be one of", id="switch"
        ),
        pytest.param({"window": 2.5}, TypeError, r"`window` must be an int", id="window-type"),
    ],
)
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        Hyperdyn(**kwargs)


def test_usable_by_name_and_from_an_optuna_objective(boring_data):
    import optuna

    from strategies import make_strategy

    assert isinstance(make_strategy("hyperdyn"), Hyperdyn)
    assert make_strategy("epoch-bo").config.offset == math.inf
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    task = hpo.testing.boring_task(epochs=2)
    study.optimize(
        hpo.objective(task, Hyperdyn.suggest, tracking=False, data=boring_data), n_trials=1
    )
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert set(study.trials[0].params) == {"window", "temperature", "offset", "n_random_start"}


# ---------------------------------------------------------------------------------------------
# the presets: the paper's behaviour kept, the failures the issue measured fixed
# ---------------------------------------------------------------------------------------------

DATA = Path(__file__).parent / "data"


def test_the_paper_preset_reproduces_the_previous_behaviour_bit_for_bit():
    """Recorded with the commit before the robust defaults landed (Hyperdyn() was the paper),
    when branches were trained one after another: ``batched=False`` is that path, bit for bit
    (the batched path agrees to float rounding: ``test_the_kept_branch_is_bit_identical...``)."""
    golden = json.loads((DATA / "paper_preset_runs.json").read_text())["hyperdyn"]
    task = hpo.testing.boring_task(epochs=4, optimizer="momentum")
    strategy = Hyperdyn(
        preset="paper", n_random_start=3, hyperparameters=("lr", "momentum"), batched=False
    )
    h = hpo.run(task, strategy, tracking=False)
    for column in ("lr", "val_acc", "val_loss", "train_loss", "spent_steps"):
        assert h.column(column) == golden[column], column
    assert [d.reason for d in h.all_decisions] == golden["decisions"]


def test_presets_fill_only_what_is_not_given():
    paper = HyperdynConfig(preset="paper")
    assert (paper.lr_min, paper.lr_max, paper.outcome, paper.patience) == (
        1e-4,
        1.0,
        "metric",
        None,
    )
    robust = HyperdynConfig()
    assert (robust.lr_min, robust.outcome, robust.switch_to) == (None, "loss", "better-branch")
    assert HyperdynConfig(preset="paper", patience=3).patience == 3
    assert HyperdynConfig(**asdict(robust)) == robust  # the round trip keeps the values


def test_random_start_at_chance_picks_by_the_loss_not_by_the_first_tie():
    # the issue: every Random-Start point still at chance after one epoch, the tie broken
    # arbitrarily (the first), the slowest lr kept
    task = hpo.testing.boring_task(epochs=1)
    options = {"n_random_start": 4, "lr_min": 1e-7, "lr_max": 1e-5, "seed": 2}
    paper = hpo.run(task, Hyperdyn(preset="paper", **options), tracking=False)
    starts = paper.records[0].decisions
    assert len({d.details["val_score"] for d in starts}) == 1  # all tied at chance
    lowest_loss = min(starts, key=lambda d: d.details["val_loss"])
    assert lowest_loss is not starts[0]
    assert paper.records[0].lr == starts[0].lr  # the paper: the first of the ties
    robust = hpo.run(task, Hyperdyn(**options), tracking=False)
    assert robust.records[0].lr == lowest_loss.lr  # the tie-breaker: the lowest loss


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_an_lr_that_lost_clearly_for_patience_epochs_is_dropped_whatever_the_trend(patience):
    # the issue: a slow lr kept by the trend test (accuracy rising slowly, p = 0.99) while the
    # suggestion's branch did better epoch after epoch. T = 1e9, b = 0: the test always keeps
    task = hpo.testing.boring_task(epochs=8)
    options = {"n_random_start": 1, "lr_min": 1e-5, "lr_max": 0.05, "seed": 2}
    stuck = hpo.run(
        task, Hyperdyn(temperature=1e9, offset=0.0, patience=None, **options), tracking=False
    )
    assert set(stuck.column("lr")) == {stuck.records[0].lr}  # kept the slow lr throughout
    assert stuck.records[-1].metrics["lost_epochs"] == 7  # while losing every epoch
    h = hpo.run(
        task, Hyperdyn(temperature=1e9, offset=0.0, patience=patience, **options), tracking=False
    )
    records = h.records[1:]
    assert all(r.metrics["trend_keep"] == 1.0 for r in records)
    for r in records:  # switched exactly when the streak of clearly lost epochs reached it
        assert (r.metrics["kept"] == 0.0) == (r.metrics["lost_epochs"] >= patience)
    switch = next(r for r in records if r.metrics["kept"] == 0.0)
    assert switch.epoch == 1 + patience
    assert f"lost {patience} epochs in a row" in switch.decisions[-1].reason
    assert max(h.column("val_acc")) > max(stuck.column("val_acc"))


def test_a_winning_suggestion_on_the_upper_bound_widens_the_range():
    # a range whose top is below the good lrs: the suggestions creep up to the bound and win
    task = hpo.testing.boring_task(epochs=8)
    options = {"n_random_start": 2, "lr_min": 3e-4, "lr_max": 2e-3, "offset": math.inf}
    h = hpo.run(task, Hyperdyn(**options), tracking=False)
    widened = [d for d in h.all_decisions if "upper bound: lr range widened" in d.reason]
    assert len(widened) == 1 and widened[0].lr == pytest.approx(2e-3)
    assert h.info["lr_range"] == pytest.approx([3e-4, 2e-3 * math.sqrt(10.0)])
    highs = h.column("lr_range_high")[1:]
    assert highs[0] == pytest.approx(2e-3) and highs[-1] == pytest.approx(h.info["lr_range"][1])
    fixed = hpo.run(task, Hyperdyn(widen=False, **options), tracking=False)
    assert fixed.info["lr_range"] == pytest.approx([3e-4, 2e-3])
    assert not any("widened" in d.reason for d in fixed.all_decisions)


def test_the_lr_range_is_relative_to_the_optimizers_lr_unless_given(boring_data):
    for optimizer, default in (("adam", 0.02), ("sgd", 0.3)):
        task = hpo.testing.boring_task(epochs=2, optimizer=optimizer)
        h = Hyperdyn(n_random_start=2, widen=False).run(
            task.build_trainer(boring_data), task.budget()
        )
        assert h.info["lr_range"] == pytest.approx([default / 100, default * 10])
    with pytest.raises(ValueError, match=r"lr range \[0.2, 0.2\] is empty"):
        Hyperdyn(lr_min=0.2, lr_max=None).run(
            hpo.testing.boring_task(epochs=2).build_trainer(boring_data), hpo.Budget(epochs=2)
        )
