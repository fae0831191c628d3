"""--engine ray: Ray Data embeds on a local cluster (127.0.0.1, 2 CPUs) what the local engine
embeds, the shards merge exactly once, and no Ray process talks to anything but loopback."""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from index.project import Project
from index.types import Label
from tools.ingest import ingest
from tools.models import load_backend
from tools.ray_engine import (LOCAL, Engine, RayEngineError, embed_with_ray, import_ray, merge_shards, ray_session,
                               write_shard)
from tools.zeroshot import suggest

MODEL = "offline"
LABELS = ["fish", "mammal", "monument", "tool", "windmill"]
GUARD_DIR = Path(__file__).parent / "netguard"
RAY = Engine("ray")


@pytest.fixture(scope="module")
def network_log(tmp_path_factory):
    """A local Ray cluster for the module, every Python process of it under the connect guard of
    tests/netguard, and every socket of every process under this one watched while it runs."""
    pytest.importorskip("ray", reason="the test extra installs ray (labelchat[ray])")
    log = tmp_path_factory.mktemp("netguard") / "connections.log"
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", "LABELCHAT_NETGUARD_LOG")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(GUARD_DIR), *filter(None, [saved["PYTHONPATH"]])])
    os.environ["LABELCHAT_NETGUARD_LOG"] = str(log)
    watcher = SocketWatcher()
    watcher.start()
    try:
        with ray_session(None, cpus=2):
            yield log, watcher
    finally:
        watcher.stop()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def _project(folder: Path, images: Path) -> Project:
    project = Project(folder)
    ingest(project, [str(images)])
    project.store.set_labels([Label(name) for name in LABELS])
    return project


@pytest.fixture
def photos_subset(tmp_path, photos_dir):
    """Three photos of each label (15): enough for every actor to get batches."""
    folder = tmp_path / "photos"
    for label in LABELS:
        (folder / label).mkdir(parents=True)
        for path in sorted((photos_dir / label).iterdir())[:3]:
            shutil.copy(path, folder / label / path.name)
    return folder


def _features(project: Project) -> dict[str, np.ndarray]:
    ids, matrix = project.store.embeddings(suggest_spec(project))
    sha = {item.id: item.sha256 for item in project.store.items()}
    return {sha[int(i)]: row for i, row in zip(ids, matrix)}


def suggest_spec(project: Project) -> str:
    from tools.models import parse_spec

    return str(parse_spec(MODEL))


def _suggestions(project: Project) -> dict[str, list[tuple[str, float]]]:
    store = project.store
    return {item.sha256: [(s.label, s.score) for s in store.suggestions(item.id)] for item in store.items()}


def test_ray_gives_the_local_engines_features_and_suggestions_over_loopback_only(
        network_log, tmp_path, photos_subset):
    log, watcher = network_log
    with _project(tmp_path / "local", photos_subset) as local, _project(tmp_path / "ray", photos_subset) as on_ray:
        local_report = suggest(local, model=MODEL, engine=LOCAL)
        ray_report = suggest(on_ray, model=MODEL, engine=RAY, batch_size=4)
        assert local_report.suggested == ray_report.suggested == 15
        assert ray_report.embed.loader == "ray" and ray_report.embed.embedded == 15
        assert ray_report.embed.workers == 2  # a CPU pool: one actor per CPU of the 2-CPU cluster
        mine, theirs = _features(local), _features(on_ray)
        assert mine.keys() == theirs.keys() and len(mine) == 15
        for sha, vector in mine.items():
            other = theirs[sha]
            cosine = float(vector @ other / (np.linalg.norm(vector) * np.linalg.norm(other)))
            assert cosine > 0.999, (sha, cosine)
        local_suggestions, ray_suggestions = _suggestions(local), _suggestions(on_ray)
        for sha, ranked in local_suggestions.items():
            assert [label for label, _ in ranked] == [label for label, _ in ray_suggestions[sha]], sha
            assert np.allclose([s for _, s in ranked], [s for _, s in ray_suggestions[sha]], atol=0.01), sha
        assert not (on_ray.folder / "shards").exists()  # merged and cleared
    loaded = Path(str(log) + ".loaded").read_text().split()
    assert len(loaded) >= 3, "the guard did not load in Ray's processes (workers, dashboard)"
    assert not log.exists(), log.read_text()[:3000]
    assert watcher.outside == [], watcher.outside


