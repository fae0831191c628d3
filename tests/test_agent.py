"""The agent: conversations through the router on real photos, confirmations, scripted runs,
and the OpenAI-compatible brain against a local server that speaks the real protocol."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.session import Session
from agent.steps import ErrorStep, FinalAnswer, NeedsConfirmation, ToolCallStarted, ToolResult
from index.project import Project
from index.types import Label, Status

TINY = "openclip:tiny/random"
LABELCHAT = Path(sys.executable).parent / "labelchat"
ROOT = Path(__file__).resolve().parents[1]


def say(session: Session, text: str) -> list:
    return list(session.send(text))


def answer(steps) -> str:
    return next(s.text for s in reversed(steps) if isinstance(s, FinalAnswer))


def calls(steps) -> list[tuple[str, dict]]:
    return [(s.name, s.args) for s in steps if isinstance(s, ToolCallStarted)]


def test_a_whole_conversation_through_the_router(tmp_path, photos_dir):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        steps = say(session, f"add {photos_dir}")
        assert calls(steps) == [("add_images", {"sources": [str(photos_dir)]})]
        assert project.store.item_count() == 94
        say(session, "use the labels fish, mammal, monument, tool; windmill")
        assert project.store.label_set().names == ["fish", "mammal", "monument", "tool", "windmill"]
        say(session, "add a label called bridge")
        assert "bridge" in project.store.label_set().names
        steps = say(session, "label them")
        assert calls(steps) == [("suggest_labels", {})] and "Suggested labels for 94 images" in answer(steps)
        steps = say(session, "show me the 5 least certain")
        cards = next(s.artifact for s in steps if isinstance(s, ToolResult))
        assert len(cards) == 5
        first, second, third = (c.item.id for c in cards[:3])
        say(session, f"approve {first}")
        say(session, f"reject #{second}")
        say(session, f"{third} is a windmill")
        assert project.store.state(first).status is Status.CONFIRMED
        assert project.store.state(second).status is Status.REJECTED
        assert project.store.state(third).label == "windmill"
        steps = say(session, "undo")
        assert calls(steps) == [("undo", {})] and project.store.state(third).status is Status.PENDING
        steps = say(session, f"what's similar to item {first}?")
        assert calls(steps) == [("similar", {"item_id": first})] and "Most similar" in answer(steps)
        steps = say(session, "find pictures of a red windmill")
        assert calls(steps) == [("similar", {"text": "red windmill"})]
        steps = say(session, "how far are we?")
        assert "94 images" in answer(steps)
        out = tmp_path / "out"
        steps = say(session, f"export to {out} as jsonl")
        assert (out / "labels.jsonl").exists() and "Exported 1 image as" in answer(steps)


def test_bulk_actions_wait_for_a_yes(tmp_path, photos_dir):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        say(session, f"add {photos_dir / 'fish'}")
        say(session, "use the labels fish, tool")
        say(session, "label them")  # the tiny random model calls everything "tool"
        steps = say(session, "approve all tools above 1%")
        (question,) = [s for s in steps if isinstance(s, NeedsConfirmation)]
        assert "This will accept" in question.question and project.store.status().by_status["confirmed"] == 0
        steps = say(session, "no")
        assert answer(steps) == "Cancelled; nothing was changed." and project.store.status().by_status["confirmed"] == 0
        say(session, "approve all tools above 1%")
        steps = say(session, "yes")
        accepted = project.store.status().by_status["confirmed"]
        assert accepted > 0 and f"Accepted {accepted} images" in answer(steps)
        decision = project.store.decisions()[-1]
        assert decision.auto and decision.actor.startswith("chat")
        steps = say(session, "undo")  # the whole bulk action, not its last image
        assert f"Undid the bulk action's {accepted} decisions" in answer(steps)
        assert project.store.status().by_status["confirmed"] == 0


def test_a_new_label_set_that_leaves_out_confirmed_labels_waits_for_a_yes(tmp_path, photos_dir):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        say(session, f"add {photos_dir / 'fish'}")
        say(session, "use the labels fish, tool")  # nothing confirmed yet: no question
        assert project.store.label_set().names == ["fish", "tool"]
        say(session, f"{project.store.items()[0].id} is a fish")
        steps = say(session, "label them as cat, dog")
        (question,) = [s for s in steps if isinstance(s, NeedsConfirmation)]
        assert "leave out fish (1)" in question.question and project.store.label_set().names == ["fish", "tool"]
        steps = say(session, "no")
        assert project.store.label_set().names == ["fish", "tool"]
        steps = say(session, "add the labels cat, dog")
        assert calls(steps) == [("add_labels", {"labels": ["cat", "dog"]})]
        assert project.store.label_set().names == ["fish", "tool", "cat", "dog"]
        say(session, "use the labels cat, dog")
        say(session, "yes")
        assert project.store.label_set().names == ["cat", "dog"]


def test_adding_names_each_file_it_skipped_and_why(tmp_path, photos_dir):
    upload = tmp_path / "gradio" / "3f2a9c" / "notes.txt"  # where the browser's uploads land
    upload.parent.mkdir(parents=True)
    upload.write_text("call Ana\n")
    with Project(tmp_path / "p") as project:
        steps = say(Session(project, model=TINY), f"add {photos_dir / 'tool'} {upload}")
        text = answer(steps)
        assert "Added 20 images" in text and "skipped 1 (not a URL 1): notes.txt: has no http(s) URL" in text
        assert str(upload.parent) not in text


def test_a_new_version_less_accurate_than_zero_shot_is_named_as_such():
    from agent.tools import worse_than_zero_shot

    warning = worse_than_zero_shot({"accuracy": 0.938, "zero_shot_accuracy": 1.0})
    assert "less accurate than zero-shot (94% against 100%)" in warning and "go back to zero-shot" in warning
    assert worse_than_zero_shot({"accuracy": 0.9, "zero_shot_accuracy": 0.8}) == ""
    assert worse_than_zero_shot({"accuracy": None, "zero_shot_accuracy": 0.8}) == ""


def test_a_list_of_images_is_decided_all_or_none_and_one_undo_takes_it_back(tmp_path, photos_dir):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        say(session, f"add {photos_dir / 'tool'}")
        say(session, "use the labels fish, tool")
        first, second, third, fourth = (item.id for item in project.store.items()[:4])
        say(session, f"approve {first}-{third}")
        assert [project.store.state(i).status for i in (first, second, third)] == [Status.CONFIRMED] * 3
        assert {d.actor for d in project.store.decisions()} == {"chat"}
        steps = say(session, "undo")
        assert "Undid the bulk action's 3 decisions" in answer(steps)
        assert [project.store.state(i).status for i in (first, second, third)] == [Status.PENDING] * 3
        say(session, f"{second} is a fish")
        steps = say(session, f"approve {first} {second} {fourth}")  # #2 is confirmed already: nothing changes
        assert "already confirmed as 'fish'" in answer(steps)
        assert [project.store.state(i).status for i in (first, fourth)] == [Status.PENDING] * 2


def test_with_yes_nothing_waits(tmp_path, photos_dir):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY, yes=True)
        say(session, f"add {photos_dir / 'tool'}")
        say(session, "use the labels fish, tool")
        steps = say(session, "accept everything above 1%")
        assert not [s for s in steps if isinstance(s, NeedsConfirmation)]
        assert project.store.status().by_status["confirmed"] == 20


@pytest.mark.parametrize(
    "message, expected",
    [
        ("", "Say what you would like to do"),
        ("approve above 1.5", "between 0 and 1"),
        ("export the dataset please", "Where should I export to?"),
        ("crawl", "Which site should I crawl?"),
        ("¿puedes etiquetar mis fotos?", "I did not understand"),
        ("label them as", "Which labels?"),
        ("x" * 5000, "keep it under 4000"),
    ],
)
def test_unclear_messages_get_a_clear_answer_and_change_nothing(tmp_path, message, expected):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        steps = say(session, message)
        text = " ".join(getattr(s, "text", "") or getattr(s, "message", "") for s in steps)
        assert expected in text
        assert not calls(steps) and project.store.item_count() == 0


def test_tool_errors_become_messages_and_the_session_goes_on(tmp_path):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        steps = say(session, "use the labels con, dog")
        (failed,) = [s for s in steps if isinstance(s, ToolResult)]
        assert not failed.ok and "cannot be used" in failed.text
        steps = say(session, "approve 999")
        assert any(isinstance(s, ToolResult) and not s.ok for s in steps)
        assert "status" in [name for name, _ in calls(say(session, "status"))]


def test_the_conversation_is_kept_with_the_project(tmp_path, photos_dir):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        say(session, "use the labels fish, tool")
        say(session, "status")
        kept = len(session.messages)
    with Project(tmp_path / "p") as project:
        again = Session(project, model=TINY)
        assert len(again.messages) == kept
        assert any("fish" in str(m.content) for m in again.messages)


SCRIPT = ROOT / "examples" / "prelabel.txt"


def test_the_readme_sample_script_prelabels_the_demo_photos(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    result = subprocess.run(
        [str(LABELCHAT), "run", "examples/prelabel.txt", "--project", "demo", "--yes"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Added 94 images" in result.stdout and "Suggested labels for 94 images" in result.stdout
    assert "Exported" in result.stdout
    rows = [json.loads(line) for line in (tmp_path / "prelabels" / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 94 and {r["status"] for r in rows} == {"confirmed", "suggested"}
    assert SCRIPT.read_text().strip() in (ROOT / "README.md").read_text()  # the README shows this script


def test_scripts_that_cannot_be_read_or_fail_say_so(tmp_path):
    missing = subprocess.run([str(LABELCHAT), "run", "nope.txt", "--project", "p"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    (tmp_path / "latin1.txt").write_bytes("status\nétat\n".encode("latin-1"))
    latin = subprocess.run([str(LABELCHAT), "run", "latin1.txt", "--project", "p"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert latin.returncode == 1 and "not UTF-8" in latin.stderr
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    (tmp_path / "job.txt").write_text("# a comment\n\nstatus\nuse the labels a, b\nexport to out\n")
    failing = subprocess.run([str(LABELCHAT), "run", "job.txt", "--project", "p", "--json"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert failing.returncode == 1 and "line 5" in failing.stderr
    steps = [json.loads(line) for line in failing.stdout.splitlines()]
    assert {"ToolCallStarted", "FinalAnswer"} <= {s["type"] for s in steps}


# -- the OpenAI-compatible brain -----------------------------------------------------------


class FakeLLM:
    """A local server speaking OpenAI's /v1/chat/completions, answering from a script."""

    def __init__(self, replies: list):
        self.replies = list(replies)
        self.requests: list[dict] = []
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                llm.requests.append(body)
                status, reply = llm.replies.pop(0)
                data = json.dumps(reply).encode() if not isinstance(reply, bytes) else reply
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def completion(content=None, tool_calls=None):
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(tool_calls)
        ]
    return 200, {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}


