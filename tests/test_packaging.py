"""labelchat as a user installs it: a wheel built from this checkout, installed (not editable)
into a fresh virtual environment, answers `--help`, pre-labels photos, builds the demo project
from the photos it ships and serves the app, with no file of the checkout importable.

The fresh environment reuses the dependencies already installed for the tests (a .pth line
pointing at this interpreter's site-packages, so torch is not downloaded again); only the
wheel is installed into it, with --no-deps. Every command runs from an empty folder, with the
netguard sitecustomize refusing (and logging) any connection outside 127.0.0.0/8.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from llm_server import _free_port, stop  # a free port on 127.0.0.1; SIGTERM, then SIGKILL, to the group

ROOT = Path(__file__).resolve().parents[1]
NETGUARD = Path(__file__).parent / "netguard"
PACKAGES = ["agent", "tools", "ui", "index", "prompts"]
# What the wheel is built from: the checkout without its environments, builds and caches.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    "labelchat-data", "test-artifacts", ".whl", ".gl", "tests", "bench", "docs")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


@dataclass
class Installed:
    wheel: Path
    build_log: str
    venv: Path
    site: Path  # the fresh environment's site-packages, where labelchat is installed
    env: dict
    netguard_log: Path

    def run(self, *args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.venv / "bin" / "labelchat"), *args], cwd=cwd, env=self.env,
                              capture_output=True, text=True, timeout=timeout)


def _venv_site(python: Path, env: dict) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True, env=env)
    return Path(out.stdout.strip())


def _checked(command: list[str], **kwargs) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    netguard_log = base / "netguard.log"
    # No PYTHONPATH (the checkout on it would be "labelchat, already installed" to pip, and
    # importable to the commands), and nothing from the user's site-packages.
    clean = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    clean.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_TELEMETRY="1",
                 PYTHONNOUSERSITE="1")
    source = base / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)  # no stale build/ leaks into the wheel
    wheels = base / "wheels"
    build_log = _checked([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                          "--no-index", str(source), "-w", str(wheels)], cwd=base, env=clean)
    [wheel] = wheels.glob("labelchat-*.whl")

    venv = base / "venv"
    _checked([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=clean)
    python = venv / "bin" / "python"
    installed_log = _checked([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", str(wheel)], cwd=base, env=clean)
    site = _venv_site(python, clean)
    assert (site / "tools" / "models").is_dir(), f"pip did not install the wheel into {venv}:\n{installed_log}"
    # After the install (so pip sees no labelchat to replace): the dependencies from this
    # environment. A plain path line: that folder's own .pth files (the checkout's editable
    # install among them) are not run, so only what the wheel installed provides labelchat.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_labelchat_test_deps.pth").write_text("".join(f"{path}\n" for path in sorted(deps)))

    env = dict(clean, PYTHONPATH=str(NETGUARD), LABELCHAT_NETGUARD_LOG=str(netguard_log),
               PATH=f"{venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}")
    yield Installed(wheel, build_log, venv, site, env, netguard_log)
    if netguard_log.exists():
        assert "connect" not in netguard_log.read_text(), f"a command reached outside 127.0.0.0/8:\n{netguard_log.read_text()}"


@pytest.fixture
def empty_cwd(tmp_path) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder


def _checkout_files() -> set[str]:
    """Every module and data file the installed package needs, as the checkout has them."""
    files = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".yaml", ".css", ".js"):
                files.add(path.relative_to(ROOT).as_posix())
    for path in (ROOT / "examples" / "photos").rglob("*"):
        if path.is_file():
            files.add("ui/demo_photos/" + path.relative_to(ROOT / "examples" / "photos").as_posix())
    return files


def test_the_wheel_holds_every_module_the_prompts_the_app_assets_and_the_demo_photos(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = _checkout_files()
    assert {"tools/models/offline.py", "tools/training/run.py", "prompts/router.yaml", "ui/assets/app.css",
            "ui/demo_photos/manifest.csv"} <= expected  # the check below looks where the code is
    assert sorted(expected - names) == []
    assert len([n for n in names if n.startswith("ui/demo_photos/") and n.endswith(".jpg")]) == 94
    outside = sorted(n for n in names if n.split("/")[0] not in PACKAGES and ".dist-info/" not in n)
    assert outside == []  # no tests, benchmarks or docs in the package
    assert "is absent from the `packages` configuration" not in installed.build_log  # setuptools' warning box


def test_the_installed_command_imports_the_installed_package_not_the_checkout(installed, empty_cwd):
    probe = "import json, agent, index, prompts, tools, ui.cli; print(json.dumps([m.__file__ for m in (agent, index, prompts, tools, ui.cli)]))"
    out = subprocess.run([str(installed.venv / "bin" / "python"), "-c", probe], cwd=empty_cwd, env=installed.env,
                         capture_output=True, text=True, timeout=60, check=True)
    for module_file in json.loads(out.stdout):
        assert Path(module_file).is_relative_to(installed.site), module_file
    script = (installed.venv / "bin" / "labelchat").read_text()
    assert script.startswith(f"#!{installed.venv / 'bin' / 'python'}") and "ui.cli" in script


def test_help_lists_the_commands(installed, empty_cwd):
    done = installed.run("--help", cwd=empty_cwd, timeout=60)
    assert done.returncode == 0, done.stderr
    commands = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert {"add", "prelabel", "suggest", "review", "export", "ui", "demo"} <= commands, done.stdout


def test_prelabel_labels_the_shipped_photos(installed, empty_cwd):
    photos = installed.site / "ui" / "demo_photos"
    images = [photos / "fish" / "categorization__fish1.jpg", photos / "windmill" / "categorization__windmill5.jpg",
              photos / "monument" / "categorization__IndiaGate.jpg"]
    done = installed.run("prelabel", "--images", *map(str, images), "--labels", "fish, monument, windmill",
                         "--format", "csv", cwd=empty_cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {Path(row["path"]).parent.name: row["label"] for row in rows} == {
        "fish": "fish", "windmill": "windmill", "monument": "monument"}
    assert "Wrote 3 predictions" in done.stderr


def _wait_for_page(url: str, process: subprocess.Popen, log: Path, limit_s: float = 150) -> str:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"labelchat ui exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode("utf-8", "replace")
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"labelchat ui did not answer at {url} within {limit_s} s:\n{log.read_text()[-4000:]}")


def test_the_demo_builds_from_the_shipped_photos_and_the_app_answers(installed, empty_cwd):
    built = installed.run("demo", "--no-ui", "--json", "--project", "demo", cwd=empty_cwd)
    assert built.returncode == 0, built.stderr[-3000:]
    status = json.loads(built.stdout)
    assert status["ok"] and status["items"] == 94, status

    port = _free_port()
    log = empty_cwd / "ui.log"
    with log.open("w") as out:
        process = subprocess.Popen([str(installed.venv / "bin" / "labelchat"), "ui", "--project", "demo",
                                    "--port", str(port)], cwd=empty_cwd, env=installed.env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        page = _wait_for_page(f"http://127.0.0.1:{port}/", process, log)
        assert "labelchat" in page.lower()
        guarded = Path(f"{installed.netguard_log}.loaded").read_text().split()
        assert str(process.pid) in guarded  # the app ran under the connection guard
    finally:
        stop(process)
