"""Tools for review rounds: a blind second look at a sample of confirmed labels, and its report."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, tool

from index.errors import LabelchatError

from .context import AgentContext
from .models import _percent


def tools(ctx: AgentContext) -> list[BaseTool]:
    store = ctx.project.store  # for reading: changes go through ctx.workbench (or tools/rounds.py)

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def start_review_round(size: int | None = None, reviewer: str | None = None) -> tuple[str, Any]:
        """Start a review round: a sample of confirmed images, stratified by label, for a second person to label blind.

        Args:
            size: How many images to draw; without it, enough for 95% confidence within 5%.
            reviewer: The one person who should review this round.
        """
        from tools.rounds import start_round

        if size is not None and not 1 <= size <= 100_000:
            raise LabelchatError(f"Draw between 1 and 100000 images for a round, not {size}.")
        round_ = start_round(store, actor=ctx.actor, size=size, reviewer=reviewer)
        return (f"Started review round {round_.id}: {round_.why}. Someone other than the person who labelled "
                f"each image reviews it, without seeing that label: in the Rounds tab, or 'labelchat round "
                f"review --user NAME'."), round_

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def review_round_report() -> tuple[str, Any]:
        """How the newest review round went: agreement, Cohen's kappa, and each person's accuracy."""
        from tools.rounds import current_round, round_report

        report = round_report(store, current_round(store, open_only=False).id)
        kappa = "n/a" if report.kappa is None else f"{report.kappa:.2f}"
        people = "; ".join(f"{a.name} {a.correct}/{a.judged} right" for a in report.per_annotator)
        text = (f"Review round {report.round.id} ({report.round.status}): {report.reviewed} of {report.items} images "
                f"reviewed, {report.agreed} agreed ({_percent(report.agreement)}), Cohen's kappa {kappa}; "
                f"{report.disagreed} disagreements, {report.adjudicated} adjudicated.")
        if people:
            text += f" Against the settled answers: {people}."
        if report.notes:
            text += " Still to do: " + "; ".join(report.notes) + "."
        return text, report

    return [start_review_round, review_round_report]
