"""Neural optimizer search: the public face of ``strategies._nos`` (``from strategies.nos import
Genome, GraphOptimizer, NOSSampler, ...``)."""

from __future__ import annotations

from strategies._nos import *  # noqa: F403
from strategies._nos import __all__  # noqa: F401