def test_openai_brain_calls_tools_over_the_real_protocol(tmp_path):
    llm = FakeLLM([
        completion(tool_calls=[("set_labels", json.dumps({"labels": ["cat", "dog"]}))]),
        completion("The labels are cat and dog."),
        completion(tool_calls=[("status", "{not json")]),  # a malformed tool call
        completion("Sorry, here is the status."),
        (500, {"error": {"message": "overloaded"}}),
        completion("Back again."),
    ])
    try:
        with Project(tmp_path / "p") as project:
            session = Session(project, brain="openai", base_url=llm.url, llm_model="test-model")
            steps = say(session, "labels: cat and dog")
            assert project.store.label_set().names == ["cat", "dog"]
            assert answer(steps) == "The labels are cat and dog."
            first = llm.requests[0]
            assert first["model"] == "test-model"
            assert "set_labels" in {t["function"]["name"] for t in first["tools"]}
            assert first["messages"][0]["role"] == "system"
            tool_message = llm.requests[1]["messages"][-1]
            assert tool_message["role"] == "tool" and "cat, dog" in tool_message["content"]

            steps = say(session, "status?")
            errors = [s for s in steps if isinstance(s, ErrorStep)]
            assert errors and "not valid JSON" in errors[0].message
            assert llm.requests[3]["messages"][-1]["role"] == "tool"  # the model saw its mistake
            assert answer(steps) == "Sorry, here is the status."

            steps = say(session, "hello?")
            assert [s.message for s in steps if isinstance(s, ErrorStep)][0].startswith("The chat model at")
            assert "HTTP 500" in steps[-1].message
            assert answer(say(session, "still there?")) == "Back again."
    finally:
        llm.close()


