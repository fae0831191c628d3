"""Ordered schema migrations of the project database.

Each migration is a named function applied once, in order, inside one
transaction. `PRAGMA user_version` counts how many have been applied, so an
older project is upgraded on open and a project written by a newer labelchat
(user_version larger than len(MIGRATIONS)) is refused instead of damaged.

Never edit a migration that has shipped: append a new one.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

Migration = Callable[[sqlite3.Connection], None]


def run_statements(db: sqlite3.Connection, script: str) -> None:
    """Execute a multi-statement script inside the caller's transaction.

    `executescript` would commit first, which breaks one-transaction migrations.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement!r}")


def m001_initial(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL UNIQUE,
            phash TEXT NOT NULL,
            media_path TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            format TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            added_at TEXT NOT NULL
        );
        CREATE TABLE item_sources (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            source TEXT NOT NULL,
            page_url TEXT,
            alt_text TEXT,
            title TEXT,
            added_at TEXT NOT NULL,
            UNIQUE (item_id, source)
        );
        CREATE TABLE near_duplicates (
            item_id INTEGER NOT NULL REFERENCES items(id),
            other_id INTEGER NOT NULL REFERENCES items(id),
            distance INTEGER NOT NULL,
            PRIMARY KEY (item_id, other_id)
        );
        CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT,
            prompts TEXT NOT NULL DEFAULT '[]',
            position INTEGER NOT NULL
        );
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            action TEXT NOT NULL
                CHECK (action IN ('accept', 'reject', 'correct', 'skip', 'undo')),
            label TEXT,
            actor TEXT NOT NULL,
            auto INTEGER NOT NULL DEFAULT 0,
            undoes INTEGER REFERENCES decisions(id),
            created_at TEXT NOT NULL
        );
        CREATE INDEX decisions_item ON decisions(item_id, id);
        -- Derived from `decisions`, updated in the same transaction; rebuildable.
        CREATE TABLE item_state (
            item_id INTEGER PRIMARY KEY REFERENCES items(id),
            status TEXT NOT NULL,
            label TEXT,
            rejected TEXT NOT NULL DEFAULT '[]',
            last_decision_id INTEGER
        );
        CREATE INDEX item_state_status ON item_state(status, label);
        CREATE TABLE suggestions (
            item_id INTEGER NOT NULL REFERENCES items(id),
            rank INTEGER NOT NULL,
            label TEXT NOT NULL,
            score REAL NOT NULL,
            model TEXT NOT NULL,
            method TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (item_id, rank)
        );
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            base_model TEXT NOT NULL,
            labels TEXT NOT NULL,
            path TEXT,
            config TEXT NOT NULL DEFAULT '{}',
            metrics TEXT NOT NULL DEFAULT '{}',
            active INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            total INTEGER,
            message TEXT NOT NULL DEFAULT '',
            params TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        """
    )


def m002_embeddings_and_heads(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        -- Image features, once per item and model (float32 bytes).
        CREATE TABLE embeddings (
            model TEXT NOT NULL,
            item_id INTEGER NOT NULL REFERENCES items(id),
            vector BLOB NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (model, item_id)
        );
        -- Zero-shot heads (encoded label texts), keyed by model + labels + prompts.
        CREATE TABLE heads (
            key TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            data BLOB NOT NULL,
            created_at TEXT NOT NULL
        );
        -- Which head produced a suggestion, so unchanged ones are not recomputed.
        ALTER TABLE suggestions ADD COLUMN head_key TEXT;
        """,
    )


def m003_suggestion_reasons(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        -- Why a label is suggested: its zero-shot probability, the confirmed examples'
        -- vote for it, and the ids of the examples that voted for it.
        ALTER TABLE suggestions ADD COLUMN zero_shot REAL;
        ALTER TABLE suggestions ADD COLUMN examples REAL;
        ALTER TABLE suggestions ADD COLUMN voters TEXT;
        """,
    )


def m004_crawl_frontier(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        -- Every URL a crawl found, with its outcome: the frontier of a resumable crawl.
        CREATE TABLE crawl_urls (
            id INTEGER PRIMARY KEY,
            crawl_id INTEGER NOT NULL REFERENCES jobs(id),
            url TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('page', 'image', 'sitemap', 'list')),
            depth INTEGER NOT NULL,
            page_url TEXT,
            alt_text TEXT,
            title TEXT,
            status TEXT NOT NULL DEFAULT 'queued',
            detail TEXT,
            item_id INTEGER REFERENCES items(id),
            updated_at TEXT NOT NULL,
            UNIQUE (crawl_id, url)
        );
        CREATE INDEX crawl_urls_status ON crawl_urls(crawl_id, status, kind, id);
        """,
    )


