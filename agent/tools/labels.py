"""Tools that change the label set."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, tool

from index.labels import parse_label_list

from .context import AgentContext


def tools(ctx: AgentContext) -> list[BaseTool]:
    store = ctx.project.store  # for reading: changes go through ctx.workbench
    bench = ctx.workbench

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def set_labels(labels: list[str]) -> tuple[str, Any]:
        """Replace the label set.

        Args:
            labels: The label names, e.g. ["cat", "dog", "bird"].
        """
        label_set = bench.set_labels(parse_label_list("\n".join(labels)))
        hint = " Say 'label them' to suggest these labels." if store.item_count() else ""
        return f"The labels are now: {', '.join(label_set.names)}.{hint}", label_set

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def add_labels(labels: list[str]) -> tuple[str, Any]:
        """Add labels to the label set, keeping the ones already there.

        Args:
            labels: The new label names.
        """
        label_set = bench.add_labels(parse_label_list("\n".join(labels)))
        return f"The labels are now: {', '.join(label_set.names)}.", label_set

    return [set_labels, add_labels]
