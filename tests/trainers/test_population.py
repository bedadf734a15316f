"""The batched population against the same members trained one after another."""

from __future__ import annotations

import logging
import math

import pytest
import torch

import hpo
from trainers import (
    Augment,
    Population,
    SequentialPopulation,
    Trainer,
    _population,
    batching_obstacle,
    make_population,
)

# Agreement of the batched path with the sequential one after one or two epochs: the update is
# torch's, operation for operation, but the batched forward/backward sums in another order
# (grouped convolution, batched matmul), so the two differ by float rounding (~1e-7 relative per
# step), which training then amplifies exactly as it amplifies any 1e-7 perturbation of the
# weights. The cases below are ones where two epochs stay well inside these bounds.
RTOL, ATOL = 1e-4, 1e-6


def members(
    data,
    *,
    k=4,
    model="mlp",
    optimizer="momentum",
    device="cpu",
    reinitialize=True,
    weight_decay=None,
    **model_options,
):
    task = hpo.testing.boring_task(
        model=model,
        optimizer=optimizer,
        device=device,
        model_options=model_options,
        weight_decay=weight_decay,
    )
    first = task.build_trainer(data)
    return [first] + [first.clone(seed=s, reinitialize=reinitialize) for s in range(1, k)]


def tolerance(device) -> dict[str, float]:
    """CPU: float rounding. CUDA: cuDNN's convolutions use TF32 by default (10-bit mantissas)."""
    return {"rtol": RTOL, "atol": ATOL} if str(device) == "cpu" else {"rtol": 1e-2, "atol": 1e-4}


def assert_close_trainers(a: Trainer, b: Trainer) -> None:
    tol = tolerance(a.device)
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        if x.is_floating_point():
            torch.testing.assert_close(x, y, **tol)
        else:
            assert torch.equal(x, y)  # BatchNorm's num_batches_tracked
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert sa[i].keys() == sb[i].keys()
        for key in sa[i]:
            torch.testing.assert_close(sa[i][key], sb[i][key], **tol)
    assert a.counters.steps == b.counters.steps and a.counters.epochs == b.counters.epochs
    assert a.lr == b.lr


CASES = [
    pytest.param("mlp", "sgd", None, id="mlp-sgd"),
    pytest.param("mlp", "momentum", None, id="mlp-momentum"),
    pytest.param("mlp", "nesterov", 1e-3, id="mlp-nesterov-decay"),
    pytest.param("mlp", "adam", None, id="mlp-adam"),
    pytest.param("mlp", "adam", 1e-3, id="mlp-adam-decay"),
    pytest.param("mlp", "adamw", None, id="mlp-adamw"),
    pytest.param("cnn", "momentum", None, id="cnn-momentum"),
]


@pytest.mark.parametrize(("model", "optimizer", "decay"), CASES)
def test_batched_epochs_match_sequential_epochs(boring_data, model, optimizer, decay, device):
    seq = members(boring_data, model=model, optimizer=optimizer, device=device, weight_decay=decay)
    bat = members(boring_data, model=model, optimizer=optimizer, device=device, weight_decay=decay)
    lrs = [seq[0].lr * f for f in (1.0, 0.5, 0.25, 0.1)]
    for epoch in range(2):
        expected = SequentialPopulation(seq).train_epoch(lrs if epoch == 0 else None)
        got = Population(bat).train_epoch(lrs if epoch == 0 else None)
        for e, g in zip(expected, got):
            assert g.loss == pytest.approx(e.loss, rel=1e-4)
            assert g.score == pytest.approx(e.score, abs=1 / boring_data.num_train + 1e-9)
            assert (g.steps, g.examples, g.lr_mean) == (e.steps, e.examples, e.lr_mean)
    for a, b in zip(seq, bat):
        assert_close_trainers(a, b)
    for e, g in zip(SequentialPopulation(seq).evaluate(), Population(bat).evaluate()):
        assert g.loss == pytest.approx(e.loss, rel=1e-4)
        assert g.score == pytest.approx(e.score, abs=1e-9)


