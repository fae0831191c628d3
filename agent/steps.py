"""Typed steps that one conversation turn yields; the CLI and the Gradio app only render them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AssistantText:
    """What the model says on the way (before or between tool calls)."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    call_id: str
    name: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    call_id: str
    done: int
    total: int
    what: str = ""


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    name: str
    text: str  # the short text the model sees
    artifact: Any = None  # the typed result, for the UI
    ok: bool = True


@dataclass(frozen=True)
class NeedsConfirmation:
    """An expensive or destructive action waits for the person's yes."""

    name: str
    args: dict
    question: str


@dataclass(frozen=True)
class ErrorStep:
    """Something went wrong that the person should know about; the session goes on."""

    message: str


@dataclass(frozen=True)
class FinalAnswer:
    text: str


Step = AssistantText | ToolCallStarted | Progress | ToolResult | NeedsConfirmation | ErrorStep | FinalAnswer
