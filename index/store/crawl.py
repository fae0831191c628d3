"""The crawl frontier: the crawl_urls table."""

from __future__ import annotations

import sqlite3
from typing import Sequence

from ..types import CrawlUrl
from .base import now


class CrawlMixin:
    """Queueing, taking and marking a crawl's URLs; `Store` provides `_write` and `_read`."""

    def crawl_enqueue(self, crawl_id: int, urls: Sequence[CrawlUrl]) -> int:
        """Queue URLs not seen before in this crawl; returns how many were new."""
        with self._write() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO crawl_urls(crawl_id, url, kind, depth, page_url, alt_text,"
                " title, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                [(crawl_id, u.url, u.kind, u.depth, u.page_url, u.alt_text, u.title, now()) for u in urls],
            )
            return db.total_changes - before

    def crawl_queued(self, crawl_id: int, *, kinds: Sequence[str] | None = None, limit: int = 100) -> list[CrawlUrl]:
        """Queued URLs, oldest (so shallowest, breadth-first) first."""
        kinds = list(kinds or ("page", "image", "sitemap", "list"))
        rows = self._read(
            f"SELECT * FROM crawl_urls WHERE crawl_id = ? AND status = 'queued' AND kind IN"
            f" ({','.join('?' * len(kinds))}) ORDER BY depth, id LIMIT ?",
            (crawl_id, *kinds, limit),
        )
        return [_crawl_url(row) for row in rows]

    def crawl_mark(
        self, crawl_id: int, url: str, status: str, detail: str | None = None, item_id: int | None = None
    ) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE crawl_urls SET status = ?, detail = ?, item_id = ?, updated_at = ?"
                " WHERE crawl_id = ? AND url = ?",
                (status, detail, item_id, now(), crawl_id, url),
            )

    def crawl_counts(self, crawl_id: int, kind: str | None = None) -> dict[str, int]:
        """status -> count of this crawl's URLs (of one kind, or all)."""
        sql, params = "SELECT status, count(*) AS n FROM crawl_urls WHERE crawl_id = ?", [crawl_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return {row["status"]: row["n"] for row in self._read(sql + " GROUP BY status", params)}

    def crawl_urls(self, crawl_id: int, *, status: str | None = None, kind: str | None = None) -> list[CrawlUrl]:
        sql, params = "SELECT * FROM crawl_urls WHERE crawl_id = ?", [crawl_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [_crawl_url(row) for row in self._read(sql + " ORDER BY id", params)]


def _crawl_url(row: sqlite3.Row) -> CrawlUrl:
    return CrawlUrl(
        url=row["url"], kind=row["kind"], depth=row["depth"], page_url=row["page_url"],
        alt_text=row["alt_text"], title=row["title"], status=row["status"], detail=row["detail"],
        item_id=row["item_id"],
    )
