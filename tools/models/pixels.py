"""Decoded images as tensors: the one step every backend and the batch geometry share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


def uint8_pixels(image: "Image.Image") -> "torch.Tensor":
    """An image as a (3, H, W) uint8 tensor: one copy of its RGB bytes, seen channels first."""
    import torch

    return torch.from_numpy(np.array(image if image.mode == "RGB" else image.convert("RGB"))).permute(2, 0, 1)
