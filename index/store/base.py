"""The connection: write transactions, reads, the schema's migrations (PRAGMA user_version) and the settings table."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Self, Sequence

from ..errors import ProjectError, SchemaTooNewError
from ..migrations import MIGRATIONS

BUSY_TIMEOUT_S = 30.0


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class StoreBase:
    """One SQLite connection shared by a process's threads, and how every other group reads and writes through it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise ProjectError(
                f"{self.path} is not a labelchat project database ({exc}). "
                f"Point --project at a project folder, or at a new folder to create one."
            ) from exc
        self._lock = threading.RLock()  # one connection, shared by threads of one process
        self._migrate()

    # -- plumbing -------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; committed when the block ends, rolled back on error.

        Inside `transaction()` it is a savepoint of that transaction instead: its
        writes still land all or none, and the commit is the outer one's."""
        with self._lock:
            if self._db.in_transaction:
                self._db.execute("SAVEPOINT write")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK TO write")
                    self._db.execute("RELEASE write")
                    raise
                self._db.execute("RELEASE write")
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group many writes into one commit (a crawl records a round of results at once):
        the writes inside are all kept, or none if the block raises. Other threads wait."""
        with self._write():
            yield

    def _read(self, sql: str, params: Sequence | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _plain_rows(self, sql: str, params: Sequence = ()) -> list[tuple]:
        """Rows as plain tuples: a million sqlite3.Row objects cost seconds."""
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise SchemaTooNewError(str(self.path), version, len(MIGRATIONS))
            for number, (_name, migration) in enumerate(MIGRATIONS, start=1):
                if number <= version:
                    continue
                with self._write() as db:
                    migration(db)
                    db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    # -- settings -------------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._read("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_setting(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
