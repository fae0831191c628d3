"""Review rounds and people: who decides, blind second reviews, adjudication, agreement, kappa,
and the quality report; on the committed photos in real SQLite projects."""

from __future__ import annotations

import io
import json
import re
import shutil

import pytest

from index.errors import LabelchatError, NothingToUndoError
from index.project import Project
from index.types import Action
from tools.ingest import IngestOptions, ingest
from tools.quality.report import format_markdown, quality_report
from tools.rounds import (
    AlreadyAnsweredError, adjudicate, close_round, cohen_kappa, current_round, disagreements, next_to_review, review_item,
    round_report, sample_size, start_round, stratified_sample, undo_answer,
)
from ui.cli import main
from ui.people import credentials, known_user, read_auth_file
from ui.rounds_tab import confusion_html, round_markdown

LABELS = ["fish", "mammal", "monument", "tool", "windmill"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory, photos_dir):
    """The demo photos, confirmed from their folders (actor "import"), then all accepted by ana."""
    folder = tmp_path_factory.mktemp("rounds") / "photos"
    with Project(folder) as project:
        ingest(project, [str(photos_dir)], IngestOptions(labels_from_folders=True, near_duplicate_distance=-1))
        store = project.store
        store.decide_many([(i, Action.ACCEPT, label) for i, label in store.confirmed_labels().items()],
                          actor="ana", auto=False)
    return folder


@pytest.fixture
def folder(imported, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(imported, copy)
    return copy


# -- people ----------------------------------------------------------------------------------------


def test_an_auth_file_gives_the_users_and_its_mistakes_name_the_line(tmp_path):
    good = tmp_path / "users.txt"
    good.write_text("# the team\nana:secret\n\nbo:pa:ss\n", encoding="utf-8")
    assert read_auth_file(good) == {"ana": "secret", "bo": "pa:ss"}
    assert credentials(["cy:x"], good) == {"ana": "secret", "bo": "pa:ss", "cy": "x"}
    bad = tmp_path / "bad.txt"
    bad.write_text("ana:secret\njust-a-name\n", encoding="utf-8")
    with pytest.raises(LabelchatError, match=r"bad.txt line 2: 'just-a-name' is not user:password"):
        read_auth_file(bad)
    bad.write_text("ana:secret\nana:other\n", encoding="utf-8")
    with pytest.raises(LabelchatError, match="line 2: the user 'ana' is already on an earlier line"):
        read_auth_file(bad)
    with pytest.raises(LabelchatError, match="nobody.txt does not exist"):
        read_auth_file(tmp_path / "nobody.txt")
    with pytest.raises(LabelchatError, match="--auth: ':x' is not user:password"):
        credentials([":x"])
    with pytest.raises(LabelchatError, match="'zed' is not in the auth file .*its users: ana, bo"):
        known_user("zed", good)
    assert known_user("bo", good) == "bo"


def test_the_app_refuses_a_bad_auth_file_before_it_starts(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "team.txt"
    bad.write_text("ana:secret\nbo\n", encoding="utf-8")
    code, out, err = _cli(monkeypatch, capsys, "ui", "--project", str(tmp_path / "p"), "--auth-file", str(bad))
    assert code == 1 and "team.txt line 2: 'bo' is not user:password" in err and "Starting" not in err
    code, out, err = _cli(monkeypatch, capsys, "ui", "--project", str(tmp_path / "p"), "--auth", "ana")
    assert code == 1 and "--auth: 'ana' is not user:password" in err
    assert not (tmp_path / "p").exists()  # nothing was created


def test_the_chat_logs_its_decisions_as_the_person_talking(folder):
    from agent.session import Session

    with Project(folder) as project:
        session = Session(project, actor="bo")
        list(session.send("undo"))  # takes back ana's bulk accept: 94 undo decisions, each bo's
        undone = project.store.decisions(limit=94)
        assert {(d.action, d.actor) for d in undone} == {(Action.UNDO, "bo")}


# -- the sample ------------------------------------------------------------------------------------


def test_the_sample_size_follows_the_confidence_and_margin():
    # Cochran: 1.96^2 * 0.25 / 0.05^2 = 384.1 items, corrected for a finite set
    assert sample_size(10_000)[0] == 370
    size, why = sample_size(94)
    assert size == 76 and "±5% at 95% confidence" in why and "of 94" in why
    assert sample_size(94, 0.99, 0.1)[0] == 61
    with pytest.raises(LabelchatError, match="margin of error"):
        sample_size(94, 0.95, 0.7)


def test_the_sample_is_stratified_by_label():
    labels = {i: "big" for i in range(60)} | {i: "mid" for i in range(60, 90)} | {i: "tiny" for i in range(90, 92)}
    chosen = stratified_sample(labels, 10, seed=1)
    counts = {name: sum(labels[i] == name for i in chosen) for name in ("big", "mid", "tiny")}
    assert len(set(chosen)) == 10 and counts == {"big": 6, "mid": 3, "tiny": 1}
    assert sorted(stratified_sample(labels, 500)) == sorted(labels)  # never more than there are


# -- a round from start to report ------------------------------------------------------------------


def test_kappa_matches_a_hand_computed_value():
    # p_o = 7/10; first rater cat 5 dog 5, second cat 6 dog 4: p_e = .5*.6 + .5*.4 = .5 -> (0.7-0.5)/0.5
    pairs = [("cat", "cat")] * 4 + [("cat", "dog")] + [("dog", "dog")] * 3 + [("dog", "cat")] * 2
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("cat", "cat")] * 3) == 1.0 and cohen_kappa([]) is None


