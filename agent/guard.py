"""Checks every brain's tool call against the conversation before it runs.

- A call may act only on images the person was given: shown in this conversation, or named
  by the person in a message. An id a brain made up is an error the brain and the person see.
- A decision about a shown set whose images were decided elsewhere since it was shown (in
  another tab, by the CLI) does not silently act on them: with some left, it asks before acting on the
  others; with none left, it says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conversation import changed_elsewhere

ITEM_ARGS = {"decide": "item_ids", "correct_many": "item_ids", "correct": "item_id", "similar": "item_id"}
VERBS = {"accept": "Approve", "reject": "Reject", "skip": "Skip"}


@dataclass(frozen=True)
class Verdict:
    error: str | None = None  # do not run; tell the brain and the person
    question: str | None = None  # ask first; on yes run with `args`
    args: dict | None = None


def check(ctx, name: str, args: dict) -> Verdict | None:
    """None: run the call as it is."""
    key = ITEM_ARGS.get(name)
    state = ctx.conversation
    if key is None or state is None or args.get(key) is None:
        return None
    ids = _as_ids(args[key])
    if ids is None:
        return None  # wrong types: the tool's own validation says what is wrong
    if not ids and name in ("decide", "correct_many"):
        return Verdict(error=f"{name} was called with no images; nothing was changed. Name the images by id, "
                             f"or act on images shown in this conversation.")
    given = set(state.given)
    unknown = [i for i in ids if i not in given]
    if unknown:
        listed = ", ".join(f"#{i}" for i in unknown[:10])
        return Verdict(error=f"{name} was called with {listed}, which the person was not shown and did not "
                             f"name; nothing was changed. Act only on images shown in this conversation or "
                             f"named by the person.")
    if name in ("decide", "correct_many") and state.shown is not None:
        return _decided_meanwhile(ctx, name, args, ids)
    return None


def _decided_meanwhile(ctx, name: str, args: dict, ids: list[int]) -> Verdict | None:
    store = ctx.project.store
    if not set(ids) <= set(ctx.conversation.shown.ids):
        return None  # named by the person: as asked
    since = changed_elsewhere(ctx.conversation, store)
    changed = [i for i in ids if i in since]
    if not changed:
        return None
    now = ", ".join(f"#{i} ({_now(store, i)})" for i in changed[:8]) + (", ..." if len(changed) > 8 else "")
    rest = [i for i in ids if i not in changed]
    if not rest:
        return Verdict(error=f"All {len(ids)} of those images were decided since they were shown: {now}. "
                             f"Nothing was changed; say 'show me more' for the next ones.")
    verb = VERBS.get(args.get("action"), "Label") if name == "decide" else f"Label as {args.get('label')}"
    listed = ", ".join(f"#{i}" for i in rest)
    return Verdict(question=f"{len(changed)} of these were decided since they were shown: {now}. "
                            f"{verb} the other {len(rest)} ({listed})? (yes / no)",
                   args={**args, "item_ids": rest})


def _now(store, item_id: int) -> str:
    state = store.state(item_id)
    return f"now {state.label}" if state.label and state.status.value == "confirmed" else f"now {state.status.value}"


def _as_ids(value) -> list[int] | None:
    values = value if isinstance(value, list) else [value]
    ids = []
    for v in values:
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            ids.append(v)
        elif isinstance(v, str) and v.strip().lstrip("#").isdigit():
            ids.append(int(v.strip().lstrip("#")))  # the tool would read "12" as 12 too
        else:
            return None
    return ids
