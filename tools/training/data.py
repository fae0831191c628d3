"""Which confirmed items a run learns from, which it keeps out to measure itself, and whether there are enough."""

from __future__ import annotations

import random
from dataclasses import dataclass

from index.errors import LabelchatError

MIN_PER_LABEL = 2  # one to learn from, one to check against


class NotEnoughExamplesError(LabelchatError):
    def __init__(self, counts: dict[str, int], needed: int = MIN_PER_LABEL):
        short = {label: n for label, n in counts.items() if n < needed}
        detail = "; ".join(
            f"'{label}' has {n}, confirm {needed - n} more" for label, n in sorted(short.items())
        )
        super().__init__(
            f"Training needs at least {needed} confirmed examples of every label "
            f"(one to learn from, one to check against): {detail}. Review more items "
            f"(labelchat review --label LABEL), or remove labels you do not need."
        )
        self.short = short


@dataclass(frozen=True)
class Split:
    """Item ids per part, each list sorted. `labels` is the label of every id in any part."""

    train: tuple[int, ...]
    validation: tuple[int, ...]
    holdout: tuple[int, ...]
    labels: dict[int, str]

    def to_dict(self) -> dict:
        return {"train": list(self.train), "validation": list(self.validation), "holdout": list(self.holdout)}


def check_enough(confirmed: dict[int, str], label_names: list[str]) -> None:
    counts = {label: 0 for label in label_names}
    for label in confirmed.values():
        if label in counts:
            counts[label] += 1
    if any(n < MIN_PER_LABEL for n in counts.values()):
        raise NotEnoughExamplesError(counts)


def split_examples(confirmed: dict[int, str], label_names: list[str], *, holdout: float,
                   validation: float, seed: int) -> Split:
    """A stratified split: every label keeps at least one training item, and goes into the
    holdout (and validation) with its share rounded, at least one when it has items to spare."""
    check_enough(confirmed, label_names)
    rng = random.Random(seed)
    train, val, held = [], [], []
    for label in label_names:
        ids = sorted(i for i, l in confirmed.items() if l == label)
        rng.shuffle(ids)
        n_held = _share(len(ids), holdout, keep=1)
        held += ids[:n_held]
        rest = ids[n_held:]
        n_val = _share(len(rest), validation, keep=1)
        val += rest[:n_val]
        train += rest[n_val:]
    labels = {i: l for i, l in confirmed.items() if l in label_names}
    return Split(tuple(sorted(train)), tuple(sorted(val)), tuple(sorted(held)), labels)


def _share(n: int, fraction: float, keep: int) -> int:
    """round(n * fraction), at least 1 when fraction > 0, leaving at least `keep` behind."""
    if fraction <= 0 or n <= keep:
        return 0
    return min(n - keep, max(1, round(n * fraction)))
