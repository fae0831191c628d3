"""What a training run tells the outside while it runs, and how it is told to stop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from index.errors import LabelchatError


@dataclass(frozen=True)
class TrainProgress:
    phase: str  # "features", "probe", "epoch", "step", "blend", "scoring"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    train_loss: float | None = None
    val_accuracy: float | None = None
    message: str = ""


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_accuracy: float | None
    val_loss: float | None
    seconds: float
    batch_size: int


ProgressFn = Callable[[TrainProgress], None]
StopFn = Callable[[], bool]


class TrainingCancelled(LabelchatError):
    def __init__(self, job_id: int | None, epoch: int, message: str | None = None):
        super().__init__(message or (
            f"Training was cancelled after epoch {epoch}; its checkpoint is kept. "
            f"Resume it with: labelchat train --resume"
        ))
        self.job_id = job_id
        self.epoch = epoch


class LabelsChangedError(LabelchatError):
    def __init__(self, before: list[str], after: list[str]):
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        change = ", ".join(filter(None, [f"added {added}" if added else "", f"removed {removed}" if removed else ""]))
        super().__init__(
            f"The label set changed while training ({change or 'renamed or reordered'}), so the "
            f"model being trained no longer fits it; the run was stopped. Train again: labelchat train"
        )
