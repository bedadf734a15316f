"""Every registered NOS optimizer against its formula, written out independently here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

import hpo
from strategies import Schedule
from strategies.nos import NOS_OPTIMIZERS, build_nos_optimizer, lr_multiplier

T = 40  # total steps of the reference runs


def a(k: int, t: int) -> float:
    """Schedule a_k at step t of T, from the spec's table."""
    p, c, z = t / T, ((2 * t) % T) / T, 1 - (t + 1) / T
    a13 = 0.95 * z / (0.05 + 0.95 * z)
    return {
        1: 1 - p,
        2: p,
        3: 0.5 * (1 + math.cos(math.pi * p)),
        4: 0.5 * (1 - math.cos(math.pi * p)),
        5: 0.5 * (1 + math.cos(2 * math.pi * p)),
        6: 0.5 * (1 - math.cos(2 * math.pi * p)),
        7: 0.5 * (1 + math.cos(math.pi * c)),
        8: 0.5 * (1 - math.cos(math.pi * c)),
        9: 1 - c,
        10: c,
        11: 0.01**p,
        12: 1 - 0.01**p,
        13: a13,
        14: 0.95 - a13,
    }[k]


def dtanh(x: float) -> float:
    return 1 - math.tanh(x) ** 2


def lr1(t: int) -> float:
    return float(special.erfc(special.erfc(a(4, t)))) / dtanh(a(8, t))


class Reference:
    """Straightforward per-tensor versions of the registry's update rules."""

    def __init__(self, name: str, params: list[torch.Tensor]) -> None:
        self.name = name
        self.params = params
        self.state = [
            dict(
                v=torch.zeros_like(p),
                s=torch.zeros_like(p),
                l=torch.zeros_like(p),
                q=torch.zeros_like(p),
                m=torch.zeros_like(p),
            )
            for p in params
        ]
        self.t = 0

    def step(self, lr: float) -> None:
        t, name = self.t, self.name
        warm = max(1, round(0.1 * T))
        beta = (
            0.95 - 0.1 * min(t / warm, 1)
            if t < warm
            else 0.85 + 0.1 * min((t - warm) / (T - warm), 1)
        )
        for p, st in zip(self.params, self.state):
            g, w = p.grad, p.detach()
            st["v"] = 0.9 * st["v"] + 0.1 * g
            st["s"] = 0.99 * st["s"] + 0.01 * g**2
            st["l"] = 0.999 * st["l"] + 0.001 * g**3
            vh = st["v"] / (1 - 0.9 ** (t + 1))
            sh = st["s"] / (1 - 0.99 ** (t + 1))
            lh = st["l"] / (1 - 0.999 ** (t + 1))
            q = 0.3 * g + 0.7 * vh
            softsign = lambda x: x / (1 + x.abs())  # noqa: E731
            eff = lr
            if name == "opt1":
                s1 = (1e-5 * w - (0.05 * g**2 + 0.95 * sh)).abs()
                u = q + softsign(torch.clamp(1e-5 * w, -s1, s1))
            elif name == "opt2":
                s1 = 1e-5 * w - (0.05 * g**2 + 0.95 * sh)
                u = q + softsign(1e-5 * w / torch.sqrt(1 + s1**2))
            elif name == "opt3":
                l1 = 1e-5 * w - (0.01 * g**3 + 0.99 * lh)
                u = q + softsign(1e-5 * w / torch.sqrt(1 + l1**2))
            elif name == "opt4":
                c = (math.atan(a(13, t)) * torch.exp(vh)).abs()
                u, eff = q / torch.minimum(torch.full_like(c, 2.0), c), lr * lr1(t)
            elif name == "opt5":
                u, eff = q / torch.clamp(torch.exp(vh), max=2.0), lr * lr1(t)
            elif name == "opt6":
                u, eff = q / (dtanh(a(4, t)) * torch.exp(1e-4 * w)).abs(), lr * lr1(t)
            elif name == "opt7":
                u = torch.tanh(max(a(6, t), a(10, t)) * torch.asinh(q))
            elif name == "opt8":
                u = torch.asinh(max(a(6, t), a(10, t)) * torch.asinh(q))
            elif name == "opt9":
                u = (
                    float(special.erfc(a(11, t)))
                    * g
                    * torch.exp(torch.atan(0.05 * g**2 + 0.95 * sh))
                )
            elif name == "opt10":
                u = torch.special.i1e(torch.special.i1e(a(13, t) * a(2, t) * g))
            elif name in ("a1", "a2", "a3", "a4", "a5"):
                bound = {
                    "a1": torch.sqrt(sh) + 1e-7,
                    "a2": torch.log(sh + 1e-7).abs(),
                    "a3": torch.log(sh + 1e-7).abs().sqrt(),
                    "a4": torch.sigmoid(sh + 1e-7),
                    "a5": torch.sqrt(sh) + 1e-7,
                }[name]
                u = torch.clamp(vh, -bound, bound)
                if name == "a5":
                    u = u * min(1.0, 1.0 / (float(u.norm()) + 1e-12))
            elif name == "qhm":
                st["q"] = 0.999 * st["q"] + 0.001 * g
                u = 0.3 * g + 0.7 * st["q"]
            elif name == "powersign":
                u = torch.exp(torch.sign(g) * torch.sign(st["v"])) * g
            elif name == "addsign":
                u = (1 + torch.sign(g) * torch.sign(st["v"])) * g
            else:
                raise AssertionError(name)
            with torch.no_grad():
                if name in ("opt9", "opt10"):  # Keras-style Nesterov
                    st["m"] = beta * st["m"] - eff * u
                    p.add_(beta * st["m"] - eff * u)
                else:
                    p.sub_(eff * u)
        self.t += 1


