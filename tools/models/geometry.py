"""A model's resize and centre crop, on one image on the CPU or on a batch on the model's device.

`Geometry` describes the resize and crop of a model's own preprocessing. It
runs on one PIL image with torchvision's uint8 kernels (`__call__`: for
transformers models, whose processor it reproduces exactly and about 3x
faster), or on a batch of uint8 images of one size on any device
(`on_batch`). The second is how a GPU resizes images smaller than the
model's input: the loader hands them over as decoded, a few kilobytes each
instead of the 150 of a 224x224 crop, and does no resizing itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from .pixels import uint8_pixels

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

# How close `on_batch` must come to a backend's own `prepare` for the device to resize for
# it: no value more than this many grey levels off, and few values off at all. Measured on
# noise enlarged to 224: one level off in under 0.1% of the values against PIL's kernels,
# up to two levels in 0.8% against torchvision's uint8 kernels (transformers' processors).
# A crop one pixel off, or bilinear for bicubic, puts values tens of levels off.
MAX_LEVELS_OFF = 2
MAX_SHARE_OFF = 0.02


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

    def on_batch(self, pixels: "torch.Tensor") -> "torch.Tensor":
        """(N, 3, h, w) uint8 images of one size, on any device -> (N, 3, H, W) uint8.

        Two passes, width then height, each rounded to whole grey levels as the CPU's
        uint8 kernels (PIL's, torchvision's) round between their passes; one pass in
        floats would keep the overshoot of bicubic and differ by up to 15 levels."""
        import torchvision.transforms.v2.functional as F

        height, width = pixels.shape[-2:]
        target_height, target_width = self.resized(height, width)
        x = pixels.float()
        for size in ([height, target_width], [target_height, target_width]):
            if list(x.shape[-2:]) != size:
                x = F.resize(x, size, interpolation=self._mode(), antialias=True).round_().clamp_(0, 255)
        return self._cropped(x.to(pixels.dtype))

    def _mode(self):
        import torchvision.transforms.v2.functional as F

        return F.InterpolationMode.BICUBIC if self.bicubic else F.InterpolationMode.BILINEAR

    def _cropped(self, pixels: "torch.Tensor") -> "torch.Tensor":
        if self.crop is None:
            return pixels
        top, left = self.offsets(*pixels.shape[-2:])
        return pixels[..., top : top + self.crop[0], left : left + self.crop[1]]


def agrees_on_small_images(geometry: Geometry | None, prepare: Callable) -> bool:
    """Whether `geometry.on_batch` gives what `prepare` gives (within MAX_LEVELS_OFF, in at most
    MAX_SHARE_OFF of the values) for noise images with fewer pixels than the output: of both
    orientations, tiny, and one much wider than the output (narrowed when resized to a size)."""
    import torch
    from PIL import Image

    if geometry is None or geometry.output is None:
        return False
    height, width = geometry.output
    rng = np.random.default_rng(0)
    shapes = ((max(2, height // 3), max(2, width // 2)), (max(2, height // 2), max(3, width // 5)), (7, 9),
              (max(2, height // 8), width * 2))
    for shape in shapes:
        probe = Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))
        expected = prepare(probe)
        if expected.dtype != torch.uint8:
            return False
        got = geometry.on_batch(uint8_pixels(probe)[None])[0]
        if got.shape != expected.shape:
            return False
        off = (got.int() - expected.int()).abs()
        if int(off.max()) > MAX_LEVELS_OFF or float((off > 0).float().mean()) > MAX_SHARE_OFF:
            return False
    return True
