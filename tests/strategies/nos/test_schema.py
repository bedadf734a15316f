"""The genome JSON schema: every bad genome is refused with a message that names the field and
the value, and every genome the search produces is accepted."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import hpo
from strategies._nos._spec import check_nos_spec
from strategies.nos import (
    MUTATIONS,
    Genome,
    mutate,
    named_genome,
    random_genome,
    random_valid_genome,
    valid_mutant,
)

_FILLER = {"arity": 1, "unary": -1, "binary": 0, "args": [0], "decays": [None]}  # id(g)
#: A valid genome that uses every part of the schema: unary and binary nodes, a decay with and
#: one without a hidden node, momentum and flip. U = (s hat) + [id(tanh(a1))][(v hat)/(d(t) g)].
GOOD: dict[str, Any] = {
    "hidden": [
        {
            "arity": 1,
            "unary": 14,
            "binary": 0,
            "args": [0],
            "decays": [{"root": {"arity": 2, "op": 2, "args": [12, 1]}, "hidden": None}],
        },
        {"arity": 2, "unary": -1, "binary": 5, "args": [3, 20], "decays": [None, None]},
        copy.deepcopy(_FILLER),
        copy.deepcopy(_FILLER),
        copy.deepcopy(_FILLER),
    ],
    "root": {
        "arity": 2,
        "unary": -1,
        "binary": 0,
        "args": [4, 21],
        "decays": [
            None,
            {
                "root": {"arity": 1, "op": 12, "args": [14]},
                "hidden": {"arity": 1, "op": 4, "args": [0]},
            },
        ],
    },
    "momentum": 2,
    "flip": False,
}
_DELETE = object()


def edited(*edits: tuple[tuple[str | int, ...], Any]) -> dict[str, Any]:
    """``GOOD`` with each ``(path, value)`` set (``_DELETE`` removes the key)."""
    data = copy.deepcopy(GOOD)
    for path, value in edits:
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if value is _DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return data


def bad(
    data: Any, error: type[Exception], field: str, got: str, *, id: str, text: str | None = None
) -> Any:
    """A table row: the genome (as JSON text), the exception, and what the message must hold:
    the field (``Genome.`field` must``; ``""`` for the genome or its text) and ``got``."""
    return pytest.param(json.dumps(data) if text is None else text, error, field, got, id=id)


def at(
    path: tuple[str | int, ...],
    value: Any,
    error: type[Exception],
    *,
    id: str,
    field: str | None = None,
    shown: str | None = None,
) -> Any:
    """A row for ``GOOD`` with ``value`` at ``path``: the message must name ``field`` (default:
    ``path``) and show ``field=shown`` (default: ``repr(value)``)."""
    field = field or _field(path)
    return bad(edited((path, value)), error, field, f"{field}={shown or repr(value)}", id=id)


def _field(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


_H0, _H1 = ("hidden", 0), ("hidden", 1)
_D0 = ("hidden", 0, "decays", 0)  # a decay without a hidden node: (a13)*(a2)
_D1 = ("root", "decays", 1)  # a decay with a hidden node: id(tanh(a1))
BAD = [
    # ---- the genome object
    bad([1], TypeError, "", "genome=[1]", id="genome-is-a-list"),
    bad(None, TypeError, "", "genome=None", id="genome-is-null"),
    bad("{}", TypeError, "", "genome='{}'", id="genome-is-a-string"),
    bad({}, ValueError, "hidden", "genome={}", id="empty-object"),
    bad(edited((("hidden",), _DELETE)), ValueError, "hidden", "genome={'root'", id="no-hidden"),
    bad(edited((("root",), _DELETE)), ValueError, "root", "genome={'hidden'", id="no-root"),
    bad(edited((("lr",), 0.1)), ValueError, "", "lr=0.1", id="unknown-key"),
    at(("momentum",), 1.7, TypeError, id="momentum-1.7"),
    at(("momentum",), 3, ValueError, id="momentum-3"),
    at(("momentum",), -1, ValueError, id="momentum-negative"),
    at(("momentum",), 1.0, TypeError, id="momentum-float"),
    at(("momentum",), True, TypeError, id="momentum-bool"),
    at(("momentum",), "1", TypeError, id="momentum-str"),
    at(("momentum",), None, TypeError, id="momentum-null"),
    at(("flip",), "no", TypeError, id="flip-str"),
    at(("flip",), 1, TypeError, id="flip-int"),
    at(("flip",), None, TypeError, id="flip-null"),
    # ---- the hidden nodes
    at(("hidden",), {"0": _FILLER}, TypeError, shown="{'0': {", id="hidden-dict"),
    at(("hidden",), GOOD["hidden"][:4], ValueError, shown="[{", id="4-hidden-nodes"),
    at(("hidden",), [*GOOD["hidden"], _FILLER], ValueError, shown="[{", id="6-hidden-nodes"),
    at(("hidden", 2), [1], TypeError, id="node-is-a-list"),
    at(("hidden", 3), None, TypeError, id="node-is-null"),
    bad(edited(((*_H1, "bias"), 0)), ValueError, "hidden[1]", "hidden[1].bias=0", id="node-key"),
    bad(
        edited(((*_H1, "arity"), _DELETE)),
        ValueError,
        "hidden[1].arity",
        "hidden[1]={'unary'",
        id="node-without-arity",
    ),
    at((*_H0, "arity"), 3, ValueError, id="arity-3"),
    at((*_H0, "arity"), 0, ValueError, id="arity-0"),
    at((*_H0, "arity"), 1.0, TypeError, id="arity-float"),
    at((*_H0, "arity"), True, TypeError, id="arity-bool"),
    at((*_H0, "unary"), 25, ValueError, id="unary-25"),
    at((*_H0, "unary"), -2, ValueError, id="unary-negative"),
    at((*_H0, "unary"), "tanh", TypeError, id="unary-by-name"),
    # ---- arity: a unary node reads one input, a binary node two
    at((*_H0, "args"), [0, 1], ValueError, id="unary-node-with-2-args"),
    at(("root", "args"), [21], ValueError, id="binary-node-with-1-arg"),
    at(("root", "args"), [], ValueError, id="no-args"),
    at((*_H0, "args"), 0, TypeError, id="args-not-a-list"),
    # ---- inputs: operands 0-19 and hidden nodes 20-24, never the node itself
    at((*_H0, "args"), [25], ValueError, field="hidden[0].args[0]", shown="25", id="input-25"),
    at((*_H0, "args"), [-1], ValueError, field="hidden[0].args[0]", shown="-1", id="input-neg"),
    at((*_H0, "args"), [20], ValueError, field="hidden[0].args[0]", shown="20", id="input-self"),
    at((*_H0, "args"), ["g"], TypeError, field="hidden[0].args[0]", shown="'g'", id="by-name"),
    at((*_H0, "args"), [math.nan], TypeError, field="hidden[0].args[0]", shown="nan", id="nan"),
    at(("root", "args"), [4, 5], ValueError, id="root-reads-no-hidden-node"),
    at((*_H0, "args"), [21], ValueError, field="hidden[0].args[0]", shown="21", id="cycle"),
    # ---- binary ops
    at(("root", "binary"), 10, ValueError, id="binary-10"),
    at(("root", "binary"), math.inf, TypeError, id="binary-inf"),
    at(("root", "binary"), math.nan, TypeError, id="binary-nan"),
    bad(
        edited((("root", "binary"), _DELETE)),
        ValueError,
        "root.binary",
        "root={'arity'",
        id="node-without-binary",
    ),
    # ---- decays on edges: one per input, each a small graph over the schedules a1..a14
    at(("root", "decays"), [None], ValueError, id="decays-fewer-than-args"),
    at(("root", "decays"), {}, TypeError, id="decays-not-a-list"),
    at(("root", "decays", 0), 1, TypeError, id="decay-not-an-object"),
    bad(
        edited(((*_D1, "root"), _DELETE)),
        ValueError,
        "root.decays[1].root",
        "root.decays[1]={'hidden'",
        id="decay-without-root",
    ),
    bad(
        edited(((*_D1, "scale"), 2)),
        ValueError,
        "root.decays[1]",
        "root.decays[1].scale=2",
        id="decay-unknown-key",
    ),
    at((*_D0, "root", "op"), 7, ValueError, id="binary-decay-op-7"),
    at((*_D1, "hidden", "op"), 13, ValueError, id="unary-decay-op-13"),
    at((*_D1, "root", "arity"), "1", TypeError, id="decay-arity-str"),
    at((*_D1, "root", "args"), [14, 0], ValueError, id="decay-arity-mismatch"),
    at(
        (*_D0, "root", "args"),
        [12, 14],
        ValueError,
        field="hidden[0].decays[0].root.args[1]",
        shown="14",
        id="schedule-14-without-hidden",
    ),
    at(
        (*_D1, "hidden", "args"),
        [14],
        ValueError,
        field="root.decays[1].hidden.args[0]",
        shown="14",
        id="decay-hidden-reads-itself",
    ),
    at(
        (*_D0, "root", "args"),
        [12, -1],
        ValueError,
        field="hidden[0].decays[0].root.args[1]",
        shown="-1",
        id="schedule-negative",
    ),
    at(
        (*_D0, "root"),
        {"arity": 2, "op": 5, "args": [0, 1]},  # a1 / a2: not in [0, 1]
        ValueError,
        field="hidden[0].decays[0]",
        shown="'(a1)/(a2)'",
        id="decay-leaves-0-1",
    ),
    # ---- the text itself
    bad(None, ValueError, "", "line 1 column 1 (char 0)", id="empty-text", text=""),
    bad(None, ValueError, "", "line 1 column 2 (char 1)", id="cut-text", text="{"),
    bad(None, ValueError, "", "(char 1)", id="single-quotes", text="{'hidden': []}"),
    bad(None, ValueError, "", "Extra data", id="trailing-text", text=json.dumps(GOOD) + " x"),
    bad(
        None,
        ValueError,
        "",
        "'momentum' twice: momentum=1 and momentum=2",
        id="repeated-key",
        text='{"momentum": 1, ' + json.dumps(GOOD)[1:],
    ),
    bad(None, ValueError, "", "too deeply nested", id="deep", text="[" * 100_000 + "]" * 100_000),
]


def _check_message(err: BaseException, field: str, got: str) -> None:
    message = str(err)
    assert "\n" not in message
    if field:
        assert f"Genome.`{field}` must" in message
    else:
        assert "Genome must" in message or "Genome JSON must" in message
    assert got in message


@pytest.mark.parametrize(("text", "error", "field", "got"), BAD)
def test_a_bad_genome_json_is_refused_naming_the_field_and_the_value(text, error, field, got):
    with pytest.raises(error) as info:
        Genome.from_json(text)
    assert type(info.value) is error
    _check_message(info.value, field, got)


@pytest.mark.parametrize(("text", "error", "field", "got"), BAD)
def test_a_bad_nos_genome_spec_is_refused_before_training(text, error, field, got):
    # a spec string's content is a value: the registry's check answers with ValueError
    with pytest.raises(
        ValueError, match=r"^Task\.`optimizer` 'nos:genome:\.\.\.' must carry"
    ) as info:
        check_nos_spec("nos:genome:" + text)
    _check_message(info.value, field, got)


@pytest.mark.parametrize(
    ("edit", "got"),
    [
        pytest.param((("momentum",), 1.7), "momentum=1.7", id="momentum"),
        pytest.param((("flip",), "no"), "flip='no'", id="flip"),
        pytest.param((("hidden", 0, "args"), [21]), "hidden[0].args[0]=21", id="cycle"),
    ],
)
def test_a_task_refuses_a_bad_genome_when_it_is_created(edit, got):
    with pytest.raises(ValueError, match=r"Genome's JSON: Genome\.`") as info:
        hpo.Task(optimizer="nos:genome:" + json.dumps(edited(edit)))
    assert got in str(info.value)


@pytest.mark.parametrize(
    ("data", "error", "got"),
    [
        pytest.param(edited((("momentum",), 1.7)), TypeError, "momentum=1.7", id="momentum"),
        pytest.param(edited((("flip",), "no")), TypeError, "flip='no'", id="flip"),
        pytest.param(edited((("root", "args"), (4, 25))), ValueError, "args[1]=25", id="tuple"),
        pytest.param([GOOD], TypeError, "genome=[{", id="list"),
    ],
)
def test_from_dict_checks_as_from_json_does(data, error, got):
    with pytest.raises(error, match=r"^Genome") as info:
        Genome.from_dict(data)
    assert got in str(info.value)


def test_from_json_needs_a_str():
    with pytest.raises(TypeError, match=r"Genome JSON must be a str, but got text=b'\{\}'"):
        Genome.from_json(b"{}")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Good genomes still pass
# ---------------------------------------------------------------------------------------------


def test_the_reference_genome_is_accepted_as_given():
    genome = Genome.from_json(json.dumps(GOOD))
    assert json.loads(genome.to_json()) == GOOD
    assert genome.momentum == 2 and genome.flip is False


def test_the_optional_keys_take_their_defaults():
    data = copy.deepcopy(GOOD)
    del data["momentum"], data["flip"], data["root"]["decays"]
    for node in data["hidden"]:
        node.pop("decays")
    genome = Genome.from_json(json.dumps(data))
    assert genome.momentum == 0 and genome.flip is False
    assert genome.decays_used() == []


@pytest.mark.parametrize("seed", range(100))
def test_every_random_genome_round_trips(seed):
    genome = random_genome(np.random.default_rng(seed))
    assert Genome.from_json(genome.to_json()) == genome
    assert Genome.from_dict(genome.to_dict()) == genome  # tuples, as ``asdict`` gives them


@pytest.mark.parametrize("operator", MUTATIONS)
def test_every_mutant_round_trips(operator):
    rng = np.random.default_rng(7)
    genome = random_genome(rng)
    for _ in range(30):
        if operator == "swap" and not any(genome.node(i).arity == 2 for i in genome.active()):
            genome = mutate(genome, rng, "arity")
        genome = mutate(genome, rng, operator)
        assert Genome.from_json(genome.to_json()) == genome


def test_integrity_checked_genomes_and_their_mutants_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(3):
        genome = random_valid_genome(rng)
        assert Genome.from_json(genome.to_json()) == genome
        child = valid_mutant(genome, rng)
        assert Genome.from_json(child.to_json()) == child
        flipped = replace(child, flip=not child.flip)
        assert Genome.from_json(flipped.to_json()) == flipped


@pytest.mark.parametrize("name", ["sgd", "adam", "qhm-graph", "opt10-graph"])
def test_named_genomes_round_trip_and_are_valid_specs(name):
    genome = named_genome(name)
    assert Genome.from_json(genome.to_json()) == genome
    assert check_nos_spec("nos:genome:" + genome.to_json()) == genome