def test_openai_brain_that_is_down_gives_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Project(tmp_path / "p") as project:
        session = Session(project, brain="openai", base_url=f"http://127.0.0.1:{port}/v1", llm_model="m")
        steps = say(session, "status")
        assert isinstance(steps[-1], ErrorStep) and "Cannot reach the chat model" in steps[-1].message


def test_crawling_from_the_chat_asks_first_and_refuses_private_addresses(tmp_path, http_server):
    start = http_server.add("index.html", b"<html><body><img src='/files/x.jpg'></body></html>")
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        steps = say(session, f"crawl {start} two levels deep, at most 30 images")
        (question,) = [s for s in steps if isinstance(s, NeedsConfirmation)]
        assert question.args == {"urls": [start], "depth": 2, "max_images": 30} and "up to" in question.question
        steps = say(session, "yes")
        assert "refused address 1" in answer(steps)  # 127.0.0.1 is refused unless allowed
        assert http_server.hits == {}


# -- the router never acts on what it cannot represent -------------------------------------


def _labelled_fish(tmp_path, photos_dir, **options):
    """A session (actions run at once unless told otherwise) on the 20 fish photos, suggested."""
    project = Project(tmp_path / "p")
    session = Session(project, model=TINY, **{"yes": True, **options})
    say(session, f"add {photos_dir / 'fish'}")
    say(session, "use the labels fish, tool")
    say(session, "label them")
    return project, session


