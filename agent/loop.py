"""The tool-calling loop: model -> tool calls -> tool results -> model, until it answers.

It yields typed steps as they happen. A tool runs in a worker thread so its
progress can be yielded while it works; a mistake of the model (an unknown
tool, bad arguments) or a tool error (LabelchatError) becomes an error
observation the model sees and a step the person sees. A step limit and a
time limit stop runaway loops.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from typing import Iterator

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from index.errors import LabelchatError

from . import guard
from .brains import BrainError
from .steps import AssistantText, ErrorStep, FinalAnswer, NeedsConfirmation, Progress, Step, ToolCallStarted, ToolResult
from .tools import NEEDS_CONFIRMATION, AgentContext, confirmation_question

MAX_STEPS = 8
TIME_LIMIT_S = 1800.0


class PendingCall:
    """A tool call that waits for the person's confirmation."""

    def __init__(self, name: str, args: dict):
        self.name, self.args = name, args


def run_turn(
    model,
    tools: list,
    messages: list[BaseMessage],
    ctx: AgentContext,
    *,
    confirm_all: bool = False,
    max_steps: int = MAX_STEPS,
    time_limit_s: float = TIME_LIMIT_S,
) -> Iterator[Step | PendingCall]:
    """Run one turn; `messages` gains every message of the turn."""
    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    started = time.monotonic()
    for _ in range(max_steps):
        try:
            ai = bound.invoke(messages)
        except BrainError as exc:
            yield ErrorStep(str(exc))
            return
        messages.append(ai)
        calls = list(ai.tool_calls)
        invalid = list(getattr(ai, "invalid_tool_calls", []) or [])
        if not calls and not invalid:
            yield FinalAnswer(_text(ai) or "Done.")
            return
        if _text(ai):
            yield AssistantText(_text(ai))
        for bad in invalid:
            note = f"The call of {bad.get('name')!r} had arguments that are not valid JSON: {bad.get('error') or bad.get('args')}"
            messages.append(ToolMessage(note, tool_call_id=bad.get("id") or "invalid", status="error"))
            yield ErrorStep(note)
        for call in calls:
            verdict = guard.check(ctx, call["name"], call["args"])
            if verdict is not None and verdict.error:
                messages.append(ToolMessage(f"Error: {verdict.error}", tool_call_id=call["id"], status="error"))
                yield ErrorStep(verdict.error)
                continue
            if verdict is not None and verdict.question and confirm_all:
                yield AssistantText(verdict.question.rsplit("?", 1)[0].rsplit(". ", 1)[0] + "; acting on the others.")
                call = {**call, "args": verdict.args}
            elif verdict is not None and verdict.question:
                messages.append(ToolMessage(f"Waiting for the person to confirm: {verdict.question}",
                                            tool_call_id=call["id"]))
                yield NeedsConfirmation(call["name"], verdict.args, verdict.question)
                yield PendingCall(call["name"], verdict.args)
                return
            if call["name"] in NEEDS_CONFIRMATION and not confirm_all:
                try:
                    question = confirmation_question(ctx, call["name"], call["args"])
                except LabelchatError as exc:
                    messages.append(ToolMessage(str(exc), tool_call_id=call["id"], status="error"))
                    yield ErrorStep(str(exc))
                    continue
                if question is not None:
                    messages.append(ToolMessage(f"Waiting for the person to confirm: {question}",
                                                tool_call_id=call["id"]))
                    yield NeedsConfirmation(call["name"], call["args"], question)
                    yield PendingCall(call["name"], call["args"])
                    return
            yield from execute(by_name, call, messages, ctx)
        if time.monotonic() - started > time_limit_s:
            yield ErrorStep(f"Stopped: this turn ran over {time_limit_s:.0f} s. Ask again to go on.")
            return
    yield ErrorStep(f"Stopped after {max_steps} steps without an answer. Try a simpler request.")


def execute(by_name: dict, call: dict, messages: list[BaseMessage], ctx: AgentContext) -> Iterator[Step]:
    """Run one tool call in a worker thread, yielding its progress, then its result."""
    call_id = call.get("id") or f"call-{len(messages)}"
    yield ToolCallStarted(call_id, call["name"], dict(call["args"]))
    tool = by_name.get(call["name"])
    if tool is None:
        note = f"There is no tool {call['name']!r}. Tools: {', '.join(by_name)}."
        messages.append(ToolMessage(note, tool_call_id=call_id, status="error"))
        yield ToolResult(call_id, call["name"], note, ok=False)
        return
    updates: queue.Queue = queue.Queue()
    outcome: dict = {}
    ctx.progress = lambda done, total, what: updates.put(Progress(call_id, done, total, what))

    def work() -> None:
        try:
            outcome["message"] = tool.invoke({**call, "id": call_id, "type": "tool_call"})
        except LabelchatError as exc:
            outcome["error"] = str(exc)
        except Exception as exc:  # bad arguments from the model, or a bug: never a crash of the session
            outcome["error"] = _describe(exc)
        finally:
            updates.put(None)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    while (update := updates.get()) is not None:
        yield update
    worker.join()
    if "error" in outcome:
        messages.append(ToolMessage(f"Error: {outcome['error']}", tool_call_id=call_id, status="error"))
        yield ToolResult(call_id, call["name"], outcome["error"], ok=False)
        return
    message: ToolMessage = outcome["message"]
    messages.append(message)
    yield ToolResult(call_id, call["name"], str(message.content), getattr(message, "artifact", None))


def _describe(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return f"bad arguments: {problems}"
    traceback.print_exc()
    return f"an internal error in labelchat ({type(exc).__name__}: {exc}); please report it"


def _text(message: AIMessage) -> str:
    content = message.content
    if isinstance(content, list):
        content = " ".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return (content or "").strip()