def test_batchnorm_members_batch_with_their_own_running_statistics(boring_data, device):
    options = dict(model="convnet", optimizer="momentum", base=8, dropout=0.0, device=device)
    seq, bat = members(boring_data, **options), members(boring_data, **options)
    assert batching_obstacle(bat) is None
    SequentialPopulation(seq).train_epoch()
    Population(bat).train_epoch()
    for a, b in zip(seq, bat):
        assert_close_trainers(a, b)  # running mean / var and num_batches_tracked included
    means = [dict(t.model.named_buffers())["features.1.running_mean"] for t in bat]
    assert not torch.allclose(means[0], means[1])  # each member's statistics are its own
    for e, g in zip(SequentialPopulation(seq).evaluate(), Population(bat).evaluate()):
        # eval mode: each member's running statistics
        assert g.score == pytest.approx(e.score, abs=1e-9 if device == "cpu" else 0.01)


def test_each_member_steps_at_its_own_lr(boring_data, device):
    # identical members (same weights, same seed): only the lr tells them apart
    ts = members(boring_data, k=3, reinitialize=False, device=device)
    for t in ts[1:]:
        t.reseed(ts[0].seed)
    before = [p.detach().clone() for p in ts[0].model.parameters()]
    Population(ts).train_epoch([0.0, 0.05, 0.1])
    assert all(torch.equal(p, q) for p, q in zip(before, ts[0].model.parameters()))
    moved = [sum((p - q).norm() for p, q in zip(before, t.model.parameters())) for t in ts[1:]]
    assert 0 < moved[0] < moved[1]
    assert [t.lr for t in ts] == [0.0, 0.05, 0.1]


def test_exploit_copies_exactly_one_member(boring_data, device):
    """PBT's exploit is a ``restore`` of one member from another's snapshot between batched
    epochs: the copy continues as its source would, and the other members are untouched."""
    ts = members(boring_data, k=4, device=device)
    pop = Population(ts)
    pop.train_epoch([0.1, 0.05, 0.02, 0.01])
    others = {k: [p.detach().clone() for p in ts[k].model.parameters()] for k in (0, 1, 3)}
    ts[2].restore(ts[0].snapshot())
    assert all(
        torch.equal(p, q) for p, q in zip(ts[0].model.parameters(), ts[2].model.parameters())
    )
    for k, params in others.items():
        assert all(torch.equal(p, q) for p, q in zip(params, ts[k].model.parameters()))
    pop.train_epoch()  # the copy trains on as its source: same weights, lr, data order
    torch.testing.assert_close(
        list(ts[2].model.parameters()), list(ts[0].model.parameters()), rtol=0, atol=0
    )


def test_counters_and_spent_advance_per_member(boring_data, device):
    ts = members(boring_data, k=3, device=device)
    results = Population(ts).train_epoch()
    steps = ts[0].steps_per_epoch
    for t, r in zip(ts, results):
        assert t.counters.steps == t.spent.steps == r.steps == steps
        assert t.counters.epochs == 1 and t.spent.examples == boring_data.num_train
        assert r.seconds > 0 and math.isfinite(r.loss)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda ts: None, "dropout"),
        (lambda ts: setattr(ts[1], "augment", Augment("crop", padding=2)), "augmented"),
        (
            lambda ts: [t.set_optimizer(torch.optim.Adagrad(t.model.parameters())) for t in ts],
            "Adagrad",
        ),
    ],
    ids=["dropout", "augment", "optimizer"],
)
def test_unbatchable_members_fall_back_and_say_so_once(
    boring_data, change, reason, caplog, monkeypatch, device
):
    monkeypatch.setattr(_population, "_ANNOUNCED", set())
    dropout = 0.2 if reason == "dropout" else 0.0
    ts = members(boring_data, model="convnet", base=8, dropout=dropout, device=device)
    change(ts)
    assert reason in batching_obstacle(ts)
    with pytest.raises(ValueError, match="cannot be batched"):
        Population(ts)
    with caplog.at_level(logging.WARNING, logger="trainers._population"):
        first = make_population(ts)
        second = make_population(ts)
    assert isinstance(first, SequentialPopulation) and isinstance(second, SequentialPopulation)
    announced = [r.getMessage() for r in caplog.records]
    assert len(announced) == 1 and "not batched" in announced[0] and reason in announced[0]
    assert len(first.train_epoch()) == len(ts)


