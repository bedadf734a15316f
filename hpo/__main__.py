"""``python -m hpo`` is the ``hpo`` command."""

from __future__ import annotations

import sys

from hpo._cli import main

if __name__ == "__main__":
    sys.exit(main())
