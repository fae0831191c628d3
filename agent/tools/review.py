"""Tools of the review loop: suggestions, batches to look at, decisions, undo, similar images and suspects."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import BaseTool, tool

from index.errors import LabelchatError
from index.types import Action
from tools.wording import counted, plural

from .context import AgentContext


def tools(ctx: AgentContext) -> list[BaseTool]:
    store = ctx.project.store  # for reading: changes go through ctx.workbench
    bench = ctx.workbench

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def suggest_labels() -> tuple[str, Any]:
        """Suggest a label for every image (zero-shot, improved by confirmed examples)."""
        reviewer = ctx.reviewer()
        refresh = reviewer.refresh()
        counts = store.status()
        per_label = ", ".join(f"{c.label} {c.suggested}" for c in counts.by_label if c.suggested)
        text = f"Suggested labels for {counted(refresh.items, 'image')} with {reviewer.model}: {per_label}."
        if ctx.notices:
            text += " (No CLIP weights here, so the offline model was used; 'labelchat fetch-model' gets CLIP.)"
            ctx.notices.clear()
        return text, counts

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def review_batch(strategy: Literal["uncertain", "balanced", "confident", "random"] = "uncertain",
                     size: int = 10, label: str | None = None) -> tuple[str, Any]:
        """Show the next images to review, with their suggestions and similar confirmed examples.

        Args:
            strategy: uncertain (least sure first), balanced, confident (most sure first) or random.
            size: How many images to show.
            label: Only images whose best suggestion is this label.
        """
        if not 1 <= size <= 500:
            raise LabelchatError(f"Show between 1 and 500 images at a time, not {size}.")
        cards = ctx.reviewer().batch(strategy, size, label=label)
        lines = [
            f"#{c.item.id}: {c.suggestions[0].label} {c.suggestions[0].score:.2f}" if c.suggestions else f"#{c.item.id}"
            for c in cards
        ]
        return (f"{counted(len(cards), 'image')} to review: " + "; ".join(lines)) if cards else "Nothing left to review.", cards

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def decide(item_ids: list[int], action: Literal["accept", "reject", "skip"], label: str | None = None) -> tuple[str, Any]:
        """Accept, reject or skip images: accept takes each image's best suggestion unless a label is given.

        Args:
            item_ids: The image ids, e.g. [12, 13].
            action: accept, reject or skip.
            label: The label to accept or reject instead of the best suggestion.
        """
        decisions = bench.decide_many(item_ids, action, label, actor=ctx.actor)  # all or none; one undo
        bench.refresh()
        done = ", ".join(f"#{d.item_id} {d.label or ''}".strip() for d in decisions)
        return f"{action.capitalize()}ed {done}. Suggestions updated.".replace("Skiped", "Skipped"), decisions

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def correct(item_id: int, label: str) -> tuple[str, Any]:
        """Give one image its right label.

        Args:
            item_id: The image id.
            label: The right label.
        """
        decision = bench.decide(item_id, Action.CORRECT, label, actor=ctx.actor)
        bench.refresh()
        return f"#{item_id} is now {label}. Suggestions updated.", decision

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def correct_many(item_ids: list[int], label: str) -> tuple[str, Any]:
        """Give several images the same right label, as one action (one undo takes it back).

        Args:
            item_ids: The image ids, e.g. [12, 13].
            label: The right label.
        """
        decisions = bench.correct_many(item_ids, label, actor=ctx.actor)
        bench.refresh()
        return f"{', '.join(f'#{i}' for i in item_ids)} are now {label}. Suggestions updated.", decisions

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def accept_above(min_prob: float, label: str | None = None) -> tuple[str, Any]:
        """Accept every pending image whose best suggestion has at least this probability.

        Args:
            min_prob: The probability threshold, in (0, 1].
            label: Only images suggested as this label.
        """
        report = bench.accept_above(min_prob, label, actor=ctx.actor)
        bench.refresh()
        which = f" suggested as {label}" if label else ""
        return f"Accepted {counted(report.accepted, 'image')}{which} with probability >= {min_prob}.", report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def similar(item_id: int | None = None, text: str | None = None, k: int = 8) -> tuple[str, Any]:
        """Find the images most like an image, or matching a text.

        Args:
            item_id: An image id.
            text: A description, e.g. "red sneakers" (needs a CLIP model).
            k: How many to show.
        """
        reviewer = ctx.reviewer()
        if item_id is not None:
            found = reviewer.similar(item_id, k)
        elif text:
            found = reviewer.similar_to_text(text, k)
        else:
            raise LabelchatError("Say which image (an id) or what to look for (a text).")
        listed = ", ".join(f"#{n.item_id} {n.label or '?'} {n.similarity:.2f}" for n in found)
        return f"Most similar: {listed}." if found else "Nothing similar found.", found

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def undo() -> tuple[str, Any]:
        """Undo the newest decision, or every decision of the newest bulk action."""
        report = bench.undo(actor=ctx.actor, refresh=True)
        return report.text, list(report.undone)

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def suspect_labels(limit: int = 10) -> tuple[str, Any]:
        """Find confirmed labels that look wrong: the rest of the data says another label.

        Args:
            limit: How many to list at most.
        """
        from tools.quality.suspects import find_suspects

        report = find_suspects(ctx.project, ctx.reviewer().model, limit=max(1, min(limit, 500)))
        parts = [f"#{s.item_id} is {s.label} but looks like {s.likely_label} ({s.score:.2f})" for s in report.suspects]
        skipped = "".join(f" Not checked: {label} ({why})." for label, why in report.unscored.items())
        if not parts:
            return f"No label looks wrong among {counted(report.scored, 'confirmed image')}.{skipped}", report
        return (f"{counted(len(parts), 'label')} {plural(len(parts), 'looks', 'look')} wrong: " + "; ".join(parts) + ". In the Review tab the order 'suspect' "
                f"shows them to check: approve keeps a label, another label corrects it.{skipped}"), report

    return [suggest_labels, review_batch, decide, correct, correct_many, accept_above, similar, undo, suspect_labels]
