"""Genome building blocks shared by the NOS tests."""

from __future__ import annotations

from strategies.nos import Genome, Node

FILLER = Node(1, -1, 0, (0,))  # id(g): fills the hidden slots a test does not use


def graph(hidden0: Node, root: Node, momentum: int = 0) -> Genome:
    """A genome whose first hidden node is ``hidden0`` (the others ``FILLER``)."""
    return Genome(hidden=(hidden0,) + (FILLER,) * 4, root=root, momentum=momentum)
