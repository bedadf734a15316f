from __future__ import annotations

import numpy as np
import pytest
import torch

import hpo
from strategies._nos._ops import cycled_beta, decay_values
from strategies.nos import Decay, DecayNode, Genome, GraphOptimizer, Node, named_genome
from tests.strategies.nos._genomes import FILLER, graph


def model_params(seed: int = 0) -> list[torch.nn.Parameter]:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    return list(net.parameters())


def run(opt_factory, steps: int = 30, lr: float = 0.05, seed: int = 0):
    params = model_params(seed)
    opt = opt_factory(params)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
    return [p.detach().clone() for p in params]


def test_the_sgd_genome_matches_torch_sgd_step_for_step():
    ours = run(lambda ps: GraphOptimizer(ps, named_genome("sgd"), total_steps=30))
    ref = run(lambda ps: torch.optim.SGD(ps, lr=0.05))
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


def test_the_adam_like_genome_tracks_torch_adam():
    # U = v_hat / (sqrt|s_hat| + 1e-7): Adam with betas (0.9, 0.99) and eps 1e-7
    ours = run(lambda ps: GraphOptimizer(ps, named_genome("adam"), total_steps=30), lr=0.01)
    ref = run(lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-7), lr=0.01)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours, ref))


@pytest.mark.parametrize("momentum", [1, 2])
def test_momentum_forms_with_the_cycled_beta(momentum):
    genome = Genome(hidden=(FILLER,) * 5, root=Node(1, -1, 0, (20,)), momentum=momentum)
    w = torch.nn.Parameter(torch.zeros(4))
    opt = GraphOptimizer([w], genome, lr=0.1, total_steps=20, warmup_steps=5)
    betas = cycled_beta(np.arange(20), 20, 5)
    x, m = np.zeros(4), np.zeros(4)
    for t in range(6):
        g = np.full(4, float(t + 1))
        w.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        m = betas[t] * m - 0.1 * g
        x = x + m if momentum == 1 else x + m - 0.1 * g
    assert np.allclose(w.detach().numpy(), x, rtol=1e-5)
    assert betas[0] == pytest.approx(0.95) and betas[5] == pytest.approx(0.85)


def test_flip_negates_the_update():
    genome = Genome(hidden=(FILLER,) * 5, root=Node(1, -1, 0, (20,)), flip=True)
    w = torch.nn.Parameter(torch.zeros(3))
    opt = GraphOptimizer([w], genome, lr=0.1, total_steps=5)
    w.grad = torch.ones(3)
    opt.step()
    assert torch.allclose(w.detach(), torch.full((3,), 0.1))


def test_a_decay_multiplies_its_edge_and_clip_by_norm_works_per_tensor():
    decay = Decay(DecayNode(1, 12, (0,)))  # a1 = 1 - t/T
    genome = graph(Node(1, 20, 0, (0,), (decay,)), Node(1, -1, 0, (20,)))
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    opt = GraphOptimizer([a, b], genome, lr=1.0, total_steps=10)
    d = decay_values(decay, 10)
    for t in range(3):
        before = [a.detach().clone(), b.detach().clone()]
        a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.1, 0.0, 0.0])
        opt.step()
        # a's gradient scaled by d(t) has norm 5 d(t) and is clipped to norm 1; b's is not
        expected_a = -d[t] * torch.tensor([3.0, 4.0]) / max(5 * d[t], 1.0)
        assert torch.allclose(a.detach() - before[0], expected_a, atol=1e-6)
        assert torch.allclose(b.detach() - before[1], -d[t] * torch.tensor([0.1, 0.0, 0.0]))


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        # x_t = t + 1: EMA bias-corrected (no division by zero), difference, running max
        (
            22,
            lambda xs, t: (
                sum(0.05 * 0.95 ** (t - k) * xs[k] for k in range(t + 1)) / (1 - 0.95 ** (t + 1))
            ),
        ),
        (23, lambda xs, t: xs[t] - (xs[t - 1] if t else 0.0)),
        (24, lambda xs, t: max([0.0, *xs[: t + 1]])),
    ],
)
def test_stateful_ops(op, expected):
    genome = graph(Node(1, op, 0, (0,)), Node(1, -1, 0, (20,)))
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = GraphOptimizer([w], genome, lr=1.0, total_steps=10)
    xs, last = [], 0.0
    for t in range(5):
        xs.append(float(t + 1) * (-1) ** t)
        w.grad = torch.tensor([xs[-1]], dtype=torch.float64)
        opt.step()
        update = last - float(w.detach())
        last = float(w.detach())
        assert update == pytest.approx(expected(xs, t))


def test_state_dict_round_trip_and_trainer_snapshots_continue_exactly(boring_data):
    task = hpo.testing.boring_task()
    genome = named_genome("adam")

    def fresh():
        trainer = task.build_trainer(boring_data)
        trainer.set_optimizer(
            GraphOptimizer(trainer.model.parameters(), genome, 0.01, total_steps=100)
        )
        return trainer

    a = fresh()
    a.train_epoch(0.01)
    snap = a.snapshot()
    state = a.optimizer.state_dict()
    a.train_epoch(0.01)
    after = [p.detach().clone() for p in a.model.parameters()]

    a.restore(snap)  # in-memory restore
    a.train_epoch(0.01)
    assert all(torch.equal(x, y) for x, y in zip(after, a.model.parameters()))

    b = fresh()  # a state dict, as a checkpoint would carry it
    b.restore(snap)
    b.optimizer.load_state_dict(state)
    b.train_epoch(0.01)
    assert all(torch.equal(x, y) for x, y in zip(after, b.model.parameters()))
    saved = b.optimizer.state_dict()
    first = next(iter(saved["state"].values()))
    assert all(v.numel() < 1000 for v in first.values())  # copies, not the whole flat buffer


def test_bad_arguments():
    with pytest.raises(TypeError, match="`genome` must be a Genome"):
        GraphOptimizer([torch.nn.Parameter(torch.zeros(1))], "sgd")
    with pytest.raises(ValueError, match="`lr` must be >= 0"):
        GraphOptimizer([torch.nn.Parameter(torch.zeros(1))], named_genome("sgd"), lr=-1.0)


def test_dropout_draws_on_the_parameters_device_from_the_seed(device):
    genome = graph(Node(1, 17, 0, (0,)), Node(1, -1, 0, (20,)))  # U = dropout0.5(g)

    def run_once() -> torch.Tensor:
        w = torch.nn.Parameter(torch.zeros(64, device=device))
        opt = GraphOptimizer([w], genome, lr=1.0, total_steps=10, seed=5)
        for _ in range(3):
            w.grad = torch.ones(64, device=device)
            opt.step()
        return w.detach()

    first, again = run_once(), run_once()
    assert first.device.type == torch.device(device).type and torch.equal(first, again)
    assert set(first.unique().tolist()) <= {0.0, -2.0, -4.0, -6.0}
