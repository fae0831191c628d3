"""The `labelchat` command as a script would use it: exit codes, --json, --project anywhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import imagefiles
import pytest

LABELCHAT = Path(sys.executable).parent / "labelchat"


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LABELCHAT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_console_script_is_installed():
    assert LABELCHAT.exists(), "pip install -e . should create the labelchat command"


@pytest.mark.parametrize(
    "command", ["", "add", "import", "labels", "status", "items", "log", "export", "undo", "demo", "train", "models", "jobs"]
)
def test_help_everywhere(tmp_path, command):
    result = run(*([command] if command else []), "--help", cwd=tmp_path)
    assert result.returncode == 0 and "usage: labelchat" in result.stdout


def test_add_status_export_undo_with_json(tmp_path, photos_dir):
    result = run("add", str(photos_dir), "--labels-from-folders", "--json", "--project", "p", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["added"] == 94 and report["labelled"] == 94

    status = json.loads(run("--project", "p", "status", "--json", "--check", cwd=tmp_path).stdout)
    assert status["items"] == 94 and status["by_status"]["confirmed"] == 94 and status["problems"] == []
    assert {row["label"]: row["confirmed"] for row in status["by_label"]}["windmill"] == 14

    undo = run("undo", "--json", "--project", "p", cwd=tmp_path)
    assert undo.returncode == 0 and json.loads(undo.stdout)["state"]["status"] == "pending"

    export = run("export", "out", "--format", "coco", "--json", "--project", "p", cwd=tmp_path)
    assert export.returncode == 0 and json.loads(export.stdout)["count"] == 93
    assert (tmp_path / "out" / "annotations.json").exists()
    again = run("export", "out", "--project", "p", cwd=tmp_path)
    assert again.returncode == 1 and "not empty" in again.stderr and "--overwrite" in again.stderr


def test_one_undo_takes_back_a_bulk_accept(tmp_path, photos_dir):
    run("add", str(photos_dir / "fish"), "--project", "p", cwd=tmp_path)
    run("labels", "set", "fish, tool", "--project", "p", cwd=tmp_path)
    run("model", "openclip:tiny/random", "--project", "p", cwd=tmp_path)
    accepted = run("accept", "--min-prob", "0.01", "--json", "--project", "p", cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    count = json.loads(accepted.stdout)["accepted"]
    assert count == 20
    undo = run("undo", "--project", "p", cwd=tmp_path)
    assert undo.returncode == 0 and "Undid the bulk action's 20 decisions" in undo.stdout
    status = json.loads(run("status", "--json", "--project", "p", cwd=tmp_path).stdout)
    assert status["by_status"]["confirmed"] == 0 and status["by_status"]["pending"] == 20


def test_auto_accept_accepts_the_rest_only_after_an_audit_that_holds(tmp_path, photos_dir):
    run("add", str(photos_dir / "tool"), "--project", "p", cwd=tmp_path)
    run("labels", "set", "fish, tool", "--project", "p", cwd=tmp_path)
    run("model", "openclip:tiny/random", "--project", "p", cwd=tmp_path)  # it calls everything "tool"

    def auto_accept(answers: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(LABELCHAT), "auto-accept", "--min-prob", "0.01", "--audit", "4", "--seed", "1",
                               "--project", "p", *extra], cwd=tmp_path, input=answers, capture_output=True,
                              text=True, timeout=120)

    def confirmed() -> int:
        return json.loads(run("status", "--json", "--project", "p", cwd=tmp_path).stdout)["by_status"]["confirmed"]

    unanswered = auto_accept("")  # stdin closed: nobody looked
    assert unanswered.returncode == 1 and "Accepted nothing more: the audit was not finished" in unanswered.stdout
    assert confirmed() == 0
    wrong = auto_accept("n\nn\nn\nn\n")  # every audit card is wrong
    assert wrong.returncode == 1 and "right 0 of 4 times (0.0%), below the 90% asked for" in wrong.stdout
    assert "error: nothing more was accepted" in wrong.stderr
    assert confirmed() == 0
    right = auto_accept("y\ny\ny\ny\n", "--min-precision", "0.75")
    assert right.returncode == 0, right.stdout + right.stderr
    assert "Accepted 12 items automatically" in right.stdout and confirmed() == 16  # 4 audited, 12 unseen


def test_project_from_the_environment_and_the_default(tmp_path):
    (tmp_path / "a.jpg").write_bytes(imagefiles.jpeg(1))
    run("add", "a.jpg", cwd=tmp_path, env={"LABELCHAT_PROJECT": str(tmp_path / "envproj")})
    assert (tmp_path / "envproj" / "project.db").exists()
    run("add", "a.jpg", cwd=tmp_path, env={"LABELCHAT_PROJECT": ""})
    assert (tmp_path / "labelchat-data" / "default" / "project.db").exists()


def test_partial_success_exits_3_and_lists_what_was_skipped(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.jpg").write_bytes(imagefiles.jpeg(1))
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not an image")
    result = run("add", "in", "--project", "p", cwd=tmp_path)
    assert result.returncode == 3
    assert "Added 1 new image." in result.stdout
    assert "broken.jpg" in result.stdout and "not an image" in result.stdout


def test_errors_exit_1_with_a_message_and_usage_errors_exit_2(tmp_path):
    missing = run("status", "--project", "nowhere", cwd=tmp_path)
    assert missing.returncode == 1 and "No labelchat project at nowhere" in missing.stderr
    bad_label = run("labels", "set", "cats/dogs", "--project", "p", cwd=tmp_path)
    assert bad_label.returncode == 1 and "'cats-dogs'" in bad_label.stderr
    as_json = run("labels", "add", "a, a", "--json", "--project", "p", cwd=tmp_path)
    assert as_json.returncode == 1 and json.loads(as_json.stdout) == {
        "ok": False, "error": "The label 'a' is given twice; give each label once."
    }
    nothing = run("undo", "--project", "p", cwd=tmp_path)
    assert nothing.returncode == 1 and "Nothing to undo" in nothing.stderr
    usage = run("export", cwd=tmp_path)
    assert usage.returncode == 2
    assert run(cwd=tmp_path).returncode == 2


def test_labels_set_add_remove_and_show(tmp_path):
    run("labels", "set", "windmill; dam; monument", "--project", "p", cwd=tmp_path)
    run("labels", "add", "bridge", "--project", "p", cwd=tmp_path)
    run("labels", "remove", "dam", "--project", "p", cwd=tmp_path)
    shown = json.loads(run("labels", "--json", "--project", "p", cwd=tmp_path).stdout)
    assert [label["name"] for label in shown["labels"]] == ["windmill", "monument", "bridge"]
    (tmp_path / "labels.txt").write_text("red sneaker = a red running shoe\nboot\n")
    run("labels", "set", "--file", "labels.txt", "--project", "p", cwd=tmp_path)
    text = run("labels", "--project", "p", cwd=tmp_path).stdout
    assert "1. red sneaker = a red running shoe" in text and "2. boot" in text


def test_demo_builds_once_and_is_idempotent(tmp_path):
    first = run("demo", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    status = json.loads(first.stdout)
    assert status["items"] == 94 and status["by_status"]["pending"] == 94
    assert [row["label"] for row in status["by_label"]] == ["fish", "mammal", "monument", "tool", "windmill"]
    second = run("demo", "--json", cwd=tmp_path)
    assert json.loads(second.stdout)["items"] == 94
    jobs = run("status", "--project", "labelchat-data/demo", cwd=tmp_path)
    assert "94 images" in jobs.stdout


def test_import_cli_round_trip(tmp_path, photos_dir):
    run("add", str(photos_dir), "--labels-from-folders", "--project", "a", cwd=tmp_path)
    run("export", "out", "--format", "hf", "--project", "a", cwd=tmp_path)
    result = run("import", "out", "--project", "b", "--json", cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout)["labelled"] == 94
    items = json.loads(run("items", "--status", "confirmed", "--label", "tool", "--json", "--project", "b", cwd=tmp_path).stdout)
    assert len(items["items"]) == 20 and items["items"][0]["state"]["label"] == "tool"


def test_crawl_command_saves_images_and_resumes(tmp_path, http_server):
    for i in range(3):
        http_server.add(f"{i}.jpg", imagefiles.jpeg(i, (96, 96)))
    page = "".join(f'<img src="/files/{i}.jpg" alt="photo {i}">' for i in range(3))
    start = http_server.add("index.html", f"<html><body>{page}</body></html>".encode())
    refused = run("crawl", start, "--project", "p", "--json", cwd=tmp_path)
    report = json.loads(refused.stdout)
    assert refused.returncode == 1 and report["ok"] is False and report["counts"] == {"refused address": 1}
    assert "--allow-private, or --allow-host HOST" in report["error"] and "--allow-host HOST" in refused.stderr
    result = run("crawl", start, "--allow-host", "127.0.0.1", "--project", "p2", "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["saved"] == 3, result.stderr
    again = run("crawl", "--resume", "--allow-host", "127.0.0.1", "--project", "p2", cwd=tmp_path)
    assert again.returncode == 0 and "saved 3 images" in again.stdout
    assert run("crawl", "--project", "p3", cwd=tmp_path).returncode == 1


# -- ordinary mistakes get a message and an exit code, never a stack trace ------------------


def _labelled_project(tmp_path: Path, name: str = "p") -> None:
    for label in ("a", "b"):
        (tmp_path / "in" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / label / f"{label}.jpg").write_bytes(imagefiles.jpeg(ord(label)))
    assert run("add", "in", "--labels-from-folders", "--project", name, cwd=tmp_path).returncode == 0


def test_paths_that_cannot_be_written_or_read_are_errors_not_tracebacks(tmp_path):
    _labelled_project(tmp_path)
    (tmp_path / "afile").write_text("a file, not a folder")
    into_a_file = run("export", "afile/sub", "--project", "p", cwd=tmp_path)
    assert into_a_file.returncode == 1 and "Traceback" not in into_a_file.stderr
    assert "error: Could not write afile/sub: Not a directory" in into_a_file.stderr
    assert "choose another path" in into_a_file.stderr
    as_json = run("export", "afile/sub", "--json", "--project", "p", cwd=tmp_path)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == {"ok": False, "error": into_a_file.stderr.strip().removeprefix("error: ")}

    assert run("export", "out", "--format", "csv", "--project", "p", cwd=tmp_path).returncode == 0
    (tmp_path / "out" / "labels.csv").unlink()
    no_manifest = run("import", "out", "--project", "q", cwd=tmp_path)
    assert no_manifest.returncode == 1 and "Traceback" not in no_manifest.stderr
    assert "error: Could not read out/labels.csv: No such file or directory" in no_manifest.stderr


def test_prelabel_checks_its_output_path_before_any_model_work(tmp_path):
    (tmp_path / "a.jpg").write_bytes(imagefiles.jpeg(1))
    (tmp_path / "afile").write_text("")
    result = run("prelabel", "--images", "a.jpg", "--labels", "a, b", "--out", "afile/preds.jsonl", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: Could not write afile/preds.jsonl" in result.stderr
    assert "notice:" not in result.stderr  # no model was loaded: the default would have said it falls back


@pytest.mark.parametrize("args, wrong", [
    (["review", "--size", "0"], "--size"),
    (["review", "--size", "-3"], "--size"),
    (["similar", "1", "--k", "-2"], "--k"),
    (["similar", "1", "--k", "0"], "--k"),
    (["auto-accept", "--min-prob", "0.9", "--audit", "-1"], "--audit"),
    (["accept", "--min-prob", "1.5"], "--min-prob"),
    (["items", "--limit", "0"], "--limit"),
])
def test_bad_numbers_are_usage_errors_that_name_the_option(tmp_path, args, wrong):
    run("labels", "set", "a, b", "--project", "p", cwd=tmp_path)
    result = run(*args, "--project", "p", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"argument {wrong}: " in result.stderr and args[args.index(wrong) + 1] in result.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    run("labels", "set", "a, b", "--project", "p", cwd=tmp_path)
    process = subprocess.Popen([str(LABELCHAT), "status", "--project", "p"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # like `| head` that has read all it wants, before labelchat writes
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141 and stderr == ""


# -- labels --file ----------------------------------------------------------------------------


def test_labels_file_skips_comments_and_replaces_the_set(tmp_path):
    (tmp_path / "labels.txt").write_text(
        "# what we label\n\ncat, dog\ntabby = a striped, domestic cat\n  # not a label either\nbird\n")
    run("labels", "set", "old", "--project", "p", cwd=tmp_path)
    bare = run("labels", "--file", "labels.txt", "--project", "p", cwd=tmp_path)
    assert bare.returncode == 0, bare.stderr
    assert "4 labels" in bare.stdout and "3. tabby = a striped, domestic cat" in bare.stdout
    shown = json.loads(run("labels", "--json", "--project", "p", cwd=tmp_path).stdout)
    assert [label["name"] for label in shown["labels"]] == ["cat", "dog", "tabby", "bird"]
    (tmp_path / "more.txt").write_text("# more\nowl\n")
    added = run("labels", "add", "--file", "more.txt", "--json", "--project", "p", cwd=tmp_path)
    assert [label["name"] for label in json.loads(added.stdout)["labels"]][-2:] == ["bird", "owl"]
    missing = run("labels", "--file", "nope.txt", "--project", "p", cwd=tmp_path)
    assert missing.returncode == 1 and "Could not read nope.txt" in missing.stderr


# -- review --answer --------------------------------------------------------------------------


def _shown_cards(stderr: str) -> list[int]:
    """The ids of the cards shown, in order (a card's head is '#ID  SOURCE')."""
    return [int(found) for found in re.findall(r"#(\d+)  ", stderr)]


def test_review_answers_read_label_names_first_and_undo_asks_again(tmp_path, photos_dir):
    run("add", str(photos_dir / "fish"), "--project", "p", cwd=tmp_path)
    run("labels", "set", "1, 3, 7", "--project", "p", cwd=tmp_path)
    run("model", "openclip:tiny/random", "--project", "p", cwd=tmp_path)
    before = run("correct", "20", "7", "--project", "p", cwd=tmp_path)  # made before the session: u leaves it
    assert before.returncode == 0, before.stderr
    answers = "u\n3\nu\n\nq\n"  # nothing of the session to undo yet; label '3'; undo it; Enter accepts; quit
    result = subprocess.run([str(LABELCHAT), "review", "--answer", "--size", "3", "-q", "--project", "p"],
                            cwd=tmp_path, input=answers, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "error" not in result.stderr, result.stderr
    assert "nothing to undo" in result.stderr and "Enter or y accept" in result.stderr
    first, second = _shown_cards(result.stderr)[1:3]
    assert _shown_cards(result.stderr) == [first, first, second, first, second]  # the undone card came back
    assert result.stdout.startswith("1 decision saved")
    log = json.loads(run("log", "--json", "--project", "p", cwd=tmp_path).stdout)["decisions"]
    decisions = [(d["item_id"], d["action"], d["label"]) for d in log]  # oldest first
    assert decisions[0] == (20, "correct", "7")  # the decision from before the session stands
    assert decisions[1] == (first, "correct", "3")  # the label named '3', not the third label ('7')
    assert decisions[2] == (first, "undo", "3")
    assert len(log) == 4 and decisions[3][:2] == (first, "accept")  # Enter decided it again


# -- run SCRIPT -------------------------------------------------------------------------------


def test_run_fails_on_lines_it_did_not_understand_or_that_wait_for_a_yes(tmp_path, photos_dir):
    (tmp_path / "job.txt").write_text(
        f"add {photos_dir / 'fish'}\nuse the labels fish, tool\nlabel them\n"
        "frobnicate them plz\nadd\nhelp\napprove everything above 0.01\n")  # 'lable them' is read now
    result = run("run", "job.txt", "--model", "openclip:tiny/random", "--project", "p", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "3 line(s) of job.txt failed" in error
    assert "line 4 (not understood" in error and "line 5 (not understood" in error
    assert "line 7 (waited for a yes" in error and "--yes" in error
    assert "line 6" not in error and "line 3" not in error


# -- suggest, add, crawl: say what is left, fail when nothing was done -------------------------


def test_an_interrupted_suggest_says_how_many_remain_and_how_to_go_on(tmp_path, fashion_dir):
    import signal
    import sqlite3
    import time

    run("add", str(fashion_dir), "-q", "--project", "p", cwd=tmp_path)
    run("labels", "set", "bag, coat", "--project", "p", cwd=tmp_path)
    process = subprocess.Popen(
        [str(LABELCHAT), "suggest", "--model", "openclip:tiny/random", "--batch-size", "1", "-q", "--project", "p"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    with sqlite3.connect(tmp_path / "p" / "project.db", timeout=30) as db:
        while db.execute("SELECT COUNT(*) FROM suggestions").fetchone()[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    first = stdout.splitlines()[0]
    done = int(first.split("suggested labels for ")[1].split()[0])
    remaining = int(first.split("; ")[1].split()[0])
    assert first.startswith("Stopped early") and done + remaining == 1000 and remaining > 0
    assert f"{remaining} images remain. Run 'labelchat suggest' again to go on where it stopped" in first
    again = run("suggest", "--model", "openclip:tiny/random", "-q", "--json", "--project", "p", cwd=tmp_path)
    assert json.loads(again.stdout)["suggested"] == remaining


def test_add_with_nothing_usable_is_an_error_with_the_reasons(tmp_path):
    nothing = run("add", "nonexist", "--project", "p", cwd=tmp_path)
    assert nothing.returncode == 1
    assert "error: Nothing was added" in nothing.stderr and "nonexist: no such file or folder" in nothing.stderr
    as_json = json.loads(run("add", "nonexist", "--json", "--project", "p", cwd=tmp_path).stdout)
    assert as_json["ok"] is False and as_json["skipped_by_reason"] == {"not found": 1} and as_json["error"]
    (tmp_path / "ok.jpg").write_bytes(imagefiles.jpeg(1))
    assert run("add", "nonexist", "ok.jpg", "--project", "p", cwd=tmp_path).returncode == 3


def test_a_crawl_whose_start_cannot_be_used_is_an_error(tmp_path):
    result = run("crawl", "notaurl", "--project", "p", cwd=tmp_path)
    assert result.returncode == 1
    assert "error: Nothing was saved" in result.stderr and "neither an http(s) URL" in result.stderr


# -- the CLIP fallback notice -------------------------------------------------------------------


def test_the_fallback_notice_writes_a_local_weights_file_as_the_readme_does(tmp_path):
    (tmp_path / "a.jpg").write_bytes(imagefiles.jpeg(1))
    process = subprocess.Popen([str(LABELCHAT), "prelabel", "--images", "a.jpg", "--labels", "a, b"],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "LABELCHAT_MODEL": ""})
    try:
        notice = next((line for line in process.stderr if line.startswith("notice:")), "")
    finally:
        process.kill()  # the notice comes before the offline model loads; no need to wait for it
        process.wait()
    assert "--model openclip:ViT-B-32//path/to/model.safetensors" in notice
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "openclip:ViT-B-32//path/to/model.safetensors" in readme


def test_suggest_stores_what_the_review_panel_shows_once_labels_are_confirmed(tmp_path, photos_dir):
    run("add", str(photos_dir / "fish"), str(photos_dir / "tool"), "--project", "p", cwd=tmp_path)
    run("labels", "set", "fish, tool", "--project", "p", cwd=tmp_path)
    run("model", "openclip:tiny/random", "--project", "p", cwd=tmp_path)
    plain = json.loads(run("suggest", "--json", "--project", "p", cwd=tmp_path).stdout)
    assert plain["examples"] == 0  # nobody has confirmed anything: the model's own scores
    for item_id, label in ((1, "fish"), (2, "fish"), (21, "tool"), (22, "tool")):
        assert run("correct", str(item_id), label, "--project", "p", cwd=tmp_path).returncode == 0
    result = run("suggest", "--project", "p", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "learned from 4 confirmed images" in result.stdout
    items = json.loads(run("items", "--status", "pending", "--json", "--project", "p", cwd=tmp_path).stdout)["items"]
    assert items and all(row["suggestion"]["method"] == "zero-shot+examples" for row in items)

    from index.project import Project
    from tools.review import Reviewer

    project = Project(tmp_path / "p")  # what the review panel would show for the same items
    reviewer = Reviewer(project)
    reviewer.refresh()
    for row in items:
        shown = reviewer.suggestions_of(row["item"]["id"])[0]
        assert (shown.label, round(shown.score, 4)) == (row["suggestion"]["label"], round(row["suggestion"]["score"], 4))
    project.close()