def _confirmed(project) -> int:
    return project.store.status().by_status.get("confirmed", 0)


def test_negations_and_exceptions_are_never_acted_on(tmp_path, photos_dir):
    project, session = _labelled_fish(tmp_path, photos_dir)
    with project:
        first = project.store.items()[0].id
        for message in ["don't approve anything above 0.5", "accept everything above 0.3 except tools",
                        "never accept anything over 1%", "approve all above 1% but not the fish",
                        "approve everything above 0.01 other than tools", "do not approve 1 2 3",
                        f"approve {first} without {first + 1}", f"{first} is a fish, not {first + 1}"]:
            steps = say(session, message)
            assert not calls(steps), message
            assert "nothing was changed" in answer(steps).lower(), message
        assert "one label above a threshold" in answer(say(session, "don't approve anything above 0.5"))
        assert _confirmed(project) == 0 and not project.store.decisions()
        steps = say(session, f"{first} is not a fish")  # exactly a rejection of that label
        assert calls(steps) == [("decide", {"item_ids": [first], "action": "reject", "label": "fish"})]
        assert project.store.state(first).status is Status.REJECTED
        steps = say(session, f"no, {first} should be fish")  # a leading "no," answers the last reply
        assert calls(steps) == [("correct", {"item_id": first, "label": "fish"})]
        assert project.store.state(first).label == "fish"


@pytest.mark.parametrize("message, labels, tool, args", [
    ("undo, I didn't mean that", [], "undo", {}),  # undo takes back the newest action, as asked
    ("oops, that was not right", [], "undo", {}),
    ("export to ~/out without suggestions", [], "export_dataset", {"out_dir": "~/out", "include": "confirmed"}),
    ("use the labels defect, no defect", [], "set_labels", {"labels": ["defect", "no defect"]}),
    ("use the labels hotdog, not hotdog", [], "set_labels", {"labels": ["hotdog", "not hotdog"]}),
    ("use the labels cat, dog, none", [], "set_labels", {"labels": ["cat", "dog", "none"]}),
    ("approve all no defect above 0.9", ["defect", "no defect"], "accept_above", {"min_prob": 0.9, "label": "no defect"}),
    ("12 is no defect", ["defect", "no defect"], "correct", {"item_id": 12, "label": "no defect"}),
    ("12 is not a defect", ["defect", "no defect"], "decide", {"item_ids": [12], "action": "reject", "label": "defect"}),
    ("use the labels cat and dog but not bird", [], None, None),  # an exclusion it cannot represent
])
def test_negation_words_inside_label_names_and_undo_are_not_refused(message, labels, tool, args):
    from agent.router import route

    routed = route(message, labels)
    assert (routed.tool, routed.args if tool else None) == (tool, args), routed.reply


def test_item_ranges_expand_and_mixed_requests_ask_back(tmp_path, photos_dir):
    project, session = _labelled_fish(tmp_path, photos_dir)
    with project:
        ids = sorted(item.id for item in project.store.items())
        a, b, c, d = ids[:4]
        assert [a, b, c, d] == list(range(a, a + 4))
        steps = say(session, f"approve {a}-{d}")
        assert calls(steps) == [("decide", {"item_ids": [a, b, c, d], "action": "accept"})]
        assert _confirmed(project) == 4
        steps = say(session, f"reject items {ids[4]} to {ids[6]}")
        assert calls(steps)[0][1]["item_ids"] == ids[4:7]
        steps = say(session, "approve 1-100000")
        assert not calls(steps) and "at most 500" in answer(steps)
        before = len(project.store.decisions())
        for message in [f"accept {ids[8]} but reject {ids[9]}", f"approve {ids[8]}, {ids[9]} is a tool",
                        f"{ids[8]} is a fish, {ids[9]} is a tool", "approve everything above 0.01 and skip the rest"]:
            steps = say(session, message)
            assert not calls(steps), message
        assert f"'{ids[8]} is a fish', then '{ids[9]} is a tool'" in answer(
            say(session, f"{ids[8]} is a fish, {ids[9]} is a tool"))
        steps = say(session, "undo the last 3")
        assert not calls(steps) and "one action at a time" in answer(steps) and "3 times" in answer(steps)
        assert len(project.store.decisions()) == before


