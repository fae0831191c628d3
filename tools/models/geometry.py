"""A model's resize and centre crop.

`Geometry` describes the resize and crop of a model's own preprocessing. It
runs on one PIL image with torchvision's uint8 kernels (`__call__`: for
transformers models, whose processor it reproduces exactly and about 3x
faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import uint8_pixels

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


@dataclass(frozen=True)
class Geometry:
    """Shorter side to `shortest_edge` (aspect kept) or the whole image to `size`; then a centre crop."""

    shortest_edge: int | None
    size: tuple[int, int] | None  # (height, width)
    crop: tuple[int, int] | None  # (height, width)
    bicubic: bool  # else bilinear; always antialiased
    round_sides: bool = False  # the longer side rounded; else truncated (torchvision, transformers)
    round_offsets: bool = False  # crop offsets rounded half to even (torchvision); else floored (transformers)

    @property
    def output(self) -> tuple[int, int] | None:
        """(height, width) of every result, when it does not depend on the image."""
        return self.crop or self.size

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of an image of this size after the resize, before the crop."""
        if self.size is not None:
            return self.size
        edge = self.shortest_edge
        longer = (lambda side: round(side)) if self.round_sides else int
        return (edge, longer(edge * width / height)) if height <= width else (longer(edge * height / width), edge)

    def offsets(self, height: int, width: int) -> tuple[int, int]:
        """(top, left) of the centre crop in a resized image of this size."""
        crop_height, crop_width = self.crop
        if self.round_offsets:
            return int(round((height - crop_height) / 2.0)), int(round((width - crop_width) / 2.0))
        return (height - crop_height) // 2, (width - crop_width) // 2

    def __call__(self, image: "Image.Image") -> "torch.Tensor":
        """One PIL image -> uint8 (3, H, W), resized by torchvision's uint8 kernels (they release
        the GIL, so worker threads run side by side); the bytes stay channels last."""
        import torchvision.transforms.v2.functional as F

        pixels = uint8_pixels(image)
        pixels = F.resize(pixels, list(self.resized(*pixels.shape[1:])), interpolation=self._mode(), antialias=True)
        return self._cropped(pixels)

    def _mode(self):
        import torchvision.transforms.v2.functional as F

        return F.InterpolationMode.BICUBIC if self.bicubic else F.InterpolationMode.BILINEAR

    def _cropped(self, pixels: "torch.Tensor") -> "torch.Tensor":
        if self.crop is None:
            return pixels
        top, left = self.offsets(*pixels.shape[-2:])
        return pixels[..., top : top + self.crop[0], left : left + self.crop[1]]
