"""Augmentation on the device, a whole minibatch at once (as the fastest CIFAR-10 training code
does): random crops with padding, and horizontal flips of images.

The draws come from torch's random stream, which the trainer swaps in around every training
pass, so the same seed gives the same crops, and snapshots and checkpoints replay them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from trainers._validation import check_choice, check_range

AUGMENTATIONS = ("crop", "crop-flip")


@dataclass(frozen=True)
class Augment:
    """Random crop (with ``padding``) and, for ``crop-flip``, horizontal flip of each example.

    Works on signals (`b x c x L`: a random shift) and images (`b x c x H x W`); flips apply to
    images only. Labels are untouched: the same example keeps its target.

    Args:
        kind: ``crop`` or ``crop-flip``.
        padding: Pixels (samples) of reflection padding on each side; the crop is the input's
            size at a random offset in ``[0, 2 * padding]``, >= 1.

    Example:
        >>> import torch
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(8, 1, 1, 1)
        >>> _ = torch.manual_seed(0)
        >>> y = Augment("crop-flip", padding=1)(x)
        >>> y.shape, bool((y != x).any())
        (torch.Size([8, 1, 4, 4]), True)
    """

    kind: str = "crop-flip"
    padding: int = 4

    def __post_init__(self) -> None:
        check_choice("Augment", "kind", self.kind, AUGMENTATIONS)
        check_range("Augment", "padding", self.padding, 1, integer=True)

    def check_input(self, input_shape: tuple[int, ...]) -> None:
        """Raise ``ValueError`` unless one example of ``input_shape`` can be augmented."""
        if len(input_shape) not in (2, 3):
            raise ValueError(
                f"Augmentation needs signals (channels, length) or images (channels, height, "
                f"width), but the inputs are {tuple(input_shape)}."
            )
        if self.kind == "crop-flip" and len(input_shape) != 3:
            raise ValueError(
                "`augment='crop-flip'` flips images; these inputs are 1-D signals: use 'crop'."
            )
        if min(input_shape[1:]) <= self.padding:
            raise ValueError(
                f"`augment_padding` ({self.padding}) must be smaller than the inputs' "
                f"size {tuple(input_shape[1:])}."
            )

    def __call__(self, x: Tensor) -> Tensor:
        r"""Augment a minibatch ``x`` (`b x c x L` or `b x c x H x W`) on its device."""
        p = self.padding
        b = x.shape[0]
        if x.ndim == 3:
            length = x.shape[-1]
            padded = F.pad(x, (p, p), mode="reflect")  # `b x c x (L + 2p)`
            shift = torch.randint(0, 2 * p + 1, (b, 1, 1), device=x.device)
            idx = shift + torch.arange(length, device=x.device)  # `b x 1 x L`
            return padded.gather(2, idx.expand(-1, x.shape[1], -1))
        h, w = x.shape[-2:]
        padded = F.pad(x, (p, p, p, p), mode="reflect")  # `b x c x (H + 2p) x (W + 2p)`
        dy = torch.randint(0, 2 * p + 1, (b, 1, 1, 1), device=x.device)
        dx = torch.randint(0, 2 * p + 1, (b, 1, 1, 1), device=x.device)
        rows = (dy + torch.arange(h, device=x.device).view(1, 1, h, 1)).expand(
            -1, x.shape[1], -1, padded.shape[-1]
        )
        out = padded.gather(2, rows)  # `b x c x H x (W + 2p)`
        cols = (dx + torch.arange(w, device=x.device).view(1, 1, 1, w)).expand(
            -1, x.shape[1], h, -1
        )
        out = out.gather(3, cols)  # `b x c x H x W`
        if self.kind == "crop-flip":
            flip = torch.rand(b, 1, 1, 1, device=x.device) < 0.5
            out = torch.where(flip, out.flip(-1), out)
        return out
