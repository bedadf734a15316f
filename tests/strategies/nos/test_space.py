from __future__ import annotations

import numpy as np
import pytest

from strategies.nos import Decay, DecayNode, Genome, Node, named_genome, random_genome
from tests.strategies.nos._genomes import FILLER, graph


@pytest.mark.parametrize("seed", range(20))
def test_json_round_trip_of_random_genomes(seed):
    genome = random_genome(np.random.default_rng(seed))
    again = Genome.from_json(genome.to_json())
    assert again == genome and hash(again) == hash(genome)
    assert again.equation() == genome.equation() and again.latex() == genome.latex()


def test_the_equation_of_a_hand_built_adam_like_genome():
    genome = named_genome("adam")  # root = v hat / (sqrt|s hat| + eps)
    assert genome.equation() == "None ~ (v hat)/(sqrt(s hat))"
    assert genome.latex() == r"\text{None}:\ U = \frac{\hat v}{\sqrt{|\hat s|}+\epsilon}"
    assert Genome.from_json(genome.to_json()).equation() == genome.equation()


def test_decays_and_momentum_appear_in_the_strings():
    decay = Decay(DecayNode(2, 2, (12, 1)))  # a13 * a2
    genome = graph(Node(1, 14, 0, (0,), (decay,)), Node(1, 14, 0, (20,)), momentum=2)
    assert genome.equation() == "Nest ~ bessel_i1e(bessel_i1e([(a13)*(a2)][g]))"
    assert r"\left[(a_{13} \cdot a_{2})\right]g" in genome.latex()


def test_only_nodes_reachable_from_the_root_are_active():
    genome = Genome(
        hidden=(Node(1, 11, 0, (0,)), Node(2, -1, 0, (20, 1)), FILLER, FILLER, FILLER),
        root=Node(1, -1, 0, (21,)),
    )
    assert genome.active() == [20, 21, 25]
    assert genome.operands_used() == {0, 1}


def test_a_cycle_is_detected():
    cyclic = Genome(
        hidden=(Node(1, -1, 0, (21,)), Node(1, -1, 0, (20,)), FILLER, FILLER, FILLER),
        root=Node(1, -1, 0, (20,)),
    )
    assert not cyclic.is_acyclic()
    with pytest.raises(ValueError, match="cycle"):
        cyclic.active()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"hidden": (FILLER,) * 4}, "needs 5 hidden nodes", id="hidden"),
        pytest.param({"momentum": 3}, "`momentum` must be 0, 1 or 2", id="momentum"),
    ],
)
def test_bad_genomes(kwargs, match):
    args = {"hidden": (FILLER,) * 5, "root": Node(1, -1, 0, (20,)), **kwargs}
    with pytest.raises(ValueError, match=match):
        Genome(**args)
