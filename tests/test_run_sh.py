"""./run.sh's set-up, run in a temporary copy with a stand-in Python that only notes what it is
asked to do (a real install takes minutes): it finds Python quietly past pyenv shims, one .venv
serves `app` and `test`, and pip runs again only for what is missing or when pyproject.toml
changes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The stand-in interpreter: every call is written to $CALLS; `-m venv DIR` makes DIR/bin/python
# (itself) and DIR/bin/labelchat (which notes its arguments too).
FAKE_PYTHON = """#!/usr/bin/env bash
echo "python $*" >> "$CALLS"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
  printf '#!/usr/bin/env bash\\necho "labelchat $*" >> "$CALLS"\\n' > "$3/bin/labelchat"
  chmod +x "$3/bin/labelchat"
fi
"""
# What a pyenv shim prints for a version that is installed but not active.
PYENV_SHIM = """#!/usr/bin/env bash
echo "pyenv: $(basename "$0"): command not found" >&2
echo "The \\`$(basename "$0")' command exists in these Python versions:" >&2
exit 127
"""


class Checkout:
    def __init__(self, folder: Path):
        self.folder = folder
        self.calls = folder / "calls.log"
        self.bin = folder / "fakebin"

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        self.calls.write_text("")
        environment = {key: value for key, value in os.environ.items() if key not in ("PYTHON", "VIRTUAL_ENV")}
        environment.update(PATH=f"{self.bin}{os.pathsep}{os.environ['PATH']}", CALLS=str(self.calls), **env)
        done = subprocess.run(["./run.sh", *args], cwd=self.folder, env=environment, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done

    def pip_installs(self) -> list[str]:
        """What `pip install -e` was asked for in the last run ('.' or '.[extras]')."""
        return [line.split()[-1] for line in self.calls.read_text().splitlines() if " install --quiet -e " in line]


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path) -> Checkout:
    shutil.copy(ROOT / "run.sh", tmp_path / "run.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    fakes = Checkout(tmp_path)
    fakes.bin.mkdir()
    for name in ("python3.13", "python3.12"):  # shims ahead of the interpreter that works
        _script(fakes.bin / name, PYENV_SHIM)
    _script(fakes.bin / "python3.11", FAKE_PYTHON)
    _script(fakes.bin / "chromium", "#!/bin/sh\n")  # so `test` does not apt-get the browser
    return fakes


def test_finding_python_past_pyenv_shims_prints_nothing_about_them(checkout):
    done = checkout.run("app")
    assert "command not found" not in done.stderr and "pyenv" not in done.stderr, done.stderr
    assert checkout.calls.read_text().splitlines()[0].startswith("python -c ")  # it asked python3.11
    assert "first run" in done.stderr


def test_app_after_test_installs_nothing(checkout):
    first = checkout.run("test", "-q")
    assert "first run" in first.stderr and "compile llama.cpp" in first.stderr
    assert checkout.pip_installs() == [".[test]"]
    assert "python -m pytest -q" in checkout.calls.read_text()

    again = checkout.run("app", "--no-ui")
    assert again.stderr == "" and checkout.pip_installs() == []
    assert "labelchat demo --no-ui" in checkout.calls.read_text()
    checkout.run("test")
    assert checkout.pip_installs() == []


def test_test_after_app_adds_only_the_test_tools_once(checkout):
    checkout.run("app")
    assert checkout.pip_installs() == ["."]
    added = checkout.run("test")
    assert "Adding the test tools" in added.stderr and "first run" not in added.stderr
    assert checkout.pip_installs() == [".[test]"]
    for command in ("test", "app"):
        assert checkout.run(command).stderr == "" and checkout.pip_installs() == []


def test_a_changed_pyproject_reinstalls_once_and_keeps_the_test_tools(checkout):
    checkout.run("test")
    with (checkout.folder / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a new pin\n")
    changed = checkout.run("app")
    assert "pyproject.toml changed" in changed.stderr and "compile llama.cpp" not in changed.stderr
    assert checkout.pip_installs() == [".[test]"]
    assert checkout.run("test").stderr == "" and checkout.pip_installs() == []


def test_the_stamps_of_the_earlier_run_sh_are_taken_over(checkout):
    checkout.run("app")  # makes .venv; then pretend an earlier run.sh stamped it
    stamp = checkout.folder / ".venv" / ".labelchat-installed"
    stamp.unlink()
    digest = subprocess.run(["sha256sum", "pyproject.toml"], cwd=checkout.folder, capture_output=True,
                            text=True, check=True).stdout[:64]
    (checkout.folder / ".venv" / ".labelchat-test").write_text(digest + "\n")
    assert checkout.run("app").stderr == "" and checkout.run("test").stderr == ""
    assert checkout.pip_installs() == []
