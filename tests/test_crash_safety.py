"""SIGKILL in the middle of an ingest and of a stream of decisions loses nothing acknowledged."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import imagefiles

from index.project import Project
from index.types import Action, Status

LABELCHAT = Path(sys.executable).parent / "labelchat"


def _count_items(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=1) as db:
            return db.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _assert_consistent(project: Project) -> None:
    assert project.store.check() == []
    for item in project.store.items():
        data = project.media.path(item.media_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item.sha256, f"item {item.id} media is damaged"


def test_kill_during_ingest_then_resume(tmp_path):
    images = tmp_path / "images"
    for label in ("a", "b"):
        (images / label).mkdir(parents=True)
    for i in range(600):
        (images / "ab"[i % 2] / f"{i}.jpg").write_bytes(imagefiles.jpeg(i, (320, 240)))
    folder = tmp_path / "project"
    process = subprocess.Popen(
        [str(LABELCHAT), "add", str(images), "--labels-from-folders", "--project", str(folder), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while _count_items(folder / "project.db") < 100 and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    with Project(folder, create=False) as project:
        survived = project.store.item_count()
        assert 100 <= survived < 600, "the kill should land in the middle of the ingest"
        _assert_consistent(project)
        # every item that landed has its label: item and decision share one transaction
        assert len(project.store.states(Status.CONFIRMED)) == survived

    resumed = subprocess.run(
        [str(LABELCHAT), "add", str(images), "--labels-from-folders", "--project", str(folder), "-q", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    with Project(folder, create=False) as project:
        assert project.store.item_count() == 600
        assert len(project.store.states(Status.CONFIRMED)) == 600
        assert {c.label: c.confirmed for c in project.store.status().by_label} == {"a": 300, "b": 300}
        _assert_consistent(project)


DECIDER = textwrap.dedent(
    """
    import sys
    from index.project import Project
    from index.types import Action

    with Project(sys.argv[1], create=False) as project:
        items = [item.id for item in project.store.items()]
        n = 0
        while True:
            for item_id in items:
                n += 1
                if n % 7 == 0:
                    decision = project.store.undo(item_id) if project.store.decisions(item_id) else None
                    if decision is None:
                        continue
                else:
                    action = [Action.ACCEPT, Action.REJECT, Action.CORRECT][n % 3]
                    label = ["fish", "tool", "mammal"][n % 3]
                    decision = project.store.decide(item_id, action, label)
                print(f"ack {decision.id} {decision.item_id} {decision.action.value}", flush=True)
    """
)


def test_kill_during_a_stream_of_decisions_keeps_every_acknowledged_one(tmp_path, photos_dir):
    folder = tmp_path / "project"
    subprocess.run(
        [str(LABELCHAT), "add", str(photos_dir), "--labels-from-folders", "--project", str(folder), "-q"],
        check=True, capture_output=True, timeout=120,
    )
    script = tmp_path / "decider.py"
    script.write_text(DECIDER)
    process = subprocess.Popen(
        [sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, text=True
    )
    acknowledged = []
    for line in process.stdout:
        acknowledged.append(tuple(line.split()[1:]))
        if len(acknowledged) == 300:
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait()
    assert len(acknowledged) == 300

    with Project(folder, create=False) as project:
        logged = {(str(d.id), str(d.item_id), d.action.value) for d in project.store.decisions()}
        missing = [ack for ack in acknowledged if ack not in logged]
        assert missing == []
        _assert_consistent(project)
        # the reopened project takes new decisions and undoes them from the log alone
        item_id = int(acknowledged[-1][1])
        before = project.store.state(item_id)
        project.store.decide(item_id, Action.CORRECT, "windmill")
        assert project.store.state(item_id).label == "windmill"
        project.store.undo()
        after = project.store.state(item_id)
        assert (after.status, after.label, after.rejected) == (before.status, before.label, before.rejected)
        assert project.store.check() == []