def test_a_round_reviewed_blind_adjudicated_and_reported(folder):
    with Project(folder) as project:
        store = project.store
        round_ = start_round(store, actor="ana", size=5, seed=3)
        items = {item.first_label: item for item in store.round_items(round_.id)}
        assert sorted(items) == LABELS and {item.first_actor for item in items.values()} == {"ana"}

        with pytest.raises(LabelchatError, match="were labelled by ana, and nobody reviews their own items"):
            next_to_review(store, round_.id, "ana")
        with pytest.raises(LabelchatError, match="nobody reviews their own items"):
            review_item(store, round_.id, items["fish"].item_id, "fish", "ana")
        answers = {"fish": "tool", "mammal": "windmill", "monument": "monument", "tool": "tool", "windmill": "windmill"}
        assert next_to_review(store, round_.id, "bo") == store.round_items(round_.id)[0]
        for label in ["monument", "tool", "windmill", "fish", "mammal"]:
            review_item(store, round_.id, items[label].item_id, answers[label], "bo")
        assert next_to_review(store, round_.id, "bo") is None
        assert {d.item_id for d in disagreements(store, round_.id)} == {items["fish"].item_id, items["mammal"].item_id}

        adjudicate(store, round_.id, items["fish"].item_id, "fish", "cy")  # the first label was right: no change
        adjudicate(store, round_.id, items["mammal"].item_id, "windmill", "cy")  # the reviewer was right
        mammal = items["mammal"].item_id
        assert store.state(mammal).label == "windmill"
        assert (store.decisions(mammal)[-1].action, store.decisions(mammal)[-1].actor) == (Action.CORRECT, "cy")
        assert store.decisions(items["fish"].item_id)[-1].actor == "ana"
        with pytest.raises(LabelchatError, match="not a disagreement"):
            adjudicate(store, round_.id, items["tool"].item_id, "fish", "cy")

        report = round_report(store, round_.id)
        # p_o = 3/5; first labels one each, second tool 2 windmill 2 monument 1: p_e = 5/25 -> (0.6-0.2)/0.8
        assert report.kappa == pytest.approx(0.5)
        assert (report.reviewed, report.agreed, report.disagreed, report.adjudicated, report.changed) == (5, 3, 2, 2, 1)
        assert {c.label: (c.agreed, c.reviewed) for c in report.per_class} == {
            "fish": (0, 1), "mammal": (0, 1), "monument": (1, 1), "tool": (1, 1), "windmill": (1, 1)}
        assert {a.name: (a.correct, a.judged) for a in report.per_annotator} == {"ana": (4, 5), "bo": (4, 5)}

        quality = quality_report(store)
        by_label = {c.label: c for c in quality.per_class}
        assert quality.checked == 5 and quality.accuracy == pytest.approx(0.8)
        assert by_label["windmill"].precision == 1.0 and by_label["windmill"].recall == 0.5
        assert by_label["mammal"].precision == 0.0 and by_label["mammal"].recall is None
        assert quality.confusion[LABELS.index("mammal")][LABELS.index("windmill")] == 1
        assert quality.counts["labels_changed_after_confirmation"] == 1
        text = format_markdown(quality)
        assert "| windmill | 2 | 1.00 | 0.50 | 0.67 |" in text and "| mammal | 0 | 0 | 0 | 0 | 1 |" in text
        shaded = confusion_html(quality)  # the Rounds tab's plot of it
        assert "rows are the label given" in shaded and shaded.count('title="1 of 1"') == 5
        assert "Cohen's kappa **0.500**" in round_markdown(report) and "| bo | 4 | 5 |" in round_markdown(report)

        with pytest.raises(LabelchatError, match="adjudicated since; undo the adjudication first"):
            undo_answer(store, round_.id, "bo")  # bo's newest answer is on the mammal, settled since
        undone = undo_answer(store, round_.id, "cy")  # the adjudication that changed a label, and its decision
        assert undone.item_id == mammal and store.state(mammal).label == "mammal"
        assert store.decisions(mammal)[-1].action is Action.UNDO
        assert round_report(store, round_.id).to_adjudicate == 1
        assert undo_answer(store, round_.id, "bo").item_id == mammal
        assert next_to_review(store, round_.id, "bo").item_id == mammal and disagreements(store, round_.id) == []

        close_round(store, round_.id, "ana")
        with pytest.raises(LabelchatError, match="was closed by ana"):
            adjudicate(store, round_.id, mammal, "windmill", "cy")
        assert store.check() == []


