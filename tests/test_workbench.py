"""The workbench: one way to decide, undo, change labels and choose who scores, for every front end."""

from __future__ import annotations

import pytest

from index.errors import LabelchatError, NothingToUndoError
from index.types import Action, Label, Status
from tools.ingest import ingest
from tools.models import MODEL_SETTING
from tools.workbench import Workbench

TINY = "openclip:tiny/random"
LABELS = ["fish", "mammal", "monument", "tool", "windmill"]


@pytest.fixture
def bench(project, photos_dir):
    ingest(project, [str(photos_dir)])
    bench = Workbench(project, model=TINY)
    bench.set_labels([Label(n) for n in LABELS])
    return bench


def _pending(bench, n):
    return [c.item.id for c in bench.reviewer().batch("uncertain", n)]


def test_one_decision_and_its_undo_are_worded_once(bench):
    item = _pending(bench, 1)[0]
    decision = bench.decide(item, Action.ACCEPT, actor="ana")
    assert decision.actor == "ana" and bench.store.state(item).status is Status.CONFIRMED
    undone = bench.undo(actor="ana")
    assert undone.text == f"Undid the decision on #{item}; it is now pending."
    assert undone.back_to_pending and bench.store.state(item).status is Status.PENDING
    with pytest.raises(NothingToUndoError):
        bench.undo(actor="ana")


def test_a_bulk_action_is_undone_as_one_and_says_where_its_items_are_now(bench):
    items = _pending(bench, 3)
    bench.correct_many(items, "windmill", actor="ana")
    assert {bench.store.state(i).label for i in items} == {"windmill"}
    undone = bench.undo(actor="ana")
    assert len(undone.undone) == 3 and not undone.back_to_pending
    assert undone.text.startswith("Undid the bulk action's 3 decisions (#") and undone.text.endswith("pending 3.")
    with pytest.raises(LabelchatError, match="needs the right label"):
        bench.correct_many(items, "", actor="ana")


def test_undo_since_a_mark_never_reaches_an_earlier_decision(bench):
    first, second = _pending(bench, 2)
    bench.decide(first, Action.ACCEPT, actor="ana")
    mark = bench.store.decision_mark()
    with pytest.raises(NothingToUndoError):
        bench.undo(actor="ana", since=mark)
    assert bench.store.state(first).status is Status.CONFIRMED


def test_a_label_change_opens_a_review_loop_on_the_new_labels(bench):
    before = bench.reviewer()
    assert before.labels == LABELS
    bench.add_labels([Label("bird")])
    after = bench.reviewer()
    assert after is not before and after.labels == [*LABELS, "bird"]
    assert bench.reviewer() is after  # kept while it is current
    bench.remove_labels(["bird"])
    assert bench.reviewer().labels == LABELS


def test_a_bad_model_spec_is_refused_and_the_setting_kept(bench):
    bench.set_model(TINY)
    with pytest.raises(LabelchatError):
        bench.set_model("nonsense-backend:whatever")
    assert bench.store.get_setting(MODEL_SETTING) == TINY


def test_who_scores_goes_from_zero_shot_to_a_trained_version_and_back(bench):
    from tools.training import TrainConfig

    bench.set_model(TINY)
    plain = Workbench(bench.project)  # as the CLI opens it: the project's own model
    assert plain.scoring().name == "zero-shot" and plain.scoring().model == TINY
    items = _pending(bench, 30)
    for i, item in enumerate(items):
        bench.decide(item, Action.CORRECT, LABELS[i % len(LABELS)], actor="ana")
    report, activation = plain.train(TrainConfig(kind="probe", holdout=0.2), activate=True)
    assert activation.version.name == report.version.name
    assert plain.scoring().version.name == report.version.name
    with pytest.raises(LabelchatError, match="No model version 'v9'; the versions are: " + report.version.name):
        plain.use_version("v9")
    assert plain.scoring().version is not None  # a refused switch changes nothing
    assert plain.use_version("zero-shot").version is None and plain.scoring().name == "zero-shot"
    assert plain.use_version(report.version.name.split("-")[0]).version.id == report.version.id


def test_the_chat_says_a_chosen_version_is_not_used_once_the_labels_changed(bench):
    from agent.tools import AgentContext, build_tools
    from tools.training import TrainConfig

    for i, item in enumerate(_pending(bench, 30)):
        bench.decide(item, Action.CORRECT, LABELS[i % len(LABELS)], actor="ana")
    report, _ = bench.train(TrainConfig(kind="probe", holdout=0.2), activate=True)
    plain = Workbench(bench.project)  # no --model: the project's choice counts
    versions = next(t for t in build_tools(AgentContext(bench.project, workbench=plain)) if t.name == "model_versions")
    assert f"{report.version.name} (in use)" in versions.invoke({})
    plain.add_labels([Label("bird")])  # the version knows five labels, the project six
    assert plain.scoring().name == "zero-shot"
    said = versions.invoke({})
    assert "chosen, but not in use: its labels or features no longer match" in said and "(in use)" not in said
