"""The NOS search space: genomes (update graphs with decay functions) as immutable data.

``docs/nos-search-space.md`` (recovered from the authors' code) is the reference; tables and
indices follow the code's order.

A ``Genome`` is a NASNet-like DAG: 20 operands (indices 0–19), 5 hidden nodes (20–24) and a
root (25). Each node is unary or binary; it keeps both a unary and a binary op id so that an
arity flip reuses the latent op. Each incoming edge may carry a ``Decay`` (a tiny graph over the
14 schedules a1–a14) that multiplies the input by ``d(t)`` before the op. Only the subgraph
reachable from the root is active. The momentum type wraps the root's output ``U``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# ---------------------------------------------------------------------------------------------
# Tables (code order)
# ---------------------------------------------------------------------------------------------

N_OPERANDS = 20
N_HIDDEN = 5
ROOT = N_OPERANDS + N_HIDDEN  # 25
HIDDEN = tuple(range(N_OPERANDS, ROOT))  # 20..24
N_SCHEDULES = 14

#: Operand labels as the authors' logs print them; operand 16's log label said g^2, but its
#: value is computed from g^3 — the label is fixed here, the value kept.
OPERANDS = (
    "g", "g^2", "g^3", "v hat", "s hat", "lam hat", "1", "2", "10-6w", "10-5w", "10-4w",
    "10-3w", "sign(g)", "sign(v hat)", "((1-0.7)*g+0.7*v hat)", "((1-0.95)*g^2+0.95*s hat)",
    "((1-0.99)*g^3+0.99*lam hat)", "mean(beta*v-g)", "mean(beta*s-g^2)", "mean(beta*lam-g^3)",
)  # fmt: skip
OPERANDS_LATEX = (
    r"g", r"g^2", r"g^3", r"\hat v", r"\hat s", r"\hat\lambda", r"1", r"2", r"10^{-6}w",
    r"10^{-5}w", r"10^{-4}w", r"10^{-3}w", r"\mathrm{sign}(g)", r"\mathrm{sign}(\hat v)",
    r"(0.3g+0.7\hat v)", r"(0.05g^2+0.95\hat s)", r"(0.01g^3+0.99\hat\lambda)",
    r"\overline{\beta v-g}", r"\overline{\beta s-g^2}", r"\overline{\beta\lambda-g^3}",
)  # fmt: skip

#: Unary update ops, index -1 = identity, 22–24 keep state.
UNARY = {
    -1: "id", 0: "neg", 1: "ln", 2: "sqrt", 3: "exp", 4: "abs", 5: "sigmoid", 6: "dsoft",
    7: "softplus", 8: "erf", 9: "erfc", 10: "asinh", 11: "tanh", 12: "arctan", 13: "reciprocal",
    14: "bessel_i1e", 15: "relu", 16: "min0", 17: "dropout0.5", 18: "dropout0.3",
    19: "dropout0.1", 20: "clip_by_norm", 21: "softsign", 22: "expMovAvg", 23: "deltaChange",
    24: "MaxValue",
}  # fmt: skip
STATEFUL = (22, 23, 24)
BINARY = {
    0: "+",
    1: "-",
    2: "*",
    3: "max",
    4: "min",
    5: "/",
    6: "div_sqrt",
    7: "clip",
    8: "ema",
    9: "pow",
}
MOMENTUM = ("None", "Mom", "Nest")

#: Decay-function ops.
DECAY_UNARY = {
    0: "sigmoid",
    1: "dsoft",
    2: "erf",
    3: "erfc",
    4: "tanh",
    5: "arctan",
    6: "bessel_i1e",
    7: "square",
    8: "sqrt",
    9: "softsign",
    10: "dtanh",
    11: "dsigmoid",
    12: "id",
}
DECAY_BINARY = {0: "+", 1: "-", 2: "*", 3: "max", 4: "min", 5: "/", 6: "div_sqrt"}
H = N_SCHEDULES  # the index of the hidden decay node among a decay root's inputs


# ---------------------------------------------------------------------------------------------
# Decay functions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecayNode:
    """One node of a decay function: ``op`` applied to ``args`` (schedule ids 0–13 for
    a1–a14, or ``H`` = 14 for the hidden decay node)."""

    arity: int
    op: int
    args: tuple[int, ...]


@dataclass(frozen=True)
class Decay:
    """A decay function: a root node over the schedules and an optional hidden node."""

    root: DecayNode
    hidden: DecayNode | None = None

    @property
    def uses_hidden(self) -> bool:
        return self.hidden is not None and H in self.root.args

    def to_string(self) -> str:
        return _decay_str(self.root, self.hidden, latex=False)

    def to_latex(self) -> str:
        return _decay_str(self.root, self.hidden, latex=True)


# ---------------------------------------------------------------------------------------------
# Update graphs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A hidden node or the root.

    Attributes:
        arity: 1 (unary) or 2 (binary).
        unary: The unary op id (-1..24), used when ``arity == 1``.
        binary: The binary op id (0..9), used when ``arity == 2``.
        args: Input indices (operands 0–19, hidden nodes 20–24): one or two.
        decays: One ``Decay`` or ``None`` per input edge.
    """

    arity: int
    unary: int
    binary: int
    args: tuple[int, ...]
    decays: tuple[Decay | None, ...] = ()

    def __post_init__(self) -> None:
        if len(self.decays) != len(self.args):
            object.__setattr__(self, "decays", (None,) * len(self.args))


