"""What the CLIP backends (open_clip and transformers) share: precision choice and text heads."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from index.types import Label

from .base import LinearHead, l2_normalize, label_texts
from .device import BF16_MIN_COSINE, cosine_agreement

TEXT_BATCH = 256


class PrecisionChooser:
    """Runs the image tower in bf16 on CPU when that is measurably safe, else fp32.

    Part of the first batch is encoded both ways; bf16 is kept only if every
    feature vector stays within BF16_MIN_COSINE of fp32 and it runs faster (it
    does not for tiny models, or on CPUs without fast bf16 kernels). On CUDA,
    fp16 autocast is used.
    """

    def __init__(self, model, device: str):
        self.model = model
        self.device = device
        self.dtype = None  # decided on the first batch
        self.agreement: float | None = None  # smallest cosine similarity of bf16 to fp32 features
        self.speedup: float | None = None  # fp32 time / bf16 time

    def encode(self, encode_fn: Callable, pixels):
        import torch

        pixels = pixels.to(self.device)
        if self.device.startswith("cuda"):
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                return encode_fn(pixels).float()
        if self.dtype is None:
            self._decide(encode_fn, pixels)
        # Casts happen outside inference mode: weights cast inside it would become
        # inference tensors that no later training could use.
        if next(self.model.parameters()).dtype != self.dtype:  # someone cast the model
            self.model.to(self.dtype)
        with torch.inference_mode():
            return encode_fn(pixels.to(self.dtype)).float()

    def _decide(self, encode_fn: Callable, pixels) -> None:
        """bf16 only if it agrees with fp32 and is faster, both measured on (part of) this batch."""
        import time

        import torch

        sample = pixels[: min(8, len(pixels))].float()
        self.dtype = torch.float32
        if self.device != "cpu":
            return

        def timed(batch):
            with torch.inference_mode():
                encode_fn(batch)  # warm-up
                started = time.perf_counter()
                features = encode_fn(batch).float()
            return features, time.perf_counter() - started

        self.model.to(torch.float32)  # the reference, whatever another chooser of this model left it in
        reference, fp32_seconds = timed(sample)
        try:
            self.model.to(torch.bfloat16)
            candidate, bf16_seconds = timed(sample.to(torch.bfloat16))
            self.agreement = cosine_agreement(reference, candidate)
            self.speedup = fp32_seconds / max(bf16_seconds, 1e-9)
        except (RuntimeError, TypeError):  # an op without a bf16 kernel on this CPU
            self.agreement = None
        if self.agreement is not None and self.agreement >= BF16_MIN_COSINE and self.speedup > 1.1:
            self.dtype = torch.bfloat16
        else:
            self.model.to(torch.float32)


def text_head(
    labels: Sequence[Label],
    templates: Sequence[str],
    encode_texts: Callable[[list[str]], np.ndarray],
    scale: float,
) -> LinearHead:
    """Prompt-ensemble classifier: each label's weight is the normalised mean of its
    normalised text embeddings (Radford et al. 2021, as in open_clip's zero_shot_classifier)."""
    per_label = [label_texts(label, templates) for label in labels]
    flat = [text for texts in per_label for text in texts]
    embeddings = np.concatenate(
        [encode_texts(flat[i : i + TEXT_BATCH]) for i in range(0, len(flat), TEXT_BATCH)]
    )
    embeddings = l2_normalize(embeddings.astype(np.float32))
    weights, start = [], 0
    for texts in per_label:
        weights.append(embeddings[start : start + len(texts)].mean(axis=0))
        start += len(texts)
    return LinearHead(tuple(label.name for label in labels), l2_normalize(np.stack(weights)), scale)
