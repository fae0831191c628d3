"""A conversation with one project: history (kept in the project), confirmations, turns.

`Session.send(text)` yields the steps of one turn. When a tool waits for
confirmation, the next message decides: yes runs it, anything else drops it
(and is then read as a new request). Every brain gets the same treatment.
"""

from __future__ import annotations

import json
import re
from typing import Iterator

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, messages_from_dict, messages_to_dict

import prompts
from index.project import Project

from .brains import RouterChatModel, make_brain
from .loop import PendingCall, execute, run_turn
from .steps import ErrorStep, FinalAnswer, Step
from .tools import AgentContext, build_tools

YES = re.compile(r"^\W*(y|yes|yep|yeah|sure|ok|okay|go( ahead)?|do it|confirm(ed)?|please do|proceed)\W*$", re.I)
NO = re.compile(r"^\W*(n|no|nope|cancel|stop|don'?t|never ?mind)\W*$", re.I)
MAX_MESSAGE = 4000


class Session:
    def __init__(self, project: Project, *, brain: str = "router", yes: bool = False, session_id: str = "default",
                 model: str | None = None, device: str | None = None, **brain_options):
        self.project = project
        self.session_id = session_id
        self.yes = yes
        self.ctx = AgentContext(project, model=model, device=device)
        self.tools = build_tools(self.ctx)
        self.brain_kind = brain
        self.brain = make_brain(brain, labels=project.store.label_set().names, **brain_options)
        self.messages: list[BaseMessage] = [SystemMessage(_system_prompt()), *self._load()]
        self.pending: PendingCall | None = None

    def send(self, text: str) -> Iterator[Step]:
        """One turn: yields steps; the conversation is saved when the turn ends."""
        start = len(self.messages)
        try:
            yield from self._turn(text)
        finally:
            self._save(self.messages[start:])

    def _turn(self, text: str) -> Iterator[Step]:
        text = (text or "").strip()
        if not text:
            yield FinalAnswer("Say what you would like to do, e.g. 'add ~/Pictures' or 'help'.")
            return
        if len(text) > MAX_MESSAGE:
            yield ErrorStep(f"That message is {len(text)} characters long; keep it under {MAX_MESSAGE}.")
            return
        if self.pending is not None:
            pending, self.pending = self.pending, None
            if YES.match(text):
                self.messages.append(HumanMessage(text))
                call = {"name": pending.name, "args": pending.args, "id": "confirmed", "type": "tool_call"}
                steps = list(execute({t.name: t for t in self.tools}, call, self.messages, self.ctx))
                yield from steps
                yield FinalAnswer(steps[-1].text if steps else "Done.")
                return
            if NO.match(text):
                self.messages.append(HumanMessage(text))
                yield FinalAnswer("Cancelled; nothing was changed.")
                return
            # anything else: the waiting action is dropped and the message is a new request
        if isinstance(self.brain, RouterChatModel):
            self.brain.labels = self.project.store.label_set().names
        self.messages.append(HumanMessage(text))
        for step in run_turn(self.brain, self.tools, self.messages, self.ctx, confirm_all=self.yes):
            if isinstance(step, PendingCall):
                self.pending = step
                continue
            yield step

    # -- persistence ------------------------------------------------------------------

    def _save(self, messages: list[BaseMessage]) -> None:
        if messages:
            self.project.store.add_chat_messages(self.session_id, [json.dumps(d) for d in messages_to_dict(messages)])

    def _load(self) -> list[BaseMessage]:
        stored = self.project.store.chat_messages(self.session_id)
        return messages_from_dict([json.loads(s) for s in stored]) if stored else []


def _system_prompt() -> str:
    return prompts.load_yaml("system.yaml")["system"].strip()
