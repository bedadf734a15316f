"""The schema of a genome's JSON, checked in full before a genome is built from it.

``Genome.to_json`` writes, and ``Genome.from_json`` / ``Genome.from_dict`` accept, exactly this
(``?`` marks an optional key; no other key is allowed, and nothing is coerced)::

    genome     {hidden: [node x 5], root: node, momentum?: 0 | 1 | 2, flip?: bool}
    node       {arity: 1 | 2, unary: -1..24, binary: 0..9, args: [input x arity],
                decays?: [decay | null x arity]}
    input      an operand 0..19 or a hidden node 20..24; not the node's own index
    decay      {root: dnode, hidden?: dnode | null}
    dnode      {arity: 1 | 2, op: 0..12 (unary) | 0..6 (binary), args: [schedule x arity]}
    schedule   0..13 (a1..a14); a decay root may also read 14, its hidden node, if it has one

A genome must also be what the search can produce: the root reads at least one hidden node, the
nodes reachable from the root form no cycle, and every decay stays in [0, 1] (on T = 100, the
search's test). Ints must be JSON integers (not ``true``, ``1.0`` or ``NaN``) and ``flip`` a JSON
boolean. A bad value raises ``ValueError`` and a bad type ``TypeError``, with one line that names
the field by its path, what it must be and the value got::

    Genome.`hidden[2].args[1]` must be an operand (0-19) or another hidden node (20-24), but got
    hidden[2].args[1]=25.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from strategies._nos._ops import decay_values, values_are_valid
from strategies._nos._space import (
    BINARY,
    DECAY_BINARY,
    DECAY_UNARY,
    N_HIDDEN,
    N_OPERANDS,
    N_SCHEDULES,
    ROOT,
    UNARY,
    Decay,
    DecayNode,
    H,
)

_OWNER = "Genome"
_GENOME_KEYS = (("hidden", "root"), ("momentum", "flip"))
_NODE_KEYS = (("arity", "unary", "binary", "args"), ("decays",))
_DECAY_KEYS = (("root",), ("hidden",))
_DECAY_NODE_KEYS = (("arity", "op", "args"), ())
_MAX_SHOWN = 80  # characters of a value's repr in a message


def parse_genome_json(text: Any) -> Any:
    """The value of a genome's JSON text, not yet checked against the schema.

    Unlike ``json.loads`` it refuses an object that repeats a key (``json.loads`` keeps the last
    one silently).

    Raises:
        TypeError: ``text`` is not a ``str``.
        ValueError: ``text`` is not JSON (the message gives the error's position), nests too
            deeply, or repeats a key.
    """
    if not isinstance(text, str):
        raise TypeError(
            f"{_OWNER} JSON must be a str, but got text={_show(text)} of type "
            f"{type(text).__name__}."
        )
    try:
        return json.loads(text, object_pairs_hook=_refuse_repeated_keys)
    except json.JSONDecodeError as err:
        near = text[max(0, err.pos - 30) : err.pos + 30]
        where = "" if near == text else f"near {near!r} "
        raise ValueError(
            f"{_OWNER} JSON must be valid JSON, but got an error at line {err.lineno} column "
            f"{err.colno} (char {err.pos}): {err.msg}, {where}in text={_show(text)}."
        ) from None
    except RecursionError:
        raise ValueError(
            f"{_OWNER} JSON must nest at most a few levels (a genome nests 7), but got "
            f"text={_show(text)}, too deeply nested to parse."
        ) from None


def check_genome_dict(data: Any) -> None:
    """Check a genome's dict (``Genome.to_dict``'s form; the arrays may be lists or tuples)
    against the schema above.

    Raises:
        TypeError: A field has the wrong type (the message names it by its path).
        ValueError: A field has a bad value, a key is missing or unknown, the root reads no
            hidden node, the active graph has a cycle, or a decay leaves [0, 1].

    Example:
        >>> from strategies.nos import named_genome
        >>> data = named_genome("sgd").to_dict()
        >>> check_genome_dict(data)
        >>> try:
        ...     check_genome_dict({**data, "flip": "no"})
        ... except TypeError as err:
        ...     print(err)
        Genome.`flip` must be a bool (true or false), but got flip='no' of type str.
    """
    top = _object("", data, _GENOME_KEYS, "a JSON object")
    hidden = _array("hidden", top["hidden"], "a list of 5 nodes")
    if len(hidden) != N_HIDDEN:
        raise ValueError(
            f"{_OWNER}.`hidden` must hold {N_HIDDEN} nodes (indices {N_OPERANDS}-{ROOT - 1}), "
            f"but got {len(hidden)}: hidden={_show(hidden)}."
        )
    nodes = {
        N_OPERANDS + k: _node(f"hidden[{k}]", n, N_OPERANDS + k) for k, n in enumerate(hidden)
    }
    nodes[ROOT] = _node("root", top["root"], ROOT)
    if "momentum" in top:
        _int("momentum", top["momentum"], 0, 2, "0 (none), 1 (momentum) or 2 (Nesterov)")
    if "flip" in top and not isinstance(top["flip"], bool):
        raise _type_error("flip", top["flip"], "a bool (true or false)")
    if not any(a >= N_OPERANDS for a in nodes[ROOT]):
        raise ValueError(
            f"{_OWNER}.`root.args` must include a hidden node ({N_OPERANDS}-{ROOT - 1}): the "
            f"root always reads one, but got root.args={_show(top['root']['args'])}."
        )
    _check_acyclic(nodes)


# ---------------------------------------------------------------------------------------------
# Walking the schema
# ---------------------------------------------------------------------------------------------


def _node(path: str, value: Any, index: int) -> list[int]:
    """Check one update node; its inputs."""
    node = _object(path, value, _NODE_KEYS, "a node (a JSON object)")
    arity = _int(f"{path}.arity", node["arity"], 1, 2, "1 (unary) or 2 (binary)")
    _int(f"{path}.unary", node["unary"], min(UNARY), max(UNARY), "a unary op id in [-1, 24]")
    _int(f"{path}.binary", node["binary"], 0, len(BINARY) - 1, "a binary op id in [0, 9]")
    args = _array(f"{path}.args", node["args"], "a list of input indices")
    _check_arity(path, arity, args)
    inputs: list[int] = []
    for k, a in enumerate(args):
        field = f"{path}.args[{k}]"
        if index == ROOT:
            allowed = f"an operand (0-{N_OPERANDS - 1}) or a hidden node ({N_OPERANDS}-{ROOT - 1})"
        else:
            allowed = (
                f"an operand (0-{N_OPERANDS - 1}) or another hidden node "
                f"({N_OPERANDS}-{ROOT - 1}, not {index} itself)"
            )
        inputs.append(_int(field, a, 0, ROOT - 1, allowed))
        if a == index:
            raise ValueError(f"{_OWNER}.`{field}` must be {allowed}, but got {field}={a!r}.")
    if "decays" in node:
        decays = _array(f"{path}.decays", node["decays"], "a list of decays or nulls")
        if len(decays) != len(args):
            raise ValueError(
                f"{_OWNER}.`{path}.decays` must hold one decay or null per input "
                f"({len(args)} for {path}.args={_show(args)}), but got "
                f"{path}.decays={_show(decays)}."
            )
        for k, d in enumerate(decays):
            if d is not None:
                _decay(f"{path}.decays[{k}]", d)
    return inputs


def _decay(path: str, value: Any) -> None:
    decay = _object(path, value, _DECAY_KEYS, "null or a decay (a JSON object)")
    hidden = decay.get("hidden")
    root = _decay_node(f"{path}.root", decay["root"], with_hidden=hidden is not None)
    built = Decay(
        root, None if hidden is None else _decay_node(f"{path}.hidden", hidden, with_hidden=False)
    )
    values = decay_values(built, 100)
    if not values_are_valid(values):
        finite = values[np.isfinite(values)]
        got = (
            f"values in [{finite.min():.3g}, {finite.max():.3g}]"
            + ("" if finite.size == values.size else " and non-finite ones")
            if finite.size
            else "no finite value"
        )
        raise ValueError(
            f"{_OWNER}.`{path}` must stay in [0, 1] at every step (checked on T = 100, as the "
            f"search does), but got {path}={built.to_string()!r}, with {got}."
        )


def _decay_node(path: str, value: Any, *, with_hidden: bool) -> DecayNode:
    node = _object(path, value, _DECAY_NODE_KEYS, "a decay node (a JSON object)")
    arity = _int(f"{path}.arity", node["arity"], 1, 2, "1 (unary) or 2 (binary)")
    n_ops = len(DECAY_UNARY) if arity == 1 else len(DECAY_BINARY)
    kind = "unary" if arity == 1 else "binary"
    _int(f"{path}.op", node["op"], 0, n_ops - 1, f"a {kind} decay op id in [0, {n_ops - 1}]")
    args = _array(f"{path}.args", node["args"], "a list of schedule ids")
    _check_arity(path, arity, args)
    allowed = f"a schedule id in [0, {N_SCHEDULES - 1}] (a1..a14)"
    if with_hidden:
        top, allowed = H, f"{allowed} or {H} (its hidden node)"
    elif path.endswith(".root"):
        top, allowed = N_SCHEDULES - 1, f"{allowed}; {H}, the hidden node, needs a `hidden`"
    else:
        top = N_SCHEDULES - 1
    ids = tuple(_int(f"{path}.args[{k}]", a, 0, top, allowed) for k, a in enumerate(args))
    return DecayNode(arity, node["op"], ids)


def _check_arity(path: str, arity: int, args: Sequence[Any]) -> None:
    if len(args) != arity:
        kind = "unary" if arity == 1 else "binary"
        raise ValueError(
            f"{_OWNER}.`{path}.args` must hold {arity} input{'s' * (arity - 1)}, as "
            f"{path}.arity={arity} ({kind}), but got {path}.args={_show(args)}."
        )


def _check_acyclic(nodes: dict[int, list[int]]) -> None:
    """Raise on the first edge that closes a cycle among the nodes reachable from the root."""
    state: dict[int, int] = {}  # 1 on the current path, 2 done
    trail: list[int] = []

    def visit(i: int) -> None:
        state[i] = 1
        trail.append(i)
        for k, a in enumerate(nodes[i]):
            if a < N_OPERANDS or state.get(a) == 2:
                continue
            if state.get(a) == 1:
                field = f"{_name(i)}.args[{k}]"
                cycle = " -> ".join(_name(j) for j in trail[trail.index(a) :] + [a])
                raise ValueError(
                    f"{_OWNER}.`{field}` must not close a cycle among the nodes the root reads "
                    f"({cycle}), but got {field}={a}."
                )
            visit(a)
        trail.pop()
        state[i] = 2

    visit(ROOT)


# ---------------------------------------------------------------------------------------------
# Leaf checks and messages
# ---------------------------------------------------------------------------------------------


def _object(
    path: str, value: Any, keys: tuple[tuple[str, ...], tuple[str, ...]], what: str
) -> dict[str, Any]:
    required, optional = keys
    if not isinstance(value, dict):
        raise _type_error(path, value, f"{what} with the keys {_keys(required, optional)}")
    allowed = required + optional
    for key, item in value.items():
        if key not in allowed:
            raise ValueError(
                f"{_label(path)} must have only the keys {_keys(required, optional)}, but got "
                f"{_join(path, str(key))}={_show(item)}."
            )
    for key in required:
        if key not in value:
            raise ValueError(
                f"{_OWNER}.`{_join(path, key)}` must be given, but got "
                f"{path or 'genome'}={_show(value)} without it."
            )
    return value


def _array(path: str, value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise _type_error(path, value, what)
    return value


def _int(path: str, value: Any, low: int, high: int, allowed: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(path, value, f"an int: {allowed}")
    if not low <= value <= high:
        raise ValueError(f"{_OWNER}.`{path}` must be {allowed}, but got {path}={value!r}.")
    return value


def _type_error(path: str, value: Any, what: str) -> TypeError:
    return TypeError(
        f"{_label(path)} must be {what}, but got {path or 'genome'}={_show(value)} of type "
        f"{type(value).__name__}."
    )


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(
                f"{_OWNER} JSON must not repeat a key in an object, but got {key!r} twice: "
                f"{key}={_show(out[key])} and {key}={_show(value)}."
            )
        out[key] = value
    return out


def _label(path: str) -> str:
    return f"{_OWNER}.`{path}`" if path else _OWNER


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _name(index: int) -> str:
    return "root" if index == ROOT else f"hidden[{index - N_OPERANDS}]"


def _keys(required: tuple[str, ...], optional: tuple[str, ...]) -> str:
    return "{" + ", ".join([repr(k) for k in required] + [f"{k!r}?" for k in optional]) + "}"


def _show(value: Any) -> str:
    """``repr(value)``, cut to ``_MAX_SHOWN`` characters."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
