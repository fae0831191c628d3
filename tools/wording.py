"""Counts in words: "1 image", "2 images", "0 items" (one helper for every front end)."""

from __future__ import annotations

IRREGULAR = {"is": "are", "was": "were", "has": "have", "this": "these", "it": "they"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`noun` or its plural as `count` asks (`many` when it is not noun + "s")."""
    if count == 1:
        return noun
    return many or IRREGULAR.get(noun) or (noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou"
                                           else noun + "es" if noun.endswith(("s", "x", "ch", "sh")) else noun + "s")


def counted(count: int, noun: str, many: str | None = None) -> str:
    """'1 image', '3 images', '0 images'; `many` for an irregular plural ('1 match', '2 matches' need none)."""
    return f"{count} {plural(count, noun, many)}"


def unpacked_text(zips: list[str]) -> str:
    """Zips found inside added folders, unpacked like zips added by themselves (a phrase, no full stop)."""
    from pathlib import Path

    named = ", ".join(Path(z).name for z in zips[:5]) + (f" and {len(zips) - 5} more" if len(zips) > 5 else "")
    return f"unpacked {counted(len(zips), 'zip')} found inside the folders ({named})"