def test_quoted_and_existing_paths_with_spaces_stay_whole(tmp_path, photos_dir):
    photos = sorted((photos_dir / "fish").iterdir())
    folder = tmp_path / "x y"
    folder.mkdir()
    names = ["weird name ünïcode.png", "it's mine.jpg", "plain two.jpg"]
    for photo, name in zip(photos, names):
        shutil.copy(photo, folder / name)
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        for message, path in [(f'add "{folder / names[0]}"', folder / names[0]),
                              (f"add '{folder / names[0]}' please", folder / names[0]),
                              (f'add "{folder / names[1]}"', folder / names[1]),
                              (f"add {folder / names[2]}", folder / names[2])]:  # unquoted, but on disk
            assert calls(say(session, message)) == [("add_images", {"sources": [str(path)]})], message
        assert project.store.item_count() == 3


def test_an_export_format_it_does_not_know_is_asked_about(tmp_path):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        for message in ["export to agentout3 as parquet", "export to out in yolo format", "export to parquet"]:
            steps = say(session, message)
            assert not calls(steps), message
            assert "imagefolder, csv, jsonl, coco or hf" in answer(steps), message
        assert calls(say(session, "export to out as csv"))[0][1] == {"out_dir": "out", "format": "csv"}
        assert calls(say(session, f'export to "{tmp_path / "my out"}"'))[0][1] == {"out_dir": str(tmp_path / "my out")}


def test_show_item_n_is_not_a_batch_of_n(tmp_path):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        for message in ["show me item 5", "show #5", "can I see image 5?"]:
            steps = say(session, message)
            assert not calls(steps) and "similar to item 5" in answer(steps), message
        assert calls(say(session, "show me 5")) == [("review_batch", {"size": 5})]


def test_thanks_and_unknown_messages_get_short_answers_and_help_is_a_list(tmp_path):
    with Project(tmp_path / "p") as project:
        session = Session(project, model=TINY)
        thanks = answer(say(session, "thank you!"))
        assert "welcome" in thanks and "Things you can say" not in thanks
        unknown = answer(say(session, "frobnicate the widgets"))
        assert "I did not understand" in unknown and "help" in unknown and "Things you can say" not in unknown
        assert "nearest thing I know: `show me 10 random ones`" in answer(say(session, "reveal 10 random ones"))
        lines = answer(say(session, "help")).splitlines()
        assert lines[0].endswith("Things you can say:")
        examples = [line for line in lines[1:] if line.strip()]
        assert all(line.startswith("- `") for line in examples) and len(examples) >= 15
        assert not any("skip 9" in line and "12 is a windmill" in line for line in lines)


