"""Long-running jobs and their progress: the jobs table."""

from __future__ import annotations

import json
import sqlite3

from ..types import Job, JobStatus
from .base import now


class JobsMixin:
    """Starting, updating and reading jobs; `Store` provides `_write` and `_read`."""

    def start_job(self, kind: str, params: dict, total: int | None = None) -> Job:
        with self._write() as db:
            job_id = db.execute(
                "INSERT INTO jobs(kind, status, total, params, created_at, updated_at)"
                " VALUES (?, 'running', ?, ?, ?, ?)",
                (kind, total, json.dumps(params), now(), now()),
            ).lastrowid
        return self.job(job_id)

    def update_job(
        self,
        job_id: int,
        *,
        done: int | None = None,
        total: int | None = None,
        message: str | None = None,
        status: JobStatus | None = None,
    ) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET done = coalesce(?, done), total = coalesce(?, total),"
                " message = coalesce(?, message), status = coalesce(?, status), updated_at = ?"
                " WHERE id = ?",
                (done, total, message, status.value if status else None, now(), job_id),
            )

    def job(self, job_id: int) -> Job:
        return _job(self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))[0])

    def jobs(self, *, limit: int = 20) -> list[Job]:
        rows = self._read("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        return [_job(row) for row in rows]

    def latest_job(self, kind: str) -> Job | None:
        rows = self._read("SELECT * FROM jobs WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,))
        return _job(rows[0]) if rows else None


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        status=JobStatus(row["status"]),
        done=row["done"],
        total=row["total"],
        message=row["message"],
        params=json.loads(row["params"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