@dataclass(frozen=True)
class Genome:
    """An optimizer: the update graph, its momentum type and the integrity check's flip flag.

    Immutable and hashable; ``to_json`` / ``from_json`` round-trip; ``equation()`` is the
    readable form the authors' logs print (``Nest ~ bessel_i1e(bessel_i1e(g))``) and
    ``latex()`` the same in LaTeX.

    Attributes:
        hidden: The 5 hidden nodes (indices 20–24).
        root: The output node (index 25); its value is the update ``U``.
        momentum: 0 none (w -= lr U), 1 momentum, 2 Nesterov.
        flip: Negate every ``lr * U`` term (set by the integrity check for ascent-form graphs).

    Example:
        >>> g = Genome(hidden=(Node(1, -1, 0, (0,)),) * 5, root=Node(1, 14, 0, (20,)), momentum=2)
        >>> g.equation()
        'Nest ~ bessel_i1e(id(g))'
        >>> Genome.from_json(g.to_json()) == g
        True
    """

    hidden: tuple[Node, ...]
    root: Node
    momentum: int = 0
    flip: bool = field(default=False)

    def __post_init__(self) -> None:
        if len(self.hidden) != N_HIDDEN:
            raise ValueError(f"Genome needs {N_HIDDEN} hidden nodes, got {len(self.hidden)}.")
        if self.momentum not in (0, 1, 2):
            raise ValueError(f"Genome.`momentum` must be 0, 1 or 2, got {self.momentum!r}.")

    # ---------------------------------------------------------------- structure

    def node(self, index: int) -> Node:
        """The node at ``index`` (20–24 hidden, 25 root)."""
        if index == ROOT:
            return self.root
        return self.hidden[index - N_OPERANDS]

    def active(self) -> list[int]:
        """Active node indices (reachable from the root) in evaluation (topological) order.

        Raises:
            ValueError: The active subgraph has a cycle.
        """
        order: list[int] = []
        state: dict[int, int] = {}  # 1 visiting, 2 done

        def visit(i: int) -> None:
            if i < N_OPERANDS or state.get(i) == 2:
                return
            if state.get(i) == 1:
                raise ValueError("the update graph has a cycle")
            state[i] = 1
            for a in self.node(i).args:
                visit(a)
            state[i] = 2
            order.append(i)

        visit(ROOT)
        return order

    def is_acyclic(self) -> bool:
        try:
            self.active()
        except ValueError:
            return False
        return True

    def operands_used(self) -> set[int]:
        return {a for i in self.active() for a in self.node(i).args if a < N_OPERANDS}

    def decays_used(self) -> list[Decay]:
        return [d for i in self.active() for d in self.node(i).decays if d is not None]

    def with_node(self, index: int, node: Node) -> Genome:
        """A copy with node ``index`` replaced."""
        if index == ROOT:
            return replace(self, root=node)
        hidden = list(self.hidden)
        hidden[index - N_OPERANDS] = node
        return replace(self, hidden=tuple(hidden))

    # ---------------------------------------------------------------- text

    def equation(self) -> str:
        """``<Type> ~ <expr>`` as the authors' logs print it (used for de-duplication); a
        flipped genome reads ``<Type> ~ -[<expr>]``."""
        expr = self._expr(ROOT, latex=False)
        return f"{MOMENTUM[self.momentum]} ~ {f'-[{expr}]' if self.flip else expr}"

    def latex(self) -> str:
        r"""The update as LaTeX, e.g. ``\text{Nest}: U = I_1^e(g)``."""
        expr = self._expr(ROOT, latex=True)
        if self.flip:
            expr = rf"-\left[{expr}\right]"
        return rf"\text{{{MOMENTUM[self.momentum]}}}:\ U = {expr}"

    def __str__(self) -> str:
        return self.equation()

    def _expr(self, index: int, *, latex: bool) -> str:
        if index < N_OPERANDS:
            return OPERANDS_LATEX[index] if latex else OPERANDS[index]
        node = self.node(index)
        args = []
        for a, d in zip(node.args, node.decays):
            inner = self._expr(a, latex=latex)
            if d is not None:
                inner = (
                    rf"\left[{d.to_latex()}\right]{inner}"
                    if latex
                    else f"[{d.to_string()}][{inner}]"
                )
            args.append(inner)
        if node.arity == 1:
            return _unary_str(node.unary, args[0], latex)
        return _binary_str(node.binary, args[0], args[1], latex)

    # ---------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """Compact JSON; ``Genome.from_json`` rebuilds an equal genome."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genome:
        """The genome of ``to_dict``'s form, checked in full first (``strategies._nos._schema``
        gives the schema); nothing is coerced.

        Raises:
            TypeError: A field has the wrong type (the message names it by its path).
            ValueError: A field has a bad value, a key is missing or unknown, or the graph is
                not one the search can produce.
        """
        from strategies._nos._schema import check_genome_dict  # it imports this module

        check_genome_dict(data)

        def decay(d: dict[str, Any] | None) -> Decay | None:
            if d is None:
                return None
            hidden = d.get("hidden")
            return Decay(
                root=DecayNode(d["root"]["arity"], d["root"]["op"], tuple(d["root"]["args"])),
                hidden=None
                if hidden is None
                else DecayNode(hidden["arity"], hidden["op"], tuple(hidden["args"])),
            )

        def node(n: dict[str, Any]) -> Node:
            return Node(
                n["arity"],
                n["unary"],
                n["binary"],
                tuple(n["args"]),
                tuple(decay(d) for d in n.get("decays", [None] * len(n["args"]))),
            )

        return cls(
            hidden=tuple(node(n) for n in data["hidden"]),
            root=node(data["root"]),
            momentum=data.get("momentum", 0),
            flip=data.get("flip", False),
        )

    @classmethod
    def from_json(cls, text: str) -> Genome:
        """``from_dict`` of a JSON text.

        Raises:
            TypeError: As ``from_dict``, or ``text`` is not a ``str``.
            ValueError: As ``from_dict``, or ``text`` is not JSON (the message gives the
                error's position) or repeats a key.
        """
        from strategies._nos._schema import parse_genome_json  # it imports this module

        return cls.from_dict(parse_genome_json(text))


