"""The flat configuration of one training run; it travels with the checkpoints and the model version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum

from index.errors import LabelchatError


class Kind(str, Enum):
    PROBE = "probe"  # a linear classifier on cached features: seconds on a CPU
    FINETUNE = "finetune"  # the image tower and the head: a GPU is best


@dataclass(frozen=True)
class TrainConfig:
    kind: str = Kind.PROBE.value
    model: str | None = None  # base model spec (None: the project's model)
    device: str = "auto"
    holdout: float = 0.2  # share of each class's confirmed items kept out of training, for the metrics
    seed: int = 0
    # probe
    strengths: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # L2 pull toward zero-shot, picked by cross-validation
    # finetune
    epochs: int = 10
    batch_size: int = 0  # 0: 64 on a GPU, 16 on a CPU
    lr: float = 1e-4  # peak learning rate of the tower; the head gets head_lr_scale times more
    head_lr_scale: float = 10.0
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    patience: int = 3  # epochs without a better validation accuracy before stopping early
    validation: float = 0.15  # share of the training items used for early stopping and the WiSE-FT blend
    wise_alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # 0: zero-shot weights, 1: fine-tuned
    workers: int = 0  # image decoding threads (0: loaders.DEFAULT_WORKERS)

    def __post_init__(self):
        if self.kind not in {k.value for k in Kind}:
            raise LabelchatError(f"Unknown training kind {self.kind!r}; use probe or finetune.")
        if not 0 <= self.holdout < 1:
            raise LabelchatError(f"--holdout must be in [0, 1); got {self.holdout}.")
        if self.epochs < 1:
            raise LabelchatError(f"--epochs must be at least 1; got {self.epochs}.")
        if self.batch_size < 0:
            raise LabelchatError(f"--batch-size must be positive; got {self.batch_size}.")

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})
