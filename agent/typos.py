"""Tolerant reading: which known word a misspelt one means, when one reading is clearly nearest.

The distance is Damerau-Levenshtein (a swap of two neighbouring letters counts as one edit:
'lable' is one edit from 'label', two from 'labeled'). A reading is taken only when it is
within the allowed edits for the word's length and strictly nearer than every other; a tie
is ambiguous and the two nearest are offered back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    word: str  # as written
    best: str | None  # the reading taken (None: none is clearly nearest)
    nearest: tuple[str, ...] = ()  # the two nearest known words, for asking back


def distance(a: str, b: str) -> int:
    """Edits (insert, delete, replace, swap of neighbours) that turn `a` into `b`."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def allowed_edits(word: str) -> int:
    """How many edits a word of this length may carry and still be read (none below 4 letters)."""
    return 0 if len(word) < 4 else 1 if len(word) < 8 else 2


def read(word: str, known: list[str]) -> Reading:
    """The known word `word` means: itself, the clearly nearest one, or none (with the two nearest)."""
    lowered = word.lower()
    by_lower = {k.lower(): k for k in known}
    if lowered in by_lower:
        return Reading(word, by_lower[lowered])
    ranked = sorted((distance(lowered, k.lower()), k) for k in known)
    if not ranked:
        return Reading(word, None)
    nearest = tuple(k for _, k in ranked[:2])
    best_distance = ranked[0][0]
    if best_distance > allowed_edits(lowered):
        return Reading(word, None, nearest)
    if len(ranked) > 1 and ranked[1][0] == best_distance:
        return Reading(word, None, nearest)  # a tie: ambiguous
    return Reading(word, ranked[0][1], nearest)