def test_two_people_answering_the_same_item_at_once_count_once(folder):
    with Project(folder) as first, Project(folder) as second:
        round_ = start_round(first.store, actor="ana", size=3, seed=0)
        item = next_to_review(first.store, round_.id, "bo")
        assert next_to_review(second.store, round_.id, "dee") == item  # both are shown the same item
        review_item(first.store, round_.id, item.item_id, item.first_label, "bo")
        with pytest.raises(AlreadyAnsweredError, match=f"already reviewed by bo .*not counted"):
            review_item(second.store, round_.id, item.item_id, "tool", "dee")
        assert [(a.actor, a.item_id) for a in second.store.round_answers(round_.id)] == [("bo", item.item_id)]
        undo_answer(second.store, round_.id, "bo")  # undone, the item is open for review again
        assert next_to_review(second.store, round_.id, "dee") == item
        with pytest.raises(NothingToUndoError, match="bo has no answer in effect"):
            undo_answer(second.store, round_.id, "bo")


def test_a_round_with_nothing_or_nobody_to_review_is_refused(folder, tmp_path):
    with Project(tmp_path / "empty") as empty:
        with pytest.raises(LabelchatError, match="no confirmed items to review"):
            start_round(empty.store, actor="ana", size=5)
    with Project(folder) as project:
        with pytest.raises(LabelchatError, match="Every confirmed item was labelled by ana.*nobody else's work"):
            start_round(project.store, actor="ana", size=5, reviewer="ana")
        with pytest.raises(LabelchatError, match="Nobody else can review.*ana, the only user"):
            start_round(project.store, actor="ana", size=5, people=["ana"])
        with pytest.raises(LabelchatError, match="The reviewer 'zed' is not one of the users \\(ana, bo\\)"):
            start_round(project.store, actor="ana", size=5, reviewer="zed", people=["ana", "bo"])
        assert project.store.rounds() == []
        round_ = start_round(project.store, actor="ana", size=5, reviewer="bo", people=["ana", "bo"])
        with pytest.raises(LabelchatError, match="is for bo to review, not cy"):
            next_to_review(project.store, round_.id, "cy")


# -- the command line ------------------------------------------------------------------------------


