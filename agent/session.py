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

from . import advice
from .brains import RouterChatModel, make_brain
from .conversation import STATE_KEY, ConversationState, context_of
from .loop import PendingCall, execute, run_turn
from .router import ids_in
from .steps import ErrorStep, FinalAnswer, NeedsConfirmation, Step, ToolResult
from .tools import AgentContext, build_tools
from .welcome import welcome

YES = re.compile(r"^\W*(y|yes|yep|yeah|sure|ok|okay|go( ahead)?|do it|confirm(ed)?|please do|proceed)\W*$", re.I)
NO = re.compile(r"^\W*(n|no|nope|cancel|stop|don'?t|never ?mind)\W*$", re.I)
MAX_MESSAGE = 4000


class Session:
    def __init__(self, project: Project, *, brain: str = "router", yes: bool = False, session_id: str = "default",
                 model: str | None = None, device: str | None = None, audience: str = "terminal",
                 actor: str = "chat", workbench=None, **brain_options):
        """`audience`: "web" (the browser app) or "terminal" (`labelchat chat` / `run`): advice in
        messages names what to say or click there, never an option of another command. `actor`:
        who the decisions of this conversation are logged as (the app sets it per turn). `workbench`:
        the tools/workbench.py Workbench to act through (the app shares its own with the review
        panel); without one the conversation opens its own."""
        self.project = project
        self.audience = audience
        self.state = ConversationState()
        self.session_id = session_id
        self.yes = yes
        self.ctx = AgentContext(project, model=model, device=device, conversation=self.state, actor=actor,
                                workbench=workbench)
        self.tools = build_tools(self.ctx)
        self.brain_kind = brain
        self.brain = make_brain(brain, labels=project.store.label_set().names, **brain_options)
        self.messages: list[BaseMessage] = [SystemMessage(_system_prompt()), *self._load()]
        self.ctx.conversation = self.state  # as loaded
        self.pending: PendingCall | None = None

    def welcome(self) -> str:
        """The opening turn: what the project holds and three things to say next."""
        return welcome(self.project, self.ctx.model, self.audience)

    def send(self, text: str) -> Iterator[Step]:
        """One turn: yields steps; the conversation (and what it showed) is saved when it ends."""
        start = len(self.messages)
        try:
            for step in self._turn(text):
                step = advice.for_audience(step, self.audience)
                self._remember(step)
                yield step
        finally:
            self._save(self.messages[start:])

    def _remember(self, step: Step) -> None:
        """What a step showed or did, for the follow-ups ('approve them', 'undo that')."""
        if isinstance(step, NeedsConfirmation) or not isinstance(step, ToolResult) or not step.ok:
            return
        if step.name == "review_batch" and step.artifact is not None:
            ids = [card.item.id for card in step.artifact]
            what = "the batch to review"
        elif step.name == "similar" and step.artifact is not None:
            ids = [n.item_id for n in step.artifact]
            what = "the most similar images"
        elif step.name in ("decide", "correct", "correct_many", "accept_above", "undo"):
            artifact = step.artifact if isinstance(step.artifact, list) else [step.artifact]
            self.state.did(step.text, [d.item_id for d in artifact if hasattr(d, "item_id")], self.project.store)
            return
        else:
            return
        if ids:
            self.state.show(ids, what, self.project.store)

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
        self.state.give(ids_in(text))  # what the person names is given to the brain
        if isinstance(self.brain, RouterChatModel):
            self.brain.labels = self.project.store.label_set().names
            self.brain.context = context_of(self.state, self.project.store)
        else:
            self.brain.state_text = self.state.describe()
        self.messages.append(HumanMessage(text))
        for step in run_turn(self.brain, self.tools, self.messages, self.ctx, confirm_all=self.yes):
            if isinstance(step, PendingCall):
                self.pending = step
                continue
            yield step

    # -- persistence ------------------------------------------------------------------

    def _save(self, messages: list[BaseMessage]) -> None:
        records = [json.dumps(_without_artifact(d)) for d in messages_to_dict(messages)]
        self.project.store.add_chat_messages(self.session_id, records + [self.state.to_record()])

    def _load(self) -> list[BaseMessage]:
        """The stored messages; the newest state record gives what was shown and done."""
        records = [json.loads(s) for s in self.project.store.chat_messages(self.session_id)]
        for record in records:
            if STATE_KEY in record:
                self.state = ConversationState.from_record(record[STATE_KEY])
        return messages_from_dict([r for r in records if STATE_KEY not in r])


def _without_artifact(record: dict) -> dict:
    """A tool message's typed artifact is for the UI of this turn; the text is what is kept."""
    data = record.get("data", {})
    return {**record, "data": {k: v for k, v in data.items() if k != "artifact"}} if "artifact" in data else record


def _system_prompt() -> str:
    return prompts.load_yaml("system.yaml")["system"].strip()
