"""Choosing the device and the numeric precision a model runs in."""

from __future__ import annotations

import os

from .base import ModelError

DEVICE_ENV = "LABELCHAT_DEVICE"
# On CPU, bf16 weights are adopted only if their features stay this close to fp32
# (cosine similarity, measured on the first real batch).
BF16_MIN_COSINE = 0.999


def pick_device(requested: str | None = None) -> str:
    """'auto' (or nothing): CUDA, then Apple's MPS, then the CPU. $LABELCHAT_DEVICE overrides auto."""
    import torch

    requested = (requested or os.environ.get(DEVICE_ENV) or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(
            f"--device {requested} was asked for, but torch sees no CUDA GPU here. "
            f"Use --device auto or --device cpu."
        )
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("--device mps was asked for, but MPS is not available. Use --device cpu.")
    if requested != "cpu" and not requested.startswith(("cuda", "mps")):
        raise ModelError(f"Unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps.")
    return requested


def cosine_agreement(a, b) -> float:
    """The smallest row-wise cosine similarity between two feature batches."""
    import torch

    a, b = a.float(), b.float()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1).min())
