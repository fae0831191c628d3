"""A held-out <label>/<image> folder unlike ImageNet: scikit-learn's bundled 8x8 handwritten digits.

    python bench/make_digits.py OUT [--count 1000]

Writes `count` of the 1,797 digits (a fixed random choice) as 32x32 grey PNGs
under OUT/zero .. OUT/nine, for the benchmarks (e.g. bench/labelling.py OUT).
The data ships inside scikit-learn (installed with sentence-transformers), so
nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("bench/make_digits.py needs scikit-learn: pip install scikit-learn")
    import numpy as np
    from PIL import Image

    digits = load_digits()
    chosen = np.random.default_rng(0).permutation(len(digits.images))[: args.count]
    for index in chosen:
        folder = args.out / NAMES[digits.target[index]]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[index] * 255 / 16).astype(np.uint8)  # the data's grey levels are 0..16
        Image.fromarray(pixels).resize((32, 32), Image.Resampling.NEAREST).save(folder / f"{index}.png")
    print(f"wrote {len(chosen)} digits under {args.out}")


if __name__ == "__main__":
    main()
