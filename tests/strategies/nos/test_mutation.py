from __future__ import annotations

import numpy as np
import pytest

from strategies._nos._ops import decay_is_valid, decay_values
from strategies._nos._space import HIDDEN, ROOT
from strategies.nos import (
    MUTATIONS,
    integrity_check,
    is_well_formed,
    mutate,
    mutate_decay,
    random_decay,
    random_genome,
    random_valid_genome,
    valid_mutant,
)


@pytest.mark.parametrize("operator", MUTATIONS)
def test_every_mutation_operator_yields_a_well_formed_genome(operator):
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(60):
        parent = random_genome(rng)
        while operator == "swap" and all(parent.node(i).arity == 1 for i in parent.active()):
            parent = random_genome(rng)
        child = mutate(parent, rng, operator)
        assert is_well_formed(child)
        assert any(a in HIDDEN for a in child.root.args), "the root reads a hidden node"
        changed += child != parent
        if operator == "momentum":
            assert child.momentum != parent.momentum and child.hidden == parent.hidden
    assert changed == 60


def test_random_genomes_follow_the_codes_proportions():
    rng = np.random.default_rng(1)
    genomes = [random_genome(rng) for _ in range(600)]
    unary_hidden = np.mean([n.arity == 1 for g in genomes for n in g.hidden])
    unary_root = np.mean([g.root.arity == 1 for g in genomes])
    assert unary_hidden == pytest.approx(0.75, abs=0.04)  # 75 % unary hidden nodes
    assert unary_root == pytest.approx(0.25, abs=0.05)  # 25 % unary roots
    assert {g.momentum for g in genomes} == {0, 1, 2}
    assert all(g.is_acyclic() and is_well_formed(g) for g in genomes)


def test_random_decays_stay_in_zero_one_and_mutants_differ():
    rng = np.random.default_rng(2)
    for _ in range(50):
        decay = random_decay(rng)
        assert decay_is_valid(decay)
        mutant = mutate_decay(decay, rng)
        assert decay_is_valid(mutant)
        if mutant != decay:
            assert np.linalg.norm(decay_values(mutant, 100) - decay_values(decay, 100)) >= 1e-4


def test_valid_genomes_and_mutants_pass_the_integrity_check_and_avoid_the_history():
    rng = np.random.default_rng(3)
    parent = random_valid_genome(rng)
    assert integrity_check(parent).passed
    history = {parent.equation()}
    for _ in range(10):
        child = valid_mutant(parent, rng, history=history)
        assert child.equation() not in history
        assert integrity_check(child).passed and is_well_formed(child)
        history.add(child.equation())


def test_swap_needs_a_binary_node():
    from strategies.nos import named_genome

    with pytest.raises(ValueError, match="`swap` needs an active binary node"):
        mutate(named_genome("sgd"), np.random.default_rng(0), "swap")


def test_unknown_operator():
    with pytest.raises(ValueError, match="`operator` must be one of"):
        mutate(random_genome(np.random.default_rng(0)), np.random.default_rng(0), "crossover")


def test_root_index():
    assert ROOT == 25 and HIDDEN == (20, 21, 22, 23, 24)
