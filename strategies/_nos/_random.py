"""Random genomes and the mutation operators of the particle GA (``docs/nos-search-space.md``
§1.5, §2.3, §2.4, §5.5; probabilities as in the authors' code)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from strategies._nos._integrity import integrity_check
from strategies._nos._ops import decay_is_valid, decay_values, values_are_valid
from strategies._nos._space import (
    BINARY,
    DECAY_BINARY,
    DECAY_UNARY,
    HIDDEN,
    N_OPERANDS,
    N_SCHEDULES,
    ROOT,
    Decay,
    DecayNode,
    Genome,
    H,
    Node,
)

MUTATIONS = ("op", "connection", "swap", "arity", "momentum", "decay")
_EDGE_DECAY = 0.15  # chance of a decay on a new edge; the code's 0.85 for a unary root's edge
# is taken as the bug the spec flags: 0.15 everywhere


def _choice(rng: np.random.Generator, options: list[int] | range) -> int:
    return int(options[int(rng.integers(len(options)))])


# =============================================================================================
# Decay functions
# =============================================================================================


def _random_decay_node(
    rng: np.random.Generator,
    inputs: list[int],
    *,
    force: int | None = None,
) -> DecayNode:
    if rng.random() < 0.8:  # unary
        op = _choice(rng, range(len(DECAY_UNARY)))
        arg = force if force is not None else _choice(rng, inputs)
        return DecayNode(1, op, (arg,))
    op = _choice(rng, range(len(DECAY_BINARY)))
    if force is not None:
        other = _choice(rng, range(N_SCHEDULES))
        args = (force, other) if rng.random() < 0.5 else (other, force)
    else:
        first = _choice(rng, inputs)
        second = _choice(rng, [s for s in range(N_SCHEDULES) if s != first])
        args = (first, second)
    return DecayNode(2, op, args)


def random_decay(rng: np.random.Generator) -> Decay:
    """A random decay function that stays in [0, 1] (resampled until it does)."""
    while True:
        hidden = _random_decay_node(rng, list(range(N_SCHEDULES)))
        force_h = rng.random() < 0.2
        root = _random_decay_node(rng, list(range(N_SCHEDULES + 1)), force=H if force_h else None)
        decay = Decay(root, hidden)
        if decay_is_valid(decay):
            return decay


def mutate_decay(decay: Decay, rng: np.random.Generator, *, attempts: int = 100) -> Decay:
    """Change the op, a connection, or the arity of the root or the active hidden node; the
    mutant must stay in [0, 1] and differ from the original (string and values)."""
    old_values = decay_values(decay, 100)
    for _ in range(attempts):
        which = "hidden" if decay.uses_hidden and rng.random() < 0.5 else "root"
        node: DecayNode = getattr(decay, which)
        assert node is not None
        inputs = list(range(N_SCHEDULES)) + ([H] if which == "root" else [])
        r = rng.random()
        if r >= 0.40:  # another op of the same arity
            n_ops = len(DECAY_UNARY) if node.arity == 1 else len(DECAY_BINARY)
            new = replace(node, op=_choice(rng, [o for o in range(n_ops) if o != node.op]))
        elif r >= 0.15:  # a connection
            args = list(node.args)
            if node.arity == 2 and rng.random() < 0.2:
                args.reverse()
            else:
                k = _choice(rng, range(len(args)))
                args[k] = _choice(rng, [i for i in inputs if i not in args])
            new = replace(node, args=tuple(args))
        elif node.arity == 1:  # unary -> binary: a new argument on the left or right
            extra = _choice(rng, [i for i in range(N_SCHEDULES) if i not in node.args])
            args = (node.args[0], extra) if rng.random() < 0.5 else (extra, node.args[0])
            new = DecayNode(2, _choice(rng, range(len(DECAY_BINARY))), args)
        else:  # binary -> unary: drop the left or the right argument
            keep = node.args[0] if rng.random() < 0.5 else node.args[1]
            new = DecayNode(1, _choice(rng, range(len(DECAY_UNARY))), (keep,))
        mutant = replace(decay, **{which: new})
        if mutant.to_string() == decay.to_string():
            continue
        values = decay_values(mutant, 100)  # decay_is_valid's values, computed once
        if not values_are_valid(values) or np.linalg.norm(values - old_values) < 1e-4:
            continue
        return mutant
    return decay


# =============================================================================================
# Update graphs
# =============================================================================================


def _maybe_decay(rng: np.random.Generator) -> Decay | None:
    return random_decay(rng) if rng.random() < _EDGE_DECAY else None


def _random_hidden(rng: np.random.Generator, index: int) -> Node:
    others = [h for h in HIDDEN if h != index]
    unary = -1 if rng.random() < 0.2 else _choice(rng, range(25))
    binary = _choice(rng, range(len(BINARY)))
    first_operand = rng.random() < 0.8
    first = _choice(rng, range(N_OPERANDS)) if first_operand else _choice(rng, others)
    if rng.random() < 0.75:
        return Node(1, unary, binary, (first,), (_maybe_decay(rng),))
    if rng.random() < 0.8:
        pool = [o for o in range(N_OPERANDS) if o != first] if first_operand else range(N_OPERANDS)
        second = _choice(rng, pool)
    else:
        second = _choice(rng, [h for h in others if h != first] or others)
    return Node(2, unary, binary, (first, second), (_maybe_decay(rng), _maybe_decay(rng)))


def _random_root(rng: np.random.Generator) -> Node:
    unary = -1 if rng.random() < 0.2 else _choice(rng, range(25))
    binary = _choice(rng, range(len(BINARY)))
    if rng.random() < 0.25:
        return Node(1, unary, binary, (_choice(rng, HIDDEN),), (_maybe_decay(rng),))
    if rng.random() < 0.8:
        args = (_choice(rng, range(N_OPERANDS)), _choice(rng, HIDDEN))
    else:
        first = _choice(rng, HIDDEN)
        second = (
            _choice(rng, range(N_OPERANDS))
            if rng.random() < 0.8
            else _choice(rng, [h for h in HIDDEN if h != first])
        )
        args = (first, second)
    return Node(2, unary, binary, args, (_maybe_decay(rng), _maybe_decay(rng)))


def random_genome(rng: np.random.Generator) -> Genome:
    """A random, acyclic genome (not yet integrity-checked: see ``random_valid_genome``)."""
    while True:
        genome = Genome(
            hidden=tuple(_random_hidden(rng, i) for i in HIDDEN),
            root=_random_root(rng),
            momentum=_choice(rng, range(3)),
        )
        if genome.is_acyclic():
            return genome


def random_valid_genome(rng: np.random.Generator, *, max_tries: int = 10_000) -> Genome:
    """A random genome that passes the integrity check (flipped if it passed flipped)."""
    for _ in range(max_tries):
        genome = random_genome(rng)
        result = integrity_check(genome)
        if result.passed:
            return replace(genome, flip=result.flip)
    raise RuntimeError(f"no random genome passed the integrity check in {max_tries} tries")


def is_well_formed(genome: Genome) -> bool:
    """Structural validity: arities match the args, indices are in range, the root reads a
    hidden node, the active graph is acyclic, decay functions stay in [0, 1]."""
    for index in (*HIDDEN, ROOT):
        node = genome.node(index)
        # Node.__post_init__ gives every node one decay slot per arg: no separate length check
        if node.arity not in (1, 2) or len(node.args) != node.arity:
            return False
        if not -1 <= node.unary <= 24:
            return False
        if not 0 <= node.binary < len(BINARY):
            return False
        if any(not 0 <= a < ROOT or a == index for a in node.args):
            return False
    if not any(a in HIDDEN for a in genome.root.args):
        return False
    if not genome.is_acyclic():
        return False
    return all(decay_is_valid(d) for d in genome.decays_used())


def mutate(genome: Genome, rng: np.random.Generator, operator: str | None = None) -> Genome:
    """One mutation of a random active node (structure only: the caller integrity-checks).

    Operators (drawn with the code's probabilities when ``operator`` is ``None``): ``op`` 40 %,
    ``connection`` 24 % and ``swap`` 6 % (a binary node's argument swap, 20 % of connection
    changes), ``arity`` 10 %, ``momentum`` 10 %, ``decay`` 10 % (add / delete / mutate a decay
    on an incoming edge).

    Raises:
        ValueError: Unknown ``operator``.
    """
    if operator is not None and operator not in MUTATIONS:
        raise ValueError(f"`operator` must be one of {MUTATIONS}, but got operator={operator!r}.")
    for _ in range(1000):
        mutant = _mutate_once(genome, rng, operator)
        if mutant is not None and mutant != genome and is_well_formed(mutant):
            return replace(mutant, flip=False)
    raise RuntimeError("no well-formed mutant in 1000 tries")


def _mutate_once(genome: Genome, rng: np.random.Generator, operator: str | None) -> Genome | None:
    active = genome.active()
    if operator == "swap":
        active = [i for i in active if genome.node(i).arity == 2]
        if not active:
            raise ValueError("`swap` needs an active binary node, and this genome has none.")
    index = _choice(rng, active)
    node = genome.node(index)
    if operator is None:
        r = rng.random()
        if r >= 0.60:
            operator = "op"
        elif r >= 0.30:
            operator = "swap" if node.arity == 2 and rng.random() < 0.2 else "connection"
        elif r >= 0.20:
            operator = "arity"
        elif r >= 0.10:
            operator = "momentum"
        else:
            operator = "decay"
    is_root = index == ROOT

    if operator == "momentum":
        return replace(
            genome, momentum=_choice(rng, [m for m in range(3) if m != genome.momentum])
        )
    if operator == "op":
        if node.arity == 1:
            op = (
                _choice(rng, range(24))
                if node.unary == -1
                else -1
                if rng.random() < 0.2
                else _choice(rng, [o for o in range(24) if o != node.unary])
            )
            return genome.with_node(index, replace(node, unary=op))
        op = _choice(rng, [o for o in range(len(BINARY)) if o != node.binary])
        return genome.with_node(index, replace(node, binary=op))
    if operator == "swap":
        if node.arity != 2:
            return None
        return genome.with_node(
            index, replace(node, args=node.args[::-1], decays=node.decays[::-1])
        )
    if operator == "connection":
        args = list(node.args)
        k = _choice(rng, range(len(args)))
        pool = [i for i in range(ROOT) if i != index and i not in args]
        if is_root and (
            node.arity == 1 or not any(a in HIDDEN for j, a in enumerate(args) if j != k)
        ):
            pool = [i for i in pool if i in HIDDEN]  # the root keeps a hidden input
        if not pool:
            return None
        args[k] = _choice(rng, pool)
        return genome.with_node(index, replace(node, args=tuple(args)))
    if operator == "arity":
        if node.arity == 1:
            extra = _choice(rng, [i for i in range(ROOT) if i != index and i not in node.args])
            left = rng.random() < 0.5
            args = (extra, node.args[0]) if left else (node.args[0], extra)
            decays = (None, node.decays[0]) if left else (node.decays[0], None)
            return genome.with_node(index, replace(node, arity=2, args=args, decays=decays))
        keep = 0 if rng.random() < 0.5 else 1
        if is_root and node.args[keep] not in HIDDEN:
            keep = 1 - keep
        return genome.with_node(
            index, replace(node, arity=1, args=(node.args[keep],), decays=(node.decays[keep],))
        )
    # operator == "decay": on a random incoming edge
    e = _choice(rng, range(node.arity))
    decays = list(node.decays)
    if decays[e] is None:
        decays[e] = random_decay(rng)
    elif rng.random() < 0.5:
        decays[e] = None
    else:
        decays[e] = mutate_decay(decays[e], rng)  # type: ignore[arg-type]
    return genome.with_node(index, replace(node, decays=tuple(decays)))


def valid_mutant(
    genome: Genome,
    rng: np.random.Generator,
    *,
    history: set[str] | frozenset[str] = frozenset(),
    max_tries: int = 1000,
) -> Genome:
    """Mutate until the child is well formed, passes the integrity check (flipped if need be)
    and its equation is not in ``history`` (the particle's past)."""
    for _ in range(max_tries):
        child = mutate(genome, rng)
        result = integrity_check(child)
        if not result.passed:
            continue
        child = replace(child, flip=result.flip)
        if child.equation() not in history:
            return child
    raise RuntimeError(f"no valid new mutant in {max_tries} tries")