def _cli(monkeypatch, capsys, *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_round_commands_from_start_to_report(folder, tmp_path, monkeypatch, capsys):
    users = tmp_path / "users.txt"
    users.write_text("ana:a\nbo:b\ncy:c\n", encoding="utf-8")
    common = ("--project", str(folder), "--auth-file", str(users))
    code, out, err = _cli(monkeypatch, capsys, "round", "start", "--confidence", "0.9", "--margin", "0.2",
                          "--user", "ana", *common)
    assert code == 0 and "Started review round 1: 15 of 94 confirmed items" in out and "±20% at 90%" in out

    code, out, err = _cli(monkeypatch, capsys, "round", "review", "--user", "zed", *common)
    assert code == 1 and "'zed' is not in the auth file" in err

    code, out, err = _cli(monkeypatch, capsys, "round", "review", "--user", "ana", *common)
    assert code == 1 and "labelled by ana, and nobody reviews their own items" in err

    # bo answers "fish" for all but skips one, says something it does not know, and undoes once
    answers = "s\nFish\nnonsense\n" + "1\n" * 3 + "u\n" + "fish\n" * 20
    code, out, err = _cli(monkeypatch, capsys, "round", "review", "--user", "bo", "--json", *common, stdin=answers)
    result = json.loads(out)
    assert code == 0 and result["answered"] == 14 and result["left"] == 1
    assert "not understood: 'nonsense'" in err and "took back your answer" in err
    shown = re.findall(r"#\d+  (\S+)\n  which label\?", err)  # the image's file in the project, not its source
    assert len(shown) == 17 and all("/media/" in path and "/photos/" not in path for path in shown)

    code, out, err = _cli(monkeypatch, capsys, "round", "report", "--json", *common)
    report = json.loads(out)
    fish = next(c for c in report["per_class"] if c["label"] == "fish")
    assert report["reviewed"] == 14 and fish["agreement"] == 1.0
    assert report["agreed"] == fish["reviewed"] and report["to_adjudicate"] == 14 - fish["reviewed"]

    code, out, err = _cli(monkeypatch, capsys, "round", "adjudicate", "--user", "cy", *common,
                          stdin="2\n" + "1\n" * 30)
    assert code == 0 and f"{report['to_adjudicate']} disagreement(s) settled by cy" in out
    code, out, err = _cli(monkeypatch, capsys, "round", "report", *common)
    assert "ana " in out and "bo " in out and "Cohen's kappa" in out

    target = tmp_path / "quality.md"
    code, out, err = _cli(monkeypatch, capsys, "quality-report", "--out", str(target), *common)
    assert code == 0 and "## Confusion matrix" in target.read_text(encoding="utf-8")
    code, out, err = _cli(monkeypatch, capsys, "quality-report", "--json", *common)
    assert json.loads(out)["checked"] == 14 and json.loads(out)["labels_changed_after_confirmation"] == 1

    code, out, err = _cli(monkeypatch, capsys, "round", "close", "--user", "ana", *common)
    assert code == 0 and "Closed review round 1" in out
    code, out, err = _cli(monkeypatch, capsys, "round", "list", *common)
    assert "round 1    closed    14/15" in out
    code, out, err = _cli(monkeypatch, capsys, "round", "review", "--user", "bo", *common)
    assert code == 1 and "There is no open review round" in err


def test_the_chat_starts_a_round_and_says_how_it_went(folder):
    from agent.session import Session
    from agent.steps import FinalAnswer

    def say(session, text: str) -> str:
        return [s.text for s in session.send(text) if isinstance(s, FinalAnswer)][-1]

    with Project(folder) as project:
        session = Session(project, actor="ana")
        assert "There is no review round yet" in say(session, "how did the review round go?")
        said = say(session, "start a review round of 5")
        assert "Started review round 1: 5 items, as asked" in said
        store = project.store
        assert store.get_round(1).created_by == "ana" and len(store.round_items(1)) == 5
        for item in store.round_items(1)[:4]:
            review_item(store, 1, item.item_id, "fish", "bo")
        said = say(session, "how did the review round go?")
        fish = sum(item.first_label == "fish" for item in store.round_items(1)[:4])
        kappa = round_report(store, 1).kappa
        assert f"4 of 5 images reviewed, {fish} agreed" in said and f"Cohen's kappa {kappa:.2f}" in said
        assert "1 item(s) not reviewed yet" in said
        said = say(session, "start a review round of 5 for ana")
        assert "nobody else's work for ana" in said and len(store.rounds()) == 1


def test_an_auto_accept_audit_is_kept_and_measures_the_labels_in_the_quality_report(folder):
    from tools.rounds import NOT_THIS_LABEL, record_audit

    with Project(folder) as project:
        store = project.store
        ids = sorted(store.confirmed_labels())[:4]
        truth = {i: store.state(i).label for i in ids}
        suggested = {ids[0]: truth[ids[0]], ids[1]: truth[ids[1]], ids[2]: "tool" if truth[ids[2]] != "tool" else "fish",
                     ids[3]: truth[ids[3]]}
        store.decide(ids[3], Action.REJECT, truth[ids[3]], actor="bo")  # rejected: wrong, right label unknown
        audit = record_audit(store, ids, suggested, 0.9)
        assert (audit.kind, audit.status, audit.created_by) == ("audit", "closed", "auto-accept")
        report = quality_report(store)
        assert report.audits == 1 and report.rounds == 0 and report.checked == 4 and report.accuracy == 0.5
        assert NOT_THIS_LABEL in report.labels
        wrong = report.labels.index(suggested[ids[3]])
        assert report.confusion[wrong][report.labels.index(NOT_THIS_LABEL)] == 1
        assert "1 auto-accept audit(s)" in format_markdown(report)
        with pytest.raises(LabelchatError, match="There is no review round yet"):  # an audit is not a round to review
            current_round(store, open_only=False)
        assert record_audit(store, [], {}, 0.9) is None
