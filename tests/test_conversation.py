"""Follow-ups in the chat: what was shown is what 'them', 'the first three', 'the rest' mean;
misspellings read when one reading is clearly nearest; anything unclear asked back; nothing
decided by mistake. Through the router on the demo photos, and through `labelchat run`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.session import Session
from agent.steps import ErrorStep, FinalAnswer, NeedsConfirmation, ToolCallStarted, ToolResult
from index.project import Project
from index.types import Action, Status

TINY = "openclip:tiny/random"
LABELCHAT = Path(sys.executable).parent / "labelchat"


def say(session: Session, text: str) -> list:
    return list(session.send(text))


def told(steps) -> str:
    return " ".join(getattr(s, "text", "") or getattr(s, "message", "") or getattr(s, "question", "") for s in steps)


def calls(steps) -> list[tuple[str, dict]]:
    return [(s.name, s.args) for s in steps if isinstance(s, ToolCallStarted)]


def shown_ids(steps) -> list[int]:
    result = next(s for s in steps if isinstance(s, ToolResult) and s.name == "review_batch")
    return [card.item.id for card in result.artifact]


@pytest.fixture
def labelled(tmp_path, photos_dir):
    """A project with the fish and tool photos, two labels and suggestions; a chat on it."""
    project = Project(tmp_path / "p")
    session = Session(project, model=TINY)
    say(session, f"add {photos_dir / 'fish'} {photos_dir / 'tool'}")
    say(session, "use the labels fish, tool, windmill")
    say(session, "label them")
    yield project, session
    project.close()


def states(project, ids):
    return [project.store.state(i) for i in ids]


def test_approve_them_decides_exactly_what_was_shown_and_undo_takes_it_back(labelled):
    project, session = labelled
    shown = shown_ids(say(session, "show me the 5 least certain"))
    assert len(shown) == 5
    steps = say(session, "approve them")
    assert calls(steps) == [("decide", {"item_ids": shown, "action": "accept"})]
    assert project.store.status().by_status["confirmed"] == 5
    assert all(s.status is Status.CONFIRMED for s in states(project, shown))
    say(session, "undo")
    assert project.store.status().by_status["confirmed"] == 0


def test_positions_the_rest_and_that_one(labelled):
    project, session = labelled
    shown = shown_ids(say(session, "show me the 6 least certain"))
    assert calls(say(session, "the first is a fish")) == [("correct", {"item_id": shown[0], "label": "fish"})]
    steps = say(session, "the second and third are tools")  # not a reference it knows: asked, nothing done
    assert not calls(steps)
    say(session, "the last two are tools")
    assert [s.label for s in states(project, shown[-2:])] == ["tool", "tool"]
    steps = say(session, "the rest are windmills")  # the ones not decided since they were shown
    assert calls(steps) == [("correct_many", {"item_ids": shown[1:4], "label": "windmill"})]
    assert [s.label for s in states(project, shown)] == ["fish", "windmill", "windmill", "windmill", "tool", "tool"]
    steps = say(session, "undo that")  # the newest action: the rest, as one
    assert [s.status for s in states(project, shown[1:4])] == [Status.PENDING] * 3
    steps = say(session, "not that one")
    assert not calls(steps) and "Which do you mean" in told(steps)
    steps = say(session, f"not {shown[0]}, it's a tool")
    assert calls(steps) == [("correct", {"item_id": shown[0], "label": "tool"})]
    assert project.store.state(shown[0]).label == "tool"
    steps = say(session, "reject the last one")
    assert calls(steps) == [("decide", {"item_ids": [shown[-1]], "action": "reject"})]


def test_references_that_cannot_be_resolved_are_asked_back_and_change_nothing(labelled):
    project, session = labelled
    steps = say(session, "approve them")  # nothing shown yet
    assert not calls(steps) and "have not shown you any images yet" in told(steps)
    shown = shown_ids(say(session, "show me the 5 least certain"))
    for message, reply in [("the 7th is a fish", "only 5 images"), ("that one is a fish", "Which one"),
                           ("the rest are fish", "None of the 5 images shown has been decided")]:
        steps = say(session, message)
        assert not calls(steps) and reply in told(steps), message
    ids = sorted(i.id for i in project.store.items())
    position = next(n for n in range(1, 6) if n not in shown and n in ids)  # an id that is also a position
    steps = say(session, f"#{position} is a fish")
    assert not calls(steps) and f"Do you mean image #{position}, or the" in told(steps)
    assert calls(say(session, f"image {position} is a fish")) == [("correct", {"item_id": position, "label": "fish"})]
    steps = say(session, "approve 99999")
    assert any(isinstance(s, ToolResult) and not s.ok and "99999" in s.text for s in steps)
    assert project.store.status().by_status["confirmed"] == 1  # only the one asked for by id


def test_images_decided_meanwhile_in_another_tab_are_not_decided_again(labelled, tmp_path):
    project, session = labelled
    shown = shown_ids(say(session, "show me the 4 least certain"))
    with Project(tmp_path / "p") as other:  # another tab, another connection
        other.store.decide(shown[1], Action.CORRECT, "windmill", actor="web")
    steps = say(session, "approve them")
    (question,) = [s for s in steps if isinstance(s, NeedsConfirmation)]
    assert f"#{shown[1]} (now windmill)" in question.question and "the other 3" in question.question
    assert project.store.status().by_status["confirmed"] == 1  # nothing more yet
    say(session, "yes")
    assert project.store.state(shown[1]).label == "windmill"  # kept
    assert all(s.status is Status.CONFIRMED for s in states(project, shown))
    steps = say(session, "reject them")  # what this chat decided is its own to change; the other tab's is asked
    (question,) = [s for s in steps if isinstance(s, NeedsConfirmation)]
    assert f"#{shown[1]} (now windmill)" in question.question and "Reject the other 3" in question.question
    say(session, "no")
    assert all(s.status is Status.CONFIRMED for s in states(project, shown))
    with Project(tmp_path / "p") as other:
        for item_id in shown:
            other.store.decide(item_id, Action.CORRECT, "fish" if item_id != shown[1] else "tool", actor="web")
    steps = say(session, "skip them")  # every one was decided elsewhere since: said, nothing done
    assert any(isinstance(s, ErrorStep) and "All 4 of those images were decided" in s.message for s in steps)


def test_misspellings_are_read_when_one_reading_is_nearest_and_asked_otherwise(labelled):
    project, session = labelled
    steps = say(session, "lable them as fish, tool, windmill")  # the README's phrasing, with a typo
    assert calls(steps) == [("set_labels", {"labels": ["fish", "tool", "windmill"]})]
    assert "I read 'lable' as 'label'" in told(steps)
    shown = shown_ids(say(session, "shwo me the 3 least certain"))  # <5 letters: not read
    assert len(shown) == 3
    steps = say(session, "aprove the first two")
    assert calls(steps) == [("decide", {"item_ids": shown[:2], "action": "accept"})]
    assert "'aprove' as 'approve'" in told(steps)
    steps = say(session, "the last is a windmil")
    assert calls(steps) == [("correct", {"item_id": shown[2], "label": "windmill"})]
    assert "'windmil' as 'windmill'" in told(steps)
    say(session, "add the labels cart, card")
    steps = say(session, "the last is a carx")  # as near to cart as to card
    assert not calls(steps) and ("'cart' or 'card'" in told(steps) or "'card' or 'cart'" in told(steps))


def test_the_welcome_says_what_the_project_holds_and_what_to_say(labelled, tmp_path):
    project, session = labelled
    text = session.welcome()
    assert "40 images" in text and "fish, tool, windmill" in text and TINY in text
    assert "show me the 10 least certain" in text
    with Project(tmp_path / "empty") as empty:
        assert "add ~/Pictures/birds" in Session(empty).welcome()


def test_advice_names_what_to_say_in_the_chat_never_a_cli_option(labelled, tmp_path):
    project, session = labelled
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    for audience in ("terminal", "web"):
        session.audience = audience
        steps = say(session, f"export to {tmp_path / 'out'} including suggestions")
        text = told(steps)
        assert "is not empty" in text and "--overwrite" not in text and "replacing the earlier export" in text
    assert "Dashboard" in text  # the browser also names the control to use
    first = tmp_path / "first"
    say(session, f"export to {first} including suggestions")
    steps = say(session, f"export to {first} including suggestions, replacing the earlier export")
    assert calls(steps)[0][1]["replace"] is True and "Exported 40 images" in told(steps)


def _run(tmp_path, script: str, *options) -> subprocess.CompletedProcess:
    (tmp_path / "job.txt").write_text(script)
    return subprocess.run([str(LABELCHAT), "run", "job.txt", "--project", "p", "--model", TINY, *options],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_a_scripted_run_follows_the_conversation_line_by_line(tmp_path, photos_dir):
    setup = _run(tmp_path, f"add {photos_dir / 'fish'}\nlable them as fish, tool\nlabel them\n"
                           "show me the 4 least certain\n", "--session", "s1")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    table = [line for line in setup.stdout.splitlines() if line.strip().startswith(("1 ", "2 ", "3 ", "4 "))]
    assert len(table) == 4 and all(str(photos_dir / "fish") in line for line in table)  # id, label, path
    # the next run, same session: 'them' is what the last run showed
    follow = _run(tmp_path, "approve the first two\nthe rest are tools\nundo that\n", "--session", "s1")
    assert follow.returncode == 0, follow.stdout + follow.stderr
    assert "I read 'lable' as 'label'" in setup.stdout
    with Project(tmp_path / "p") as project:
        counts = project.store.status().by_status
        assert counts["confirmed"] == 2 and counts["pending"] == 18
    other = _run(tmp_path, "approve them\n", "--session", "s2")  # another session showed nothing
    assert other.returncode == 1 and "have not shown you any images yet" in other.stdout
    assert "line 1 (not understood, or something was missing" in other.stderr


def test_the_terminal_chat_prints_each_problem_once_and_no_stray_progress(tmp_path, photos_dir):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    lines = f"add {photos_dir / 'tool'}\nuse the labels fish, tool\nlabel them\nexport to out including suggestions\n"
    chat = subprocess.run([str(LABELCHAT), "chat", "--project", "p", "--model", TINY], input=lines, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert chat.returncode == 0, chat.stdout + chat.stderr
    assert chat.stdout.startswith("labelchat> Project **p**: 0 images")  # the welcome
    assert chat.stdout.count("is not empty") == 1  # the problem, once
    assert "--overwrite" not in chat.stdout
    assert "img [" not in chat.stderr and "img/s" not in chat.stderr  # no progress bar off a terminal


def test_typo_readings_count_swaps_as_one_edit_and_refuse_ties():
    from agent.typos import distance, read

    assert distance("lable", "label") == 1 and distance("lable", "labeled") == 2
    assert read("lable", ["label", "labeled"]).best == "label"
    assert read("windmil", ["windmill", "mill"]).best == "windmill"
    tie = read("carx", ["cart", "card"])
    assert tie.best is None and set(tie.nearest) == {"cart", "card"}
    assert read("dgo", ["dog"]).best is None  # too short to read with confidence
    assert read("elephant", ["dog", "cat"]).best is None