# ---------------------------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------------------------

_UNARY_LATEX = {
    -1: "{x}", 0: "-{x}", 1: r"\ln(|{x}|+\epsilon)", 2: r"\sqrt{{|{x}|}}", 3: r"e^{{{x}}}", 4: r"|{x}|",
    5: r"\sigma({x})", 6: r"\frac{{1}}{{1+|{x}|}}", 7: r"\mathrm{{softplus}}({x})",
    8: r"\mathrm{{erf}}({x})", 9: r"\mathrm{{erfc}}({x})", 10: r"\mathrm{{asinh}}({x})",
    11: r"\tanh({x})", 12: r"\arctan({x})", 13: r"\frac{{1}}{{{x}+\epsilon}}",
    14: r"I_1^e({x})", 15: r"\max({x},0)", 16: r"\min({x},0)",
    17: r"\mathrm{{drop}}_{{0.5}}({x})", 18: r"\mathrm{{drop}}_{{0.3}}({x})",
    19: r"\mathrm{{drop}}_{{0.1}}({x})", 20: r"\mathrm{{clip}}_{{\|\cdot\|\le1}}({x})",
    21: r"\mathrm{{softsign}}({x})", 22: r"\mathrm{{EMA}}({x})", 23: r"\Delta({x})",
    24: r"\max_t({x})",
}  # fmt: skip
_BINARY_LATEX = {
    0: "({x}+{y})", 1: "({x}-{y})", 2: r"({x} \cdot {y})", 3: r"\max({x},{y})",
    4: r"\min({x},{y})", 5: r"\frac{{{x}}}{{{y}+\epsilon}}", 6: r"\frac{{{x}}}{{\sqrt{{1+{y}^2}}}}",
    7: r"\mathrm{{clip}}({x},\pm|{y}|)", 8: r"(0.95{x}+0.05{y})", 9: r"|{x}|^{{{y}}}",
}  # fmt: skip
_DECAY_UNARY_LATEX = {
    0: r"\sigma({x})", 1: r"\frac{{1}}{{1+|{x}|}}", 2: r"\mathrm{{erf}}({x})",
    3: r"\mathrm{{erfc}}({x})", 4: r"\tanh({x})", 5: r"\arctan({x})", 6: r"I_1^e({x})",
    7: "{x}^2", 8: r"\sqrt{{|{x}|}}", 9: r"\mathrm{{softsign}}({x})", 10: r"(1-\tanh^2{x})",
    11: r"\sigma'({x})", 12: "{x}",
}  # fmt: skip


