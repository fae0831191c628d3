"""Tools that report on the project or take its labels out: status and export."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import BaseTool, tool

from tools.wording import counted

from .context import AgentContext


def tools(ctx: AgentContext) -> list[BaseTool]:
    store = ctx.project.store  # for reading: changes go through ctx.workbench

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def export_dataset(out_dir: str, format: Literal["imagefolder", "csv", "jsonl", "coco", "hf"] = "imagefolder",
                       include: Literal["confirmed", "suggested"] = "confirmed",
                       replace: bool = False) -> tuple[str, Any]:
        """Export the labels as a dataset into an empty folder.

        Args:
            out_dir: The folder to export into.
            format: imagefolder, csv, jsonl, coco or hf (Hugging Face imagefolder).
            include: confirmed labels only, or also the best suggestion of the other images.
            replace: Replace an earlier labelchat export in that folder (never other files).
        """
        from tools.export import export_dataset as export

        report = export(ctx.project, out_dir, format, include=include, overwrite=replace)
        return f"Exported {counted(report.count, 'image')} as {report.format.value} to {report.folder}.", report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def status() -> tuple[str, Any]:
        """How the project is doing: images, labels, decisions."""
        counts = store.status()
        per_label = ", ".join(f"{c.label} {c.confirmed}" for c in counts.by_label) or "no labels yet"
        states = ", ".join(f"{n} {k}" for k, n in counts.by_status.items())
        return f"{counted(counts.items, 'image')} ({states}). Confirmed per label: {per_label}.", counts

    return [export_dataset, status]
