"""Likely label errors: out-of-fold probabilities, cleanlab's ranking, keeping a flagged label."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from index.errors import LabelchatError
from index.project import Project
from index.types import Action, Label
from test_cli import run
from tools.ingest import IngestOptions, ingest
from tools.quality.suspects import find_suspects, out_of_fold_probabilities, scorable
from tools.review import Reviewer, Strategy

FLIPS = {"fish": "tool", "windmill": "mammal", "monument": "fish"}  # one item of each label given a wrong one


def _clusters(n_per=40, classes=3, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3 * rng.standard_normal((classes, dim))
    x = np.concatenate([c + rng.standard_normal((n_per, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(classes), n_per)


def test_out_of_fold_probabilities_never_come_from_a_model_that_saw_the_label():
    x, y = _clusters()
    wrong = [0, 45, 90]
    y_noisy = y.copy()
    y_noisy[wrong] = (y[wrong] + 1) % 3
    p = out_of_fold_probabilities(x, y_noisy, 3)
    assert p.shape == (120, 3) and np.allclose(p.sum(axis=1), 1)
    # a model trained on its own (wrong) label would lean to it; held out, each item looks like its cluster
    assert (p[wrong].argmax(axis=1) == y[wrong]).all()
    assert (p[wrong, y_noisy[wrong]] < 0.5).all()


def test_labels_with_fewer_than_two_items_are_not_scored_and_one_label_is_refused():
    usable, unscored = scorable({1: "cat", 2: "cat", 3: "dog", 4: "dog", 5: "bird"}, ["cat", "dog", "bird", "fox"])
    assert usable == ["cat", "dog"] and "only 1 confirmed item" in unscored["bird"] and "fox" not in unscored
    with pytest.raises(LabelchatError, match="at least two labels with two or more confirmed items.*cat 3"):
        scorable({1: "cat", 2: "cat", 3: "cat", 4: "dog"}, ["cat", "dog"])


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, photos_dir):
    """The demo photos, confirmed from their folders and embedded once with the offline model."""
    folder = tmp_path_factory.mktemp("quality") / "photos"
    with Project(folder) as project:
        ingest(project, [str(photos_dir)], IngestOptions(labels_from_folders=True, near_duplicate_distance=-1))
        project.store.set_setting("model", "offline")
        Reviewer(project, model="offline")
    return folder


@pytest.fixture
def noisy(embedded, tmp_path):
    """A copy of the embedded photos with one item of three labels corrected to a wrong label."""
    folder = tmp_path / "noisy"
    shutil.copytree(embedded, folder)
    with Project(folder) as project:
        confirmed = project.store.confirmed_labels()
        flipped = {}
        for true, wrong in FLIPS.items():
            item_id = min(i for i, label in confirmed.items() if label == true)
            project.store.decide(item_id, Action.CORRECT, wrong, actor="careless")
            flipped[item_id] = true
    return folder, flipped


def test_wrong_labels_are_the_top_suspects_and_a_kept_one_is_not_flagged_again(noisy):
    folder, flipped = noisy
    with Project(folder) as project:
        reviewer = Reviewer(project, model="offline")
        report = find_suspects(project, reviewer.model)
        top = [s.item_id for s in report.ranking[: len(flipped)]]
        assert len(set(top) & set(flipped)) >= 2 and report.scored == 94
        found = {s.item_id: s for s in report.suspects}
        assert set(flipped) & set(found)
        hit = next(i for i in flipped if i in found)
        assert found[hit].label == FLIPS[flipped[hit]] and found[hit].likely_label == flipped[hit]
        assert 0 < found[hit].score <= 1

        cards = reviewer.batch(Strategy.SUSPECT, 20)
        assert [c.item.id for c in cards] == [s.item_id for s in report.suspects][:20]
        kept = cards[0].item.id
        reviewer.decide(kept, Action.ACCEPT)  # accepting a suspect keeps its label
        assert project.store.state(kept).label == found[kept].label
        again = find_suspects(project, reviewer.model)
        assert kept not in {s.item_id for s in again.suspects} and again.kept == 1
        assert project.store.decisions(kept)[-1].actor == "user"

        project.store.undo(kept)  # undone like any decision: flagged again
        assert kept in {s.item_id for s in find_suspects(project, reviewer.model).suspects}


def test_cli_suspects_json_and_bad_input(noisy, tmp_path):
    folder, flipped = noisy
    result = run("suspects", "--json", "--limit", "2", "--project", str(folder), "--model", "offline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert value["ok"] and 1 <= len(value["suspects"]) <= 2
    assert set(value["suspects"][0]) == {"item_id", "label", "likely_label", "score"}
    assert value["suspects"][0]["item_id"] in flipped
    text = run("suspects", "--project", str(folder), "--model", "offline", cwd=tmp_path)
    assert "look wrong among 94 confirmed items" in text.stdout and "--strategy suspect" in text.stdout

    with Project(folder) as project:  # one label only
        project.store.add_labels([Label("bird")])
        for item_id in list(project.store.confirmed_labels()):
            project.store.undo(item_id)
    refused = run("suspects", "--project", str(folder), "--model", "offline", cwd=tmp_path)
    assert refused.returncode == 1 and "at least two labels with two or more confirmed items" in refused.stderr


def test_the_chat_answers_which_labels_look_wrong(noisy):
    from agent.session import Session
    from test_agent import answer, calls, say

    folder, flipped = noisy
    with Project(folder) as project:
        session = Session(project, model="offline")
        steps = say(session, "which labels look wrong?")
        assert calls(steps) == [("suspect_labels", {})]
        text = answer(steps)
        assert ("labels look wrong" in text or "1 label looks wrong" in text) and any(f"#{i} " in text for i in flipped)
        assert "--" not in text  # the chat never advises command-line flags
        item = next(iter(flipped))
        steps = say(session, f"{item} has the wrong label, it is a windmill")
        assert ("suspect_labels", {}) not in calls(steps)


def test_health_finds_duplicates_across_labels_poor_images_and_copies(embedded, tmp_path, photos_dir):
    from PIL import Image

    from tools.quality.health import dataset_health

    folder = tmp_path / "health"
    shutil.copytree(embedded, folder)
    extra = tmp_path / "extra"
    (extra / "tool").mkdir(parents=True)
    (extra / "mammal").mkdir()
    (extra / "fish").mkdir()
    fish = sorted((photos_dir / "fish").iterdir())[0]
    Image.open(fish).convert("RGB").save(extra / "tool" / "recompressed.jpg", quality=70)  # same photo, another label
    shutil.copy(fish, extra / "fish" / "copy.jpg")  # the same bytes from another place
    Image.new("RGB", (200, 150), (120, 120, 121)).save(extra / "tool" / "blank.png")
    Image.new("RGB", (20, 20), (10, 200, 30)).save(extra / "mammal" / "tiny.png")
    with Project(folder) as project:
        ingest(project, [str(extra)], IngestOptions(labels_from_folders=True))
        report = dataset_health(Reviewer(project, model="offline"))
        by_sha = {item.source.rsplit("/", 1)[-1]: item.id for item in project.store.items()}
        original = project.store.item_by_sha256(project.store.get_item(by_sha[fish.name]).sha256).id
    counts = report.counts
    assert counts["exact_duplicates"] == 1 and report.exact_duplicates[0] == (original, 2)
    across = [d for d in report.duplicates if d.kind == "features"]
    assert any({d.item_id, d.other_id} == {original, by_sha["recompressed.jpg"]} and set(d.labels) == {"fish", "tool"}
               for d in across)
    assert any(d.kind == "perceptual" for d in report.duplicates)
    poor = {f.item_id: f.reason for f in report.poor_images}
    assert poor == {by_sha["blank.png"]: "nearly uniform", by_sha["tiny.png"]: "too small"}


def test_cli_health_json(embedded, tmp_path):
    result = run("health", "--json", "--project", str(embedded), "--model", "offline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert value["items"] == 94 and set(value["counts"]) == {
        "exact_duplicates", "perceptual_duplicates", "duplicates_across_labels", "outliers", "poor_images"}
    assert value["poor_images"] == [] and value["counts"]["duplicates_across_labels"] == 0


def test_the_dashboards_health_section_shows_counts_and_thumbnails_of_each_finding():
    from tools.quality.health import DuplicatePair, HealthReport, ImageFinding
    from ui.quality_views import health_html

    report = HealthReport(10, ((3, 2),), (DuplicatePair(1, 2, "features", 0.991, ("cat", "dog")),),
                          (ImageFinding(5, "fits no label", "best zero-shot label cat at 0.21"),),
                          (ImageFinding(7, "nearly uniform", "its pixels vary by 0.4 grey levels"),
                           ImageFinding(8, "too small", "20x20 pixels <under 32>")))
    html = health_html(report, lambda i: f"/file/{i}.jpg")
    assert "<b>1</b> exact duplicates" in html and "<b>1</b> duplicates across labels" in html
    assert html.count("<img") == 5 and "/file/2.jpg" in html and "#1 cat / #2 dog (cosine 0.991)" in html
    assert "Too small or nearly uniform (2)" in html and "&lt;under 32&gt;" in html  # escaped
    assert "--" not in html  # the browser never advises command-line flags
    empty = HealthReport(3, (), (), (), ())
    assert "<img" not in health_html(empty, str) and "Act on" not in health_html(empty, str)


def test_the_dashboards_health_check_through_the_running_app(embedded, tmp_path):
    from gradio_client import Client

    from test_ui import _free_port
    from ui.app import launch

    folder = tmp_path / "app"
    shutil.copytree(embedded, folder)
    server, url = launch(folder, port=_free_port(), model="offline", block=False)
    try:
        html = Client(url, verbose=False).predict(api_name="/health")
    finally:
        server.close()
    assert "Health of 94 images" in html and "<b>0</b> poor images" in html


def test_the_cli_records_who_decided(embedded, tmp_path):
    import getpass

    folder = tmp_path / "who"
    shutil.copytree(embedded, folder)
    env = {"LABELCHAT_USER": ""}
    args = ("--project", str(folder), "--model", "offline")
    assert run("correct", "1", "mammal", "--user", "ana", *args, cwd=tmp_path, env=env).returncode == 0
    assert run("accept", "2", "--label", "fish", *args, cwd=tmp_path, env=env).returncode == 0
    assert run("undo", "--item", "1", "--user", "bo", "--project", str(folder), cwd=tmp_path, env=env).returncode == 0
    log = json.loads(run("log", "--json", "--limit", "3", "--project", str(folder), cwd=tmp_path).stdout)
    assert [(d["item_id"], d["action"], d["actor"]) for d in log["decisions"]] == [
        (1, "correct", "ana"), (2, "accept", getpass.getuser()), (1, "undo", "bo")]
    bad = run("correct", "1", "tool", "--user", "a b", *args, cwd=tmp_path)
    assert bad.returncode == 2 and "not a usable user name" in bad.stderr
    with Project(folder) as project:
        assert project.store.state(1).label == "fish"  # nothing changed by the refused command