def _unary_str(op: int, x: str, latex: bool) -> str:
    if latex:
        return _UNARY_LATEX[op].format(x=x)
    if op == -1:
        return f"id({x})"
    if op == 0:
        return f"-({x})"
    return f"{UNARY[op]}({x})"


def _binary_str(op: int, x: str, y: str, latex: bool) -> str:
    if latex:
        return _BINARY_LATEX[op].format(x=x, y=y)
    if op in (0, 1, 2, 5):
        return f"({x}){BINARY[op]}({y})"
    return f"{BINARY[op]}({x}, {y})"


def _decay_str(root: DecayNode, hidden: DecayNode | None, *, latex: bool) -> str:
    def arg(a: int) -> str:
        if a == H:
            assert hidden is not None
            return node(hidden)
        return rf"a_{{{a + 1}}}" if latex else f"a{a + 1}"

    def node(n: DecayNode) -> str:
        args = [arg(a) for a in n.args]
        if n.arity == 1:
            if latex:
                return _DECAY_UNARY_LATEX[n.op].format(x=args[0])
            name = DECAY_UNARY[n.op]
            return args[0] if name == "id" else f"{name}({args[0]})"
        if latex:
            return _BINARY_LATEX[n.op].format(x=args[0], y=args[1])
        if n.op in (0, 1, 2, 5):
            return f"({args[0]}){DECAY_BINARY[n.op]}({args[1]})"
        return f"{DECAY_BINARY[n.op]}({args[0]}, {args[1]})"

    return node(root)
