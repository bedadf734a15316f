"""Argument checks for configs (``check_range``, ``check_choice``, ``check_type``).

They are defined in ``trainers._validation`` so that the trainer layer can use them without
depending on ``hpo``; strategies import them from here.
"""

from __future__ import annotations

from trainers._validation import check_choice, check_lr_bounds, check_range, check_type

__all__ = ["check_choice", "check_lr_bounds", "check_range", "check_type"]
