"""Tools that bring images in: from folders, files, zips and URL lists, or by crawling web pages."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, tool

from tools.wording import counted, unpacked_text

from .context import AgentContext


def tools(ctx: AgentContext) -> list[BaseTool]:
    bench = ctx.workbench

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def add_images(sources: list[str], labels_from_folders: bool = False) -> tuple[str, Any]:
        """Add images to the project from folders, files, zip archives, URL lists or URLs.

        Args:
            sources: Paths, zip files, .txt/.csv URL lists or http(s) URLs, as the person wrote them.
            labels_from_folders: Treat a <label>/<image> folder layout as confirmed labels.
        """
        from tools.ingest import IngestOptions, ingest

        report = ingest(ctx.project, sources, IngestOptions(labels_from_folders=labels_from_folders),
                        on_progress=ctx.progress, should_stop=ctx.should_stop)
        bench.images_changed()
        text = f"Added {counted(report.added, 'image')} ({report.duplicates} already here)"
        if report.unpacked:
            text += f"; {unpacked_text(report.unpacked)}"
        if report.problems:
            reasons = ", ".join(f"{r} {n}" for r, n in report.skipped_by_reason().items())
            named = "; ".join(f"{_short(p.source)}: {p.message}" for p in report.problems[:5])
            more = f"; and {report.skipped - 5} more" if report.skipped > 5 else ""
            text += f"; skipped {report.skipped} ({reasons}): {named}{more}"
        return text + ".", report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def crawl(urls: list[str], depth: int = 1, max_images: int = 200, max_pages: int = 50) -> tuple[str, Any]:
        """Gather images from web pages, sitemaps or URL lists, politely (robots.txt, per-host limits).

        Args:
            urls: Start pages, sitemap.xml files or URL lists, as the person wrote them.
            depth: Link hops to follow from the start pages.
            max_images: Stop after saving this many images.
            max_pages: Stop after reading this many pages.
        """
        from tools.crawl import CrawlOptions, crawl as run_crawl, summary

        options = CrawlOptions(depth=depth, max_images=max_images, max_pages=max_pages)
        report = run_crawl(ctx.project, urls, options, should_stop=ctx.should_stop,
                           on_progress=lambda p: ctx.progress(p.images, max_images, f"{p.pages} pages"))
        bench.images_changed()
        return f"Saved {counted(report.saved, 'image')} from {', '.join(urls)} ({summary(report)}).", report

    return [add_images, crawl]


def _short(source: str) -> str:
    """A file's name, or a URL, as a person recognises it (uploads sit in long temporary paths)."""
    from pathlib import PurePath

    return source if "://" in source else PurePath(source.split("!", 1)[0]).name + (
        f"!{source.split('!', 1)[1]}" if "!" in source else "")
