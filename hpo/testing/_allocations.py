"""``CountAllocations``: count the tensors that ops allocate (for "no allocation per step")."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class CountAllocations(TorchDispatchMode):
    """A dispatch mode that counts the tensors ops return that share no storage with an input.

    In-place and out-of-place-into-a-buffer ops (``copy_``, ``_foreach_copy_``, ``add_``) count
    nothing; any op that creates a tensor counts one per new tensor.

    Example:
        >>> x = torch.zeros(3)
        >>> with CountAllocations() as counter:
        ...     _ = x.add_(1.0)
        ...     _ = x + 1.0
        >>> counter.count
        1
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        leaves = torch.utils._pytree.tree_leaves
        inputs = {
            t.untyped_storage().data_ptr()
            for t in leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        self.count += sum(
            isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs
            for t in leaves(out)
        )
        return out