class StreamingLLM:
    """A local server speaking OpenAI's streamed /v1/chat/completions (server-sent events of
    chat.completion.chunk), answering each request from a script of actions:
    ("stream", [delta, ...]) streams those deltas then [DONE]; ("hang", seconds) sends nothing;
    ("garbage", bytes) answers 200 with that body; ("cut", [delta, ...]) streams and drops the
    connection without [DONE]."""

    def __init__(self, script: list):
        import time

        self.script = list(script)
        self.requests: list[dict] = []
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                llm.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                kind, value = llm.script.pop(0)
                if kind == "hang":
                    time.sleep(value)
                    return
                if kind == "garbage":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(value)))
                    self.end_headers()
                    self.wfile.write(value)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for delta in value:
                    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                if kind == "stream":
                    self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def call_deltas(name: str, arguments: str, call_id: str = "call_1") -> list[dict]:
    """A tool call streamed in fragments, as OpenAI sends it (the name once, the arguments in pieces)."""
    pieces = [arguments[i:i + 7] for i in range(0, len(arguments), 7)] or [""]
    first = {"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                             "function": {"name": name, "arguments": pieces[0]}}]}
    return [{"role": "assistant", "content": None}, first] + [
        {"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in pieces[1:]]


def text_deltas(text: str) -> list[dict]:
    return [{"role": "assistant"}] + [{"content": text[i:i + 5]} for i in range(0, len(text), 5)]


def test_streamed_llm_calls_run_and_its_mistakes_become_errors_it_sees(tmp_path, photos_dir):
    llm = StreamingLLM([
        ("stream", call_deltas("review_batch", json.dumps({"strategy": "uncertain", "size": 3}))),
        ("stream", text_deltas("Here are 3 images.")),
        ("stream", call_deltas("decide", json.dumps({"item_ids": [987654], "action": "accept"}))),  # not given
        ("stream", text_deltas("Sorry.")),
        ("stream", call_deltas("decide", json.dumps({"item_ids": "all of them", "action": 7}))),  # wrong types
        ("stream", text_deltas("Sorry again.")),
        ("stream", call_deltas("delete_everything", "{}")),  # a made-up tool
        ("stream", text_deltas("No such tool.")),
        ("stream", call_deltas("decide", json.dumps({"item_ids": [], "action": "reject"}))),  # no images at all
        ("stream", text_deltas("None, then.")),
        ("stream", call_deltas("decide", '{"item_ids": [1, 2')),  # cut-off JSON
        ("stream", text_deltas("Oops.")),
    ])
    try:
        with Project(tmp_path / "p") as project:
            session = Session(project, brain="openai", base_url=llm.url, llm_model="m", model=TINY)
            say(Session(project, model=TINY), f"add {photos_dir / 'fish'}")
            project.store.set_labels([Label("fish"), Label("tool")])
            steps = say(session, "show me three")
            assert calls(steps) == [("review_batch", {"strategy": "uncertain", "size": 3})]
            shown = [c.item.id for c in next(s for s in steps if isinstance(s, ToolResult)).artifact]
            assert answer(steps) == "Here are 3 images."
            assert llm.requests[0]["stream"] is True and "review_batch" in {t["function"]["name"] for t in llm.requests[0]["tools"]}
            state_note = llm.requests[1]["messages"][1]
            assert state_note["role"] == "system" and "Nothing has been shown" in state_note["content"]
            steps = say(session, "approve the good one")
            assert "Last shown to the person" in llm.requests[2]["messages"][1]["content"]
            assert f"1. #{shown[0]}" in llm.requests[2]["messages"][1]["content"]  # the state, in order
            assert any(isinstance(s, ErrorStep) and "#987654" in s.message and "not shown" in s.message for s in steps)
            assert "not shown" in llm.requests[3]["messages"][-1]["content"]  # the model saw why
            steps = say(session, "approve them")
            failed = [s for s in steps if isinstance(s, ToolResult) and not s.ok]
            assert failed and "bad arguments" in failed[0].text
            steps = say(session, "tidy up")
            failed = [s for s in steps if isinstance(s, ToolResult) and not s.ok]
            assert failed and "There is no tool 'delete_everything'" in failed[0].text
            steps = say(session, "reject the bad ones")
            assert any(isinstance(s, ErrorStep) and "called with no images; nothing was changed" in s.message
                       for s in steps)
            asked = [m for m in llm.requests[-1]["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
            assert asked and all(m["content"] == "" for m in asked)  # a string: llama.cpp refuses null
            steps = say(session, "approve 1 and 2")
            assert any(isinstance(s, ErrorStep) and "not valid JSON" in s.message for s in steps)
            assert project.store.status().by_status["confirmed"] == 0  # nothing decided by mistake
    finally:
        llm.close()


def test_an_llm_that_hangs_answers_garbage_or_drops_the_stream_is_a_clear_message(tmp_path):
    llm = StreamingLLM([
        ("hang", 3),
        ("garbage", b"<html>502 Bad Gateway</html>"),
        ("cut", []),
        ("stream", text_deltas("Fine now.")),
    ])
    try:
        with Project(tmp_path / "p") as project:
            session = Session(project, brain="openai", base_url=llm.url, llm_model="m", timeout_s=1)
            steps = say(session, "status")
            assert isinstance(steps[-1], ErrorStep) and "did not answer within 1 s" in steps[-1].message
            steps = say(session, "status")
            assert isinstance(steps[-1], ErrorStep) and "not a chat completion" in steps[-1].message
            steps = say(session, "status")
            assert isinstance(steps[-1], ErrorStep) and "closed the stream without an answer" in steps[-1].message
            assert answer(say(session, "status")) == "Fine now."  # the session goes on
    finally:
        llm.close()
