"""The Dashboard's numbers: what it shows twice with no decision between is the same, and its
progress line counts items confirmed, net of undos, on a 24-hour clock (issue 20)."""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

from index.types import Action, Decision, Label, Status
from tools.ingest import ingest
from ui import views

LABELS = ["fish", "mammal", "monument", "tool", "windmill"]


def test_the_histogram_is_the_same_when_opened_and_after_refresh_with_no_decision_between(project, photos_dir):
    """It read the stored rows: zero-shot ones (confirmed items too) until the review loop's
    blend was written behind, then the blend: 34 items at 0.9-1.0, then 0, 3 s later."""
    from tools.zeroshot import suggest
    from ui.app import AppState
    from ui.dashboard import pending_best_scores

    ingest(project, [str(photos_dir)])
    project.store.set_labels([Label(n) for n in LABELS])
    suggest(project, model="offline")  # stored zero-shot rows, as 'label them' leaves them
    truth = {i: Path(project.store.origins(i)[0].source).parent.name for i in project.store.item_ids_where()}
    chosen = {}
    for item_id, label in sorted(truth.items()):
        if len(chosen.setdefault(label, [])) < 4:
            chosen[label].append(item_id)
    project.store.decide_many([(i, Action.ACCEPT, l) for l, ids in chosen.items() for i in ids], actor="test",
                              auto=False)
    state = AppState(project.folder, brain="router", yes=False, model="offline", brain_options={})
    try:
        opened = views.probability_histogram(pending_best_scores(state))  # the tab opens
        reviewer = state.reviewer()
        reviewer.refresh()  # the Review panel learns from the decisions, rows are written behind
        reviewer.flush()
        again = views.probability_histogram(pending_best_scores(state))  # Refresh, 3 s later
        assert opened == again
        pending = state.project.store.item_ids_where(status=Status.PENDING)
        assert sum(n for _, n in again[1]) == len(pending) == 94 - 20  # pending items only, not confirmed ones
        live = sorted(p for _, _, p in reviewer.candidates(1e-9))  # what the panel and "Approve them" use
        assert views.probability_histogram(live) == again
    finally:
        state.project.close()


def test_the_app_builds_its_review_loop_as_it_starts_and_the_first_page_uses_that_one(project, photos_dir):
    from ui.app import AppState

    ingest(project, [str(photos_dir)])
    state = AppState(project.folder, brain="router", yes=False, model="openclip:tiny/random", brain_options={})
    try:
        state.warm_up().join(60)  # no labels yet: nothing to build, nothing raised
        assert state.workbench._reviewer is None and "label" in state.warm_up_error.lower()
        project.store.set_labels([Label(n) for n in LABELS])
        state.warm_up().join(120)
        built = state.workbench._reviewer
        assert built is not None and state.warm_up_error is None
        assert state.reviewer() is built  # the page's call finds it built
    finally:
        state.project.close()


def _decision(id_, item, action, at, label="fish", undoes=None):
    return Decision(id_, item, Action(action), label, "web", False, f"2026-12-07T{at}.000+00:00", undoes)


def test_progress_counts_items_confirmed_net_of_undos_on_a_24_hour_clock():
    log = [_decision(1, 1, "accept", "14:36:01"), _decision(2, 2, "accept", "14:36:02"),
           _decision(3, 3, "correct", "14:36:03"), _decision(4, 3, "undo", "14:36:20", undoes=3),
           _decision(5, 2, "reject", "14:36:40"), _decision(6, 4, "skip", "14:36:50")]
    columns, rows = views.progress_table(log, local=timezone.utc)
    assert columns == ["time", "confirmed"]
    # all in one minute: still a line (a point per second with a change, from 0 just before)
    assert rows == [["14:36:00", 0], ["14:36:01", 1], ["14:36:02", 2], ["14:36:03", 3], ["14:36:20", 2],
                    ["14:36:40", 1], ["14:36:50", 1]]
    assert views.progress_table([], local=timezone.utc) == (["time", "confirmed"], [])


def test_progress_ends_at_the_confirmed_count_after_a_bulk_approval_is_undone(project, photos_dir):
    ingest(project, [str(photos_dir)])
    project.store.set_labels([Label(n) for n in LABELS])
    store = project.store
    ids = store.item_ids_where()
    for item_id in ids[:5]:
        store.decide(item_id, Action.ACCEPT, "fish")
    store.decide_many([(i, Action.ACCEPT, "tool") for i in ids[5:12]], actor="bulk", auto=True)
    store.undo_last()  # the bulk approval, all 7
    store.decide(ids[0], Action.CORRECT, "mammal")  # still one confirmed item
    _, rows = views.progress_table(store.decisions())
    assert rows[-1][1] == store.status().by_status["confirmed"] == 5
    assert len(rows) >= 2  # from 0 before the first decision
