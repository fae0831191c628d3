"""The project store: migrations, the decision log and derived state, labels, status."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from index import migrations
from index.errors import (
    InvalidLabelError,
    LabelchatError,
    LabelNotInSetError,
    NothingToUndoError,
    ProjectError,
    SchemaTooNewError,
    UnknownItemError,
)
from index.project import Project
from index.store import Store
from index.types import Action, Label, Origin, Status, Suggestion


def _add(store: Store, n: int) -> list[int]:
    ids = []
    for i in range(n):
        item, created = store.add_item(
            sha256=f"{i:064x}", phash=f"{i:016x}", media_path=f"media/{i}.jpg", width=10,
            height=10, format="JPEG", bytes=100, origin=Origin(f"/photos/{i}.jpg"),
        )
        assert created
        ids.append(item.id)
    return ids


@pytest.fixture
def store(project):
    project.store.set_labels([Label("cat"), Label("dog"), Label("bird")])
    return project.store


def test_new_project_is_wal_and_at_the_latest_schema(project):
    assert project.store.schema_version == len(migrations.MIGRATIONS)
    db = sqlite3.connect(project.folder / "project.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_opening_an_older_project_applies_new_migrations_and_keeps_data(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    every = list(migrations.MIGRATIONS)
    monkeypatch.setattr("index.store.base.MIGRATIONS", every[:1])  # a project made by the first release
    with Project(folder) as project:
        project.store.set_labels([Label("cat")])
        (a, _) = _add(project.store, 2)
        project.store.decide_many([(a, Action.ACCEPT, "cat")], actor="user", auto=False)  # reads no newer column
        assert project.store.schema_version == 1
    monkeypatch.setattr("index.store.base.MIGRATIONS", every)
    with Project(folder) as project:
        assert project.store.schema_version == len(every)
        assert project.store.item_count() == 2
        assert project.store.label_set().names == ["cat"]
        assert project.store.state(a).label == "cat"
        project.store.put_embeddings("m", {a: [1.0, 2.0]})  # a table the upgrade added
        assert project.store.embedded_item_ids("m") == {a}
        assert project.store.check() == []


def test_a_project_from_a_newer_labelchat_is_refused_untouched(tmp_path):
    folder = tmp_path / "p"
    Project(folder).close()
    db_path = folder / "project.db"
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    with pytest.raises(SchemaTooNewError) as error:
        Project(folder)
    assert "schema version 99" in str(error.value) and str(db_path) in str(error.value)
    assert "Upgrade labelchat" in str(error.value)
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before


def test_a_folder_with_other_files_is_not_turned_into_a_project(tmp_path):
    (tmp_path / "holiday.txt").write_text("mine")
    with pytest.raises(ProjectError, match="other files"):
        Project(tmp_path)
    with pytest.raises(ProjectError, match="No labelchat project"):
        Project(tmp_path / "nothing", create=False)


def test_a_database_that_is_not_sqlite_gives_a_clear_error(tmp_path):
    (tmp_path / "project.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ProjectError, match="not a labelchat project database"):
        Project(tmp_path)


def test_same_bytes_twice_is_one_item_with_two_sources(store):
    kwargs = dict(sha256="a" * 64, phash="0" * 16, media_path="media/a.jpg", width=1, height=1,
                  format="JPEG", bytes=1)
    first, created_first = store.add_item(**kwargs, origin=Origin("/a/x.jpg"))
    second, created_second = store.add_item(**kwargs, origin=Origin("http://h/x.jpg", page_url="http://h/"))
    assert created_first and not created_second and first.id == second.id
    assert [o.source for o in store.origins(first.id)] == ["/a/x.jpg", "http://h/x.jpg"]
    assert store.item_count() == 1


def test_decisions_derive_status_and_label(store):
    a, b, c, d = _add(store, 4)
    store.decide(a, Action.ACCEPT, "cat")
    store.decide(b, Action.REJECT, "dog")
    store.decide(c, Action.SKIP)
    store.decide(d, Action.ACCEPT, "cat")
    store.decide(d, Action.CORRECT, "bird")
    assert (store.state(a).status, store.state(a).label) == (Status.CONFIRMED, "cat")
    assert (store.state(b).status, store.state(b).rejected) == (Status.REJECTED, ("dog",))
    assert store.state(c).status is Status.SKIPPED
    assert (store.state(d).status, store.state(d).label) == (Status.CONFIRMED, "bird")
    counts = store.status()
    assert counts.by_status == {"pending": 0, "confirmed": 2, "rejected": 1, "skipped": 0 + 1}
    assert {c.label: c.confirmed for c in counts.by_label} == {"cat": 1, "dog": 0, "bird": 1}
    assert store.check() == []


def test_rejecting_the_confirmed_label_unconfirms_but_rejecting_another_does_not(store):
    a, b = _add(store, 2)
    store.decide(a, Action.ACCEPT, "cat")
    store.decide(a, Action.REJECT, "dog")
    assert (store.state(a).status, store.state(a).label) == (Status.CONFIRMED, "cat")
    store.decide(b, Action.ACCEPT, "cat")
    store.decide(b, Action.REJECT, "cat")
    assert (store.state(b).status, store.state(b).label) == (Status.REJECTED, None)


def test_undo_walks_back_one_decision_at_a_time_across_restarts(tmp_path):
    folder = tmp_path / "p"
    with Project(folder) as project:
        project.store.set_labels([Label("cat"), Label("dog")])
        a, b = _add(project.store, 2)
        project.store.decide(a, Action.ACCEPT, "cat")
        project.store.decide(a, Action.CORRECT, "dog")
        project.store.decide(b, Action.ACCEPT, "cat")
    with Project(folder) as project:  # a new process would see the same
        store = project.store
        undone = store.undo()
        assert undone.item_id == b and store.state(b).status is Status.PENDING
        store.undo()
        assert store.state(a).label == "cat"
        store.undo(a)
        assert store.state(a).status is Status.PENDING
        with pytest.raises(NothingToUndoError, match="Nothing to undo"):
            store.undo()
        assert [d.action for d in store.decisions(a)] == [
            Action.ACCEPT, Action.CORRECT, Action.UNDO, Action.UNDO,
        ]
        assert store.check() == []


def test_one_undo_takes_back_a_whole_bulk_action_and_only_what_is_still_in_effect(tmp_path):
    folder = tmp_path / "p"
    with Project(folder) as project:
        store = project.store
        store.set_labels([Label("cat"), Label("dog")])
        a, b, c, d = _add(store, 4)
        store.decide(a, Action.ACCEPT, "dog")
        store.decide_many([(b, Action.ACCEPT, "cat"), (c, Action.ACCEPT, "cat"), (d, Action.ACCEPT, "cat")],
                          actor="bulk:p>=0.9", auto=True)
        store.decide(c, Action.CORRECT, "dog")  # a person looked again at one of them
    with Project(folder) as project:  # across a restart
        store = project.store
        (undone,) = store.undo_last()  # the newest action first: the correction
        assert (undone.item_id, store.state(c).label) == (c, "cat")
        store.undo(d)  # one item of the bulk taken back on its own
        undone = store.undo_last()  # the rest of the bulk action, at once
        assert sorted(u.item_id for u in undone) == [b, c] and all(u.action is Action.UNDO for u in undone)
        assert [store.state(i).status for i in (b, c, d)] == [Status.PENDING] * 3
        assert store.state(a).label == "dog"
        (undone,) = store.undo_last()
        assert undone.item_id == a
        with pytest.raises(NothingToUndoError, match="Nothing to undo"):
            store.undo_last()
        assert store.check() == []


def test_bad_decisions_are_refused_with_the_value_named(store):
    (a,) = _add(store, 1)
    with pytest.raises(UnknownItemError, match="12345"):
        store.decide(12345, Action.ACCEPT, "cat")
    with pytest.raises(LabelNotInSetError, match="labelchat labels add 'zebra'"):
        store.decide(a, Action.ACCEPT, "zebra")
    with pytest.raises(LabelchatError, match="needs a label"):
        store.decide(a, Action.ACCEPT)
    assert store.decisions(a) == [] and store.state(a).status is Status.PENDING


def test_decide_many_is_all_or_nothing(store):
    a, b = _add(store, 2)
    with pytest.raises(LabelNotInSetError):
        store.decide_many([(a, Action.ACCEPT, "cat"), (b, Action.ACCEPT, "zebra")], actor="rule", auto=True)
    assert store.decisions() == []
    store.decide_many([(a, Action.ACCEPT, "cat"), (b, Action.ACCEPT, "dog")], actor="rule", auto=True)
    assert all(d.auto and d.actor == "rule" for d in store.decisions())


def test_label_set_changes_bump_the_version_and_refuse_bad_names(store):
    version = store.label_set().version
    assert store.add_labels([Label("fish"), Label("cat")]).names == ["cat", "dog", "bird", "fish"]
    assert store.label_set().version == version + 1
    assert store.remove_labels(["dog"]).names == ["cat", "bird", "fish"]
    with pytest.raises(InvalidLabelError, match="given twice"):
        store.set_labels([Label("a"), Label("a")])
    with pytest.raises(InvalidLabelError, match="'a-b'"):
        store.set_labels([Label("a/b")])
    with pytest.raises(LabelNotInSetError):
        store.remove_labels(["zebra"])
    assert store.label_set().names == ["cat", "bird", "fish"]


def test_confirmed_labels_outside_the_label_set_still_show_in_status(store):
    (a,) = _add(store, 1)
    store.decide(a, Action.ACCEPT, "dog")
    store.remove_labels(["dog"])
    row = {c.label: c for c in store.status().by_label}["dog"]
    assert row.confirmed == 1 and not row.in_label_set


def test_suggestions_are_replaced_and_counted_for_undecided_items(store):
    a, b = _add(store, 2)
    store.put_suggestions(a, [Suggestion(a, "cat", 0.9, 0, "m", "zero-shot"), Suggestion(a, "dog", 0.1, 1, "m", "zero-shot")])
    store.put_suggestions(a, [Suggestion(a, "dog", 0.7, 0, "m", "zero-shot")])
    store.put_suggestions(b, [Suggestion(b, "dog", 0.6, 0, "m", "zero-shot")])
    assert [s.label for s in store.suggestions(a)] == ["dog"]
    assert {c.label: c.suggested for c in store.status().by_label}["dog"] == 2
    store.decide(b, Action.ACCEPT, "dog")
    assert {c.label: c.suggested for c in store.status().by_label}["dog"] == 1


def test_a_bulk_write_larger_than_one_statement_stores_every_row(store, monkeypatch):
    """put_suggestions_many splits its rows across statements (a million items' rows are more
    than SQLite takes in one text): every item keeps all its ranks, old rows are replaced."""
    import index.store.suggestions as store_module

    monkeypatch.setattr(store_module, "JSON_ROWS", 3)
    ids = _add(store, 7)
    store.put_suggestions(ids[0], [Suggestion(ids[0], "old", 1.0, 0, "m", "zero-shot")])
    store.put_suggestions_many({i: [Suggestion(i, "cat", 0.6, 0, "m", "zero-shot"),
                                    Suggestion(i, "dog", 0.4, 1, "m", "zero-shot")] for i in ids})
    assert all([s.label for s in store.suggestions(i)] == ["cat", "dog"] for i in ids)


def test_ranked_suggestions_in_bulk_read_back_like_single_ones(store):
    import numpy as np

    a, b, c = _add(store, 3)
    store.put_suggestions(a, [Suggestion(a, "old", 1.0, 0, "m", "zero-shot")])
    order = np.array([[2, 0], [1, 2], [0, 1]])
    scores = np.array([[0.7, 0.2], [0.6, 0.3], [0.5, 0.4]], dtype=np.float32)
    store.put_ranked_suggestions([a, b, c], ["cat", "dog", "fish"], order, scores,
                                 model="m", method="zero-shot", head_key="h1")
    got = store.suggestions(a)
    assert [(s.label, round(s.score, 6), s.rank, s.model, s.method) for s in got] == [
        ("fish", 0.7, 0, "m", "zero-shot"), ("cat", 0.2, 1, "m", "zero-shot")]  # the old row is gone
    assert [s.label for s in store.suggestions(c)] == ["cat", "dog"]
    assert store.items_without_suggestions_from("h1") == []
    assert store.items_without_suggestions_from("h2") == [a, b, c]
    assert {x.label: x.suggested for x in store.status().by_label}["fish"] == 1


def test_check_finds_a_state_row_that_disagrees_with_the_log(project, store):
    (a,) = _add(store, 1)
    store.decide(a, Action.ACCEPT, "cat")
    db = sqlite3.connect(project.folder / "project.db")
    db.execute("UPDATE item_state SET label = 'dog'")
    db.commit()
    assert store.check() == [f"item {a}: stored state disagrees with its decisions"]
    assert store.rebuild_state() == 1
    assert store.check() == [] and store.state(a).label == "cat"


def test_jobs_record_progress(store):
    job = store.start_job("ingest", {"sources": ["x"]}, total=10)
    store.update_job(job.id, done=4, message="4 of 10")
    assert (store.job(job.id).done, store.job(job.id).message) == (4, "4 of 10")
    assert store.jobs()[0].id == job.id


def test_the_project_check_finds_an_image_missing_from_the_media_folder(tmp_path, photos_dir):
    from tools.ingest import ingest

    with Project(tmp_path / "p") as project:
        ingest(project, [str(photos_dir / "tool")])
        assert project.check() == []
        gone = project.store.items()[3]
        project.media.path(gone.media_path).unlink()
        (problem,) = project.check()
        assert f"item {gone.id}: its image" in problem and "missing" in problem and gone.source in problem


def test_a_page_of_items_reads_only_its_own_best_suggestions(store):
    a, b, c = _add(store, 3)
    for item, label in ((a, "cat"), (b, "dog"), (c, "cat")):
        store.put_suggestions(item, [Suggestion(item, label, 0.8, 0, "m", "zero-shot"),
                                     Suggestion(item, "fish", 0.2, 1, "m", "zero-shot")])
    assert {i: s.label for i, s in store.top_suggestions([a, c]).items()} == {a: "cat", c: "cat"}
    assert store.top_suggestions([]) == {} and len(store.top_suggestions()) == 3
    plan = " ".join(row[3] for row in store._read(
        "EXPLAIN QUERY PLAN SELECT g.label, count(*) FROM suggestions g JOIN item_state s ON s.item_id = g.item_id"
        " WHERE g.rank = 0 AND s.status != 'confirmed' GROUP BY g.label"))
    assert "suggestions_best" in plan  # status counts from the index of best suggestions, not every rank