def test_make_population_batches_when_it_can_and_not_when_told(boring_data):
    ts = members(boring_data)
    assert make_population(ts).batched
    assert not make_population(ts, batched=False).batched


def test_bad_lrs_are_refused_with_the_argument_named(boring_data):
    pop = Population(members(boring_data, k=2))
    with pytest.raises(ValueError, match=r"one lr per member \(2\)"):
        pop.train_epoch([0.1])
    with pytest.raises(ValueError, match="floats >= 0"):
        pop.train_epoch([0.1, -1.0])


class _Untraceable(torch.nn.Module):
    """Control flow on a tensor's value: ``torch.fx`` cannot trace it, ``vmap`` can run it."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(40, 32)
        self.out = torch.nn.Linear(32, 10)

    def forward(self, x):
        h = torch.relu(self.hidden(x.flatten(1)))
        for _ in range(2):  # a Python loop fx unrolls; the item() below it cannot trace
            h = h + 0.0
        if x.dim() > 10 and float(x.sum()) > 0:
            h = -h
        return self.out(h)


def _cnn() -> torch.nn.Module:
    from trainers import build_model

    return build_model("cnn", (1, 40), 10)


@pytest.mark.parametrize(
    ("factory", "path"),
    [
        pytest.param(_cnn, "layers", id="cnn-layers"),
        pytest.param(_Untraceable, "vmap", id="untraceable-vmap"),
    ],
)
def test_layer_and_vmap_paths_both_match_sequential(boring_data, factory, path):
    def build():
        ts = []
        for seed in range(3):
            torch.manual_seed(seed)
            model = factory()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
            ts.append(Trainer(model, opt, boring_data, batch_size=50, seed=seed, device="cpu"))
        return ts

    seq, bat = build(), build()
    pop = Population(bat)
    assert pop.path == path
    SequentialPopulation(seq).train_epoch()
    pop.train_epoch()
    for a, b in zip(seq, bat):
        assert_close_trainers(a, b)


def test_branches_train_from_one_state_charge_the_trainer_and_keep_one(boring_data, device):
    from trainers import Branches

    trainer = members(boring_data, k=1, device=device)[0]
    trainer.train_epoch()
    start_weights = [p.detach().clone() for p in trainer.model.parameters()]
    branches = Branches(trainer, 3)
    assert branches.batched
    spent = trainer.spent.steps
    outcomes = branches.train([0.3, 0.03, 0.003])
    assert trainer.spent.steps == spent + 3 * trainer.steps_per_epoch
    assert all(b.spent.steps == 0 for b in branches.trainers[1:])
    # every branch started from the trainer's state: retrain branch 2 alone and compare
    alone = trainer.clone(seed=trainer.seed)
    alone.restore(branches._start)  # the snapshot all branches started from
    for p, q in zip(alone.model.parameters(), start_weights):
        assert torch.equal(p, q)
    alone.train_epoch(0.003)
    branches.keep(2)
    for p, q in zip(trainer.model.parameters(), alone.model.parameters()):
        torch.testing.assert_close(p, q, **tolerance(device))
    assert trainer.lr == 0.003 and trainer.counters.epochs == 2
    assert outcomes[2][1].score == pytest.approx(
        alone.evaluate().score, abs=1e-9 if device == "cpu" else 0.01
    )
    with pytest.raises(ValueError, match=r"1\.\.3 lrs"):
        branches.train([0.1] * 4)
