"""Conversations: the chat_messages table."""

from __future__ import annotations

from typing import Sequence

from .base import now


class ChatMixin:
    """A chat session's messages, opaque JSON text; `Store` provides `_write` and `_read`."""

    def add_chat_messages(self, session: str, messages: Sequence[str]) -> None:
        """Append serialised chat messages (JSON text, opaque to the store)."""
        created = now()
        with self._write() as db:
            db.executemany(
                "INSERT INTO chat_messages(session, message, created_at) VALUES (?, ?, ?)",
                [(session, message, created) for message in messages],
            )

    def chat_messages(self, session: str) -> list[str]:
        rows = self._read("SELECT message FROM chat_messages WHERE session = ? ORDER BY id", (session,))
        return [row[0] for row in rows]