def m005_conversations(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        -- The chat, message by message, so a conversation can be resumed.
        CREATE TABLE chat_messages (
            id INTEGER PRIMARY KEY,
            session TEXT NOT NULL,
            message TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX chat_messages_session ON chat_messages(session, id);
        """,
    )


def m006_decision_batches(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        -- The decisions one action made together (accept --min-prob, auto-accept, accept 1 2 3)
        -- share the id of the first of them, so that one undo takes the whole action back.
        ALTER TABLE decisions ADD COLUMN batch INTEGER;
        CREATE INDEX decisions_batch ON decisions(batch) WHERE batch IS NOT NULL;
        -- What is still in effect is looked up by the decision an undo cancels.
        CREATE INDEX decisions_undoes ON decisions(undoes) WHERE undoes IS NOT NULL;
        """,
    )


def m007_kept_labels(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        -- Labels a person kept after they were flagged as likely wrong: each is an accept decision
        -- of the item's label; undoing that decision (or a new label) flags it again.
        CREATE TABLE kept_labels (
            decision_id INTEGER PRIMARY KEY REFERENCES decisions(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            label TEXT NOT NULL
        );
        """,
    )


def m008_best_suggestion_index(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        -- Each item's best suggestion (rank 0) by label: status counts the suggested items per
        -- label from this index (a fifth of the table, already grouped), not from every rank.
        CREATE INDEX suggestions_best ON suggestions(label, item_id) WHERE rank = 0;
        """,
    )


def m009_best_by_head_index(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        -- Each item's best suggestion by the head and method that made it: opening the review
        -- loop asks which items a head has scored (zero-shot) from this index, not from a scan
        -- of every suggestion (a million items: 10 s under load, bench/scale.py).
        CREATE INDEX suggestions_best_by_head ON suggestions(head_key, method, item_id) WHERE rank = 0;
        """,
    )


def m010_review_rounds(db: sqlite3.Connection) -> None:
    run_statements(
        db,
        """
        -- A review round: a sample of confirmed items that a second person labels again, blind; or
        -- the audit of an auto-accept (kind 'audit'): suggestions a person checked before the rest
        -- was accepted unseen, kept closed, as the measure of those labels.
        CREATE TABLE rounds (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL DEFAULT 'review' CHECK (kind IN ('review', 'audit')),
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
            reviewer TEXT,  -- the one person asked to review it (NULL: anyone but an item's first person)
            size INTEGER NOT NULL,
            why TEXT NOT NULL,  -- how the size was chosen
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            closed_by TEXT,
            closed_at TEXT
        );
        -- Its items, with the label and the person in effect when it was drawn.
        CREATE TABLE round_items (
            round_id INTEGER NOT NULL REFERENCES rounds(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            position INTEGER NOT NULL,
            first_label TEXT NOT NULL,
            first_actor TEXT NOT NULL,
            PRIMARY KEY (round_id, item_id)
        );
        -- Answers: a reviewer's blind label, or an adjudicator's verdict on a disagreement (with
        -- the decision it made when it changed the item's label). An undone answer keeps its row.
        CREATE TABLE round_answers (
            id INTEGER PRIMARY KEY,
            round_id INTEGER NOT NULL REFERENCES rounds(id),
            item_id INTEGER NOT NULL REFERENCES items(id),
            kind TEXT NOT NULL CHECK (kind IN ('review', 'adjudicate')),
            label TEXT NOT NULL,
            actor TEXT NOT NULL,
            decision_id INTEGER REFERENCES decisions(id),
            created_at TEXT NOT NULL,
            undone_by TEXT,
            undone_at TEXT
        );
        -- One answer of each kind in effect per item: a second person answering at the same
        -- time is refused by the database itself, so nothing is counted twice.
        CREATE UNIQUE INDEX round_answers_once ON round_answers(round_id, item_id, kind) WHERE undone_at IS NULL;
        """,
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("initial", m001_initial),
    ("embeddings and zero-shot heads", m002_embeddings_and_heads),
    ("suggestion reasons", m003_suggestion_reasons),
    ("crawl frontier", m004_crawl_frontier),
    ("conversations", m005_conversations),
    ("decision batches", m006_decision_batches),
    ("kept labels", m007_kept_labels),
    ("best suggestion index", m008_best_suggestion_index),
    ("best suggestion by head index", m009_best_by_head_index),
    ("review rounds", m010_review_rounds),
]