def test_a_rerun_merges_what_an_interrupted_run_left_and_embeds_each_image_once(
        network_log, tmp_path, photos_subset):
    with _project(tmp_path / "p", photos_subset) as project:
        store = project.store
        items = [item.id for item in store.items()]
        spec = suggest_spec(project)
        # An interrupted run left a shard for 4 items (marked vectors, so merged ones can be told
        # from computed ones), written twice, as a retried task would.
        run = project.folder / "shards" / "interrupted"
        run.mkdir(parents=True)
        marked = np.full((4, 2496), 0.5, dtype=np.float32)
        first = write_shard(run, spec, items[:4], marked, [])
        assert write_shard(run, spec, items[:4], marked, []) == first
        assert len(list(run.glob("*.parquet"))) == 1
        (run / ".shard-x.parquet.1.abc.partial").write_bytes(b"cut off")  # a write that never finished
        backend = load_backend(MODEL, "cpu")
        stops = iter([True])  # the first run is stopped after its first shard
        stopped = embed_with_ray(project, backend, items, RAY, batch_size=1, should_stop=lambda: next(stops, True))
        assert stopped.cancelled and stopped.cached == 4 and 0 < stopped.embedded <= 11
        assert store.embedding_count(spec) == 4 + stopped.embedded  # nothing lost of what was done
        rerun = embed_with_ray(project, backend, items, RAY, batch_size=3)
        assert not rerun.cancelled and rerun.cached == 4 + stopped.embedded
        assert rerun.embedded == 11 - stopped.embedded  # only what no run had done
        assert store.embedding_count(spec) == 15
        ids, matrix = store.embeddings(spec, items[:4])
        assert np.allclose(matrix, 0.5)  # merged from the shard, not computed again
        assert not (project.folder / "shards").exists()
        assert merge_shards(project) == 0


def test_the_cli_takes_engine_ray_and_refuses_a_bad_address(network_log, tmp_path, photos_subset, photos_dir, capsys):
    from ui.cli import main

    folder = tmp_path / "cli"
    assert main(["add", str(photos_subset), "--project", str(folder)]) == 0
    assert main(["labels", "set", ", ".join(LABELS), "--project", str(folder)]) == 0
    assert main(["suggest", "--engine", "ray", "--model", MODEL, "--project", str(folder)]) == 0
    assert "Ray actors" in capsys.readouterr().out
    with Project(folder) as project:
        assert project.store.embedding_count(suggest_spec(project)) == 15
    assert main(["suggest", "--ray-address", "127.0.0.1:6379", "--project", str(folder)]) == 1
    assert "--engine ray" in capsys.readouterr().err
    assert main(["add", str(photos_dir / "fish"), "--project", str(folder)]) == 0  # new images to embed
    assert main(["suggest", "--engine", "ray", "--ray-address", "127.0.0.1:1", "--model", MODEL,
                 "--project", str(folder)]) == 1
    assert "No Ray cluster answers at 127.0.0.1:1" in capsys.readouterr().err


def test_engine_ray_without_ray_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    with pytest.raises(RayEngineError, match=r"labelchat\[ray\]"):
        import_ray()


class SocketWatcher(threading.Thread):
    """Samples the sockets of every process below this one (Ray's C++ servers too, which no Python
    guard sees) and records any connected to a non-loopback address."""

    def __init__(self, every_s: float = 0.05):
        super().__init__(daemon=True)
        self.every_s, self.outside, self._done = every_s, [], threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every_s):
            try:
                self._sample()
            except OSError:
                pass  # a process ended while being read

    def stop(self) -> None:
        self._done.set()
        self.join()

    def _sample(self) -> None:
        inodes = set()
        for pid in _descendants(os.getpid()):
            try:
                for fd in os.scandir(f"/proc/{pid}/fd"):
                    target = os.readlink(fd.path)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
            except OSError:
                continue
        for kind in ("tcp", "tcp6", "udp", "udp6"):
            for line in Path(f"/proc/net/{kind}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes and not _loopback_or_unset(fields[2]):
                    self.outside.append((kind, fields[2]))


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _loopback_or_unset(hex_address: str) -> bool:
    host = hex_address.split(":")[0]
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        address = ipaddress.IPv4Address(raw[::-1])
    else:  # four little-endian 32-bit words
        address = ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
        address = address.ipv4_mapped or address
    return address.is_loopback or address.is_unspecified