@pytest.mark.parametrize("name", NOS_OPTIMIZERS)
def test_each_registered_optimizer_follows_its_formula(name):
    torch.manual_seed(0)
    shapes = [(4, 3), (3,), (2, 2)]
    ours = [torch.nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in shapes]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = build_nos_optimizer(name, ours, lr=0.05, total_steps=T)
    reference = Reference(name, ref)
    g = torch.Generator().manual_seed(1)
    for _ in range(25):
        for p, q in zip(ours, ref):
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
            q.grad = p.grad.clone()
        opt.step()
        reference.step(0.05)
    for p, q in zip(ours, ref):
        assert torch.allclose(p, q, rtol=1e-9, atol=1e-12), name


# the spec's table (docs/nos-search-space.md §6.3): start, mid, end on T = 1000, t >= 1
LR_TABLE = {
    1: (0.157, 0.50, 1.96),
    2: (0.157, 0.63, 4.67),
    3: (0.001, 0.64, 8.33),
    4: (0.34, 0.59, 1.07),
    5: (1.09, 2.98, 9.39),
    6: (0.001, 0.10, 0.78),
    7: (1.0, 1.0, 1.41),
    9: (0.002, 0.76, 0.76),
}


@pytest.mark.parametrize("k", sorted(LR_TABLE))
def test_lr_schedules_match_the_spec_table(k):
    values = lr_multiplier(k, np.array([1, 500, 999]), 1000)
    assert values == pytest.approx(LR_TABLE[k], abs=0.02, rel=0.02)


def test_lr8_starts_very_large_and_ends_near_1_5():
    v = lr_multiplier(8, np.array([1, 500, 999]), 1000)
    assert (
        v[0] > 10
        and v[1] == pytest.approx(1.54, abs=0.02)
        and v[2] == pytest.approx(1.51, abs=0.02)
    )


def test_registered_optimizers_are_usable_by_name_in_a_task():
    task = hpo.testing.boring_task(optimizer="nos:opt10", epochs=3)
    h = hpo.run(task, Schedule(kind="one-cycle", lr=3.0), tracking=False)
    assert h.status == "finished" and h.column("train_loss")[-1] < h.column("train_loss")[0]
    with pytest.raises(ValueError, match="names no NOS optimizer; known: nos:opt1"):
        hpo.Task(optimizer="nos:opt11")


@pytest.mark.parametrize("k", [1, 3, 9])
def test_lr_schedules_are_schedule_kinds(k):
    task = hpo.testing.boring_task(epochs=3)
    h = hpo.run(task, Schedule(kind=f"nos-lr{k}", lr=0.02), tracking=False)
    assert h.status == "finished" and h.records[0].lr_min == pytest.approx(1e-7)


def test_unknown_names():
    with pytest.raises(ValueError, match="Unknown NOS optimizer 'adam'"):
        build_nos_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="LR1..LR9"):
        lr_multiplier(10, np.arange(3), 3)
