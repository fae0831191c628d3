"""How good a classifier is on labelled items: accuracy, per-class precision and recall, confusion."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    support: int  # items of this label
    precision: float | None  # None when nothing was predicted as this label
    recall: float | None  # None when there are no items of this label


@dataclass(frozen=True)
class Metrics:
    items: int
    accuracy: float | None
    per_class: tuple[ClassMetrics, ...]
    confusion: tuple[tuple[int, ...], ...]  # confusion[true][predicted], in label order

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Metrics":
        return cls(data["items"], data["accuracy"], tuple(ClassMetrics(**c) for c in data["per_class"]),
                   tuple(tuple(row) for row in data["confusion"]))


def evaluate(truth: np.ndarray, probabilities: np.ndarray, labels: list[str]) -> Metrics:
    """`truth` holds label columns (N,); `probabilities` is (N, C) in the same label order."""
    c = len(labels)
    predicted = probabilities.argmax(axis=1) if len(truth) else np.zeros(0, dtype=np.int64)
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = []
    for j, label in enumerate(labels):
        predicted_j, support = confusion[:, j].sum(), confusion[j].sum()
        per_class.append(ClassMetrics(
            label, int(support),
            float(confusion[j, j] / predicted_j) if predicted_j else None,
            float(confusion[j, j] / support) if support else None,
        ))
    accuracy = float(np.trace(confusion) / len(truth)) if len(truth) else None
    return Metrics(len(truth), accuracy, tuple(per_class), tuple(tuple(int(x) for x in row) for row in confusion))
