"""What the conversation last showed and did, so that 'approve them' or 'the first is a bird'
can be resolved against it. Kept with the session in the project (as one JSON record after
each turn), so a scripted run (`labelchat run --session NAME`) keeps it from line to line."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

MAX_GIVEN = 5000  # the most ids remembered as given to the brain (shown or typed)
STATE_KEY = "labelchat_state"


@dataclass(frozen=True)
class Shown:
    """An ordered set of images the conversation showed, and how each stood then."""

    ids: tuple[int, ...]
    what: str  # e.g. "the batch to review"
    seen: tuple[str, ...]  # each image's "status:label" when shown: one that differs now was decided since


@dataclass
class ConversationState:
    shown: Shown | None = None
    last_action: str = ""  # what the newest tool that changed something did, in words
    last_items: tuple[int, ...] = ()  # the items it acted on
    given: list[int] = field(default_factory=list)  # ids shown to, or typed by, the person
    left: dict[int, str] = field(default_factory=dict)  # how this conversation last left each shown image

    def show(self, ids: list[int], what: str, store) -> None:
        self.shown = Shown(tuple(ids), what, tuple(_standing(store, i) for i in ids))
        self.left = dict(zip(self.shown.ids, self.shown.seen))
        self.give(ids)

    def give(self, ids) -> None:
        known = set(self.given)
        self.given.extend(i for i in ids if i not in known)
        del self.given[:-MAX_GIVEN]

    def did(self, text: str, items, store) -> None:
        self.last_action, self.last_items = text, tuple(items)
        for i in items:
            if i in self.left:
                self.left[i] = _standing(store, i)

    def to_record(self) -> str:
        return json.dumps({STATE_KEY: asdict(self)})

    @classmethod
    def from_record(cls, data: dict) -> "ConversationState":
        shown = data.get("shown")
        return cls(shown=Shown(tuple(shown["ids"]), shown["what"], tuple(shown["seen"])) if shown else None,
                   last_action=data.get("last_action", ""), last_items=tuple(data.get("last_items", ())),
                   given=list(data.get("given", [])),
                   left={int(k): v for k, v in data.get("left", {}).items()})

    def describe(self) -> str:
        """The state in words, for an LLM brain (the router reads it as data)."""
        lines = []
        if self.shown:
            listed = ", ".join(f"{n}. #{i}" for n, i in enumerate(self.shown.ids, start=1))
            lines.append(f"Last shown to the person ({self.shown.what}), in order: {listed}.")
        else:
            lines.append("Nothing has been shown to the person yet.")
        if self.last_action:
            lines.append(f"The last action: {self.last_action}.")
        return " ".join(lines)


@dataclass(frozen=True)
class Context:
    """What the router resolves references against: the shown set, in order, and which of its
    items are still as they were when shown (not decided since, here or in another tab)."""

    shown: tuple[int, ...] = ()
    unchanged: tuple[int, ...] = ()
    what: str = ""
    last_items: tuple[int, ...] = ()


def _standing(store, item_id: int) -> str:
    state = store.state(item_id)
    return f"{state.status.value}:{state.label or ''}"


def changed_since_shown(shown: Shown, store) -> set[int]:
    """The shown images that stand otherwise now (decided here or in another tab; an undo back
    to how one stood makes it unchanged again)."""
    return {i for i, seen in zip(shown.ids, shown.seen) if _standing(store, i) != seen}


def changed_elsewhere(state: ConversationState, store) -> set[int]:
    """The shown images that stand otherwise than this conversation last left them: decided in
    another tab or by the CLI since."""
    return {i for i, left in state.left.items() if _standing(store, i) != left}


def context_of(state: ConversationState, store) -> Context:
    if state.shown is None:
        return Context(last_items=state.last_items)
    changed = changed_since_shown(state.shown, store)
    return Context(state.shown.ids, tuple(i for i in state.shown.ids if i not in changed), state.shown.what,
                   state.last_items)
