from __future__ import annotations

import numpy as np
import pytest
import torch

from strategies._nos._integrity import LR_LADDER, SHIFT, START
from strategies._nos._ops import base_lr
from strategies.nos import (
    Decay,
    DecayNode,
    Node,
    integrity_check,
    named_genome,
    sphere_losses,
)
from tests.strategies.nos._genomes import graph


@pytest.mark.parametrize("name", ["sgd", "adam", "qhm-graph", "opt10-graph"])
def test_accepts_working_optimizers(name):
    result = integrity_check(named_genome(name))
    assert result.passed and not result.flip and min(result.losses) < 3.5


def test_sphere_is_run_for_every_lr_at_once_as_the_spec_says():
    # plain SGD on f = sum (x - b)^2: x <- x - lr base(t) 2 (x - b), 34 updates, W = 6, T = 35
    losses = sphere_losses(named_genome("sgd"))
    b, x = np.array(SHIFT), np.tile(np.array(START), (len(LR_LADDER), 1))
    lr = np.array(LR_LADDER)[:, None]
    for t in range(34):
        x = x - lr * base_lr(np.array([t]), 35, 6)[0] * 2 * (x - b)
    assert torch.allclose(losses, torch.tensor(((x - b) ** 2).sum(1)))
    assert sphere_losses(named_genome("sgd")).shape == (6,)


@pytest.mark.parametrize(
    ("genome", "why"),
    [
        pytest.param(
            graph(Node(2, -1, 1, (0, 0)), Node(1, -1, 0, (20,))), "zero", id="update-is-zero"
        ),
        pytest.param(
            graph(Node(1, -1, 0, (6,)), Node(1, -1, 0, (20,))), "constant", id="constant"
        ),
        pytest.param(
            # g - g = 0; 1 / (0 + eps) = 1e7; exp(1e7) = inf; inf - inf = NaN
            graph(Node(2, -1, 1, (0, 0)), Node(1, -1, 0, (23,)))
            .with_node(21, Node(1, 13, 0, (20,)))
            .with_node(22, Node(1, 3, 0, (21,)))
            .with_node(23, Node(2, -1, 1, (22, 22))),
            "nan",
            id="nan-producer",
        ),
    ],
)
def test_rejects_degenerate_optimizers(genome, why):
    result = integrity_check(genome)
    assert not result.passed
    if why == "nan":  # inf - inf
        assert all(not np.isfinite(v) for v in result.losses)


def test_an_ascent_form_passes_flipped():
    ascent = graph(Node(1, 0, 0, (0,)), Node(1, -1, 0, (20,)))  # U = -g
    result = integrity_check(ascent)
    assert result.passed and result.flip


def test_decays_outside_zero_one_are_rejected():
    bad = Decay(DecayNode(2, 1, (1, 0)))  # a2 - a1 runs from -1 to 1
    genome = graph(Node(1, -1, 0, (0,), (bad,)), Node(1, -1, 0, (20,)))
    result = integrity_check(genome)
    assert not result.passed and "[0, 1]" in result.reason
