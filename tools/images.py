"""Checking that bytes are a usable image, and hashing them (exact and perceptual).

`inspect_image` never trusts a file name or a Content-Type: it sniffs the
magic bytes, checks the pixel count before decoding (decompression bombs),
then decodes every byte of it (truncated files fail there, not later; a JPEG
decodes at reduced scale, as only the perceptual hash needs its pixels).
Animated images (GIF, WebP, APNG) are kept as they are; models see their
first frame.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from enum import Enum

import numpy as np

DEFAULT_MAX_PIXELS = 64_000_000  # about 8000 x 8000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
HASH_SOURCE_PX = 64  # pictures shrink to about this (short side) before the 32x32 hash thumbnail
ORIENTATION_TAG = 0x0112  # EXIF

# magic bytes -> (format, file extension)
_SIGNATURES: list[tuple[bytes, int, str, str]] = [
    (b"\xff\xd8\xff", 0, "JPEG", "jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", "png"),
    (b"GIF87a", 0, "GIF", "gif"),
    (b"GIF89a", 0, "GIF", "gif"),
    (b"WEBP", 8, "WEBP", "webp"),
    (b"BM", 0, "BMP", "bmp"),
    (b"II*\x00", 0, "TIFF", "tif"),
    (b"MM\x00*", 0, "TIFF", "tif"),
]
_EXT_BY_FORMAT = {fmt: ext for _, _, fmt, ext in _SIGNATURES}


class Reason(str, Enum):
    """Why an input was not added. Values are stable: scripts read them from --json."""

    EMPTY = "empty file"
    NOT_AN_IMAGE = "not an image"
    CORRUPT = "corrupt image"
    TOO_MANY_PIXELS = "too many pixels"
    TOO_LARGE = "too large"
    UNREADABLE = "unreadable"
    SYMLINK_LOOP = "symlink loop"
    UNSAFE_PATH = "unsafe path in archive"
    BAD_ARCHIVE = "bad archive"
    DOWNLOAD_FAILED = "download failed"
    NOT_A_URL = "not a URL"  # a line of a URL list (.txt, .csv, .tsv) that is no http(s) URL
    REFUSED_ADDRESS = "refused address"
    INVALID_LABEL = "invalid label"
    NOT_FOUND = "not found"
    LABEL_CONFLICT = "label conflict"  # added before and confirmed as another label, which it keeps


class ImageRejected(Exception):
    def __init__(self, reason: Reason, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    phash: str
    width: int
    height: int
    format: str
    ext: str
    bytes: int


def sniff_format(data: bytes) -> tuple[str, str] | None:
    """(Pillow format name, extension) from the magic bytes, or None."""
    for magic, offset, fmt, ext in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            if fmt == "WEBP" and data[:4] != b"RIFF":
                continue
            return fmt, ext
    return None


def inspect_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> ImageInfo:
    """Validate and describe an image; raises ImageRejected with a reason."""
    from PIL import Image

    if not data:
        raise ImageRejected(Reason.EMPTY, "the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageRejected(
            Reason.TOO_LARGE, f"{len(data):,} bytes is over the limit of {max_bytes:,} (--max-bytes)"
        )
    sniffed = sniff_format(data)
    if sniffed is None:
        raise ImageRejected(
            Reason.NOT_AN_IMAGE,
            f"not an image file (starts with {data[:8]!r}); supported: JPEG, PNG, GIF, WebP, BMP, TIFF",
        )
    fmt, ext = sniffed
    try:
        with warnings.catch_warnings():
            # Pillow warns past its own limit (about 89 Mpx) while reading the header;
            # a warning becomes a refusal unless our limit is set higher than Pillow's.
            bomb_action = "error" if max_pixels <= (Image.MAX_IMAGE_PIXELS or 0) else "ignore"
            warnings.simplefilter(bomb_action, Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        Reason.TOO_MANY_PIXELS,
                        f"{width}x{height} = {width * height:,} pixels is over the limit of "
                        f"{max_pixels:,} (--max-pixels); it may be a decompression bomb",
                    )
                if image.format == "PNG":  # the one verify() that checks something (chunk CRCs);
                    image.verify()  # it leaves the image unreadable, so read it anew (no file to close)
                    image = Image.open(io.BytesIO(data))
                # A JPEG decodes at 1/2 to 1/8 scale, straight to grey: every byte is still
                # entropy-decoded (so broken files fail), for a fraction of the work.
                image.draft("L", (HASH_SOURCE_PX, HASH_SOURCE_PX))
                image.load()
                orientation = image.getexif().get(ORIENTATION_TAG, 1)
                phash = perceptual_hash(image, orientation=orientation)
        if orientation in (5, 6, 7, 8):  # shown turned a quarter: the picture people see is tall
            width, height = height, width
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            Reason.TOO_MANY_PIXELS,
            f"over the limit of {max_pixels:,} pixels (--max-pixels); it may be a decompression "
            f"bomb ({exc})",
        ) from exc
    except Exception as exc:  # Pillow raises many types for broken files
        detail = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))  # our buffer, not theirs
        raise ImageRejected(Reason.CORRUPT, f"the {fmt} data cannot be decoded: {detail}") from exc
    return ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash,
        width=width,
        height=height,
        format=fmt,
        ext=_EXT_BY_FORMAT.get(fmt, ext),
        bytes=len(data),
    )


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT32 = _dct_matrix(32)
_UPRIGHT = {  # EXIF orientation -> the PIL Transpose that makes the picture upright (as ImageOps.exif_transpose)
    2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
    6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90",
}


def perceptual_hash(image, *, orientation: int = 1) -> str:
    """64-bit DCT hash (pHash) as 16 hex digits: similar pictures get close hashes.

    `orientation` is the EXIF one (1-8). It turns the 32x32 thumbnail, which gives
    the hash of the upright picture without turning (copying) the whole image.
    """
    from PIL import Image

    factor = min(image.size) // HASH_SOURCE_PX
    if factor >= 2:  # box-reduce big images first: a fraction of the resampling work
        image = image.reduce(factor)
    grey = image.convert("L").resize((32, 32), Image.Resampling.BILINEAR)  # antialiased; LANCZOS costs 3x
    if orientation in _UPRIGHT:
        grey = grey.transpose(Image.Transpose[_UPRIGHT[orientation]])
    pixels = np.asarray(grey, dtype=np.float64)
    low = (_DCT32 @ pixels @ _DCT32.T)[:8, :8].flatten()
    median = np.partition(low[1:], 31)[31]  # of the 63 AC terms; np.median costs 10x more
    bits = np.packbits(low > median)
    return bits.tobytes().hex()
