"""Small real image files for tests, made with Pillow."""

from __future__ import annotations

import io
import random

from PIL import Image


def noise_image(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A distinct picture per seed (random blocks, so perceptual hashes differ)."""
    rng = random.Random(seed)
    small = Image.new("RGB", (8, 6))
    small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(48)])
    return small.resize(size, Image.Resampling.NEAREST)


def encode(image: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(noise_image(seed, size), "JPEG", quality=90)


def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(noise_image(seed, size), "PNG")


def truncated_jpeg(seed: int, side: int = 256) -> bytes:
    data = jpeg(seed, (side, side))
    return data[: len(data) // 2]


def sideways_jpeg(image: Image.Image) -> bytes:
    """A camera's JPEG: the pixels stored turned a quarter, with EXIF orientation 6 to turn them back."""
    exif = Image.Exif()
    exif[0x0112] = 6  # the stored picture is shown turned 90 degrees clockwise
    return encode(image.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif)


def bomb_png(side: int = 10_000) -> bytes:
    """A few kilobytes that decode to side*side pixels (100 million by default)."""
    return encode(Image.new("1", (side, side)), "PNG", optimize=True)
