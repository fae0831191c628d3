"""What every vision model backend provides, and the zero-shot heads they build.

A backend turns images into feature vectors and a label set into a
`ZeroShotHead` that turns feature vectors into label probabilities. Features
are what the project caches per item and model; heads are cached per label
set, prompts and model. Nothing here imports torch at import time.
"""

from __future__ import annotations

import io
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from index.errors import LabelchatError
from index.types import Label
from index.vectors import row_norms

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

    from .geometry import Geometry


class ModelError(LabelchatError):
    """A model spec that cannot be used, weights that cannot be had, a device that is missing."""


@dataclass(frozen=True)
class PixelNorm:
    """How uint8 pixels become a model's input: (pixels * scale - mean) / std, per channel.

    Worker threads only resize and crop (`Backend.prepare`, uint8); this last,
    arithmetic step runs once per batch on the model's device, where it is
    nearly free, and a quarter of the bytes cross to the GPU.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1 / 255

    def apply(self, pixels: "torch.Tensor") -> "torch.Tensor":
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float64).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float64).view(1, -1, 1, 1)
        gain = (self.scale / std).to(torch.float32).to(pixels.device)
        offset = (mean / std).to(torch.float32).to(pixels.device)
        # in place, one multiply and one subtract: out-of-place broadcasting made 4 temporaries (4x slower on CPU)
        return pixels.float().mul_(gain).sub_(offset)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(row_norms(x), 1e-12)[..., None]


class ZeroShotHead(ABC):
    """Turns image features (N, D) into probabilities over labels (N, C)."""

    labels: tuple[str, ...]

    @abstractmethod
    def probabilities(self, features: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild the head (see `head_to_bytes`)."""


@dataclass(frozen=True)
class LinearHead(ZeroShotHead):
    """CLIP-style: softmax(scale * normalize(f) @ weights.T), weights one unit row per label."""

    labels: tuple[str, ...]
    weights: np.ndarray  # (C, D), rows L2-normalised
    scale: float  # inverse temperature (CLIP's learned logit scale, about 100)

    def logits(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)  # normalised after the product: no (N, D) copy
        return self.scale * (features @ self.weights.T) / np.maximum(row_norms(features), 1e-12)[..., None]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "scale": np.array(self.scale, dtype=np.float32)}


@dataclass(frozen=True)
class BridgeHead(ZeroShotHead):
    """A closed-set classifier's probabilities spread over the user's labels.

    p(label | x) = sum_k p(class k | x) * bridge[k, label], where p(class | x) =
    softmax(features @ class_weights.T + class_bias) and each row of `bridge`
    sums to one (how much each known class speaks for each label).
    """

    labels: tuple[str, ...]
    class_weights: np.ndarray  # (K, D)
    class_bias: np.ndarray  # (K,)
    bridge: np.ndarray  # (K, C), rows sum to 1

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        class_probs = softmax(features.astype(np.float32) @ self.class_weights.T + self.class_bias)
        probs = class_probs @ self.bridge
        return probs / probs.sum(axis=-1, keepdims=True)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "class_weights": self.class_weights,
            "class_bias": self.class_bias,
            "bridge": self.bridge,
        }


@dataclass(frozen=True)
class ResidualHead(ZeroShotHead):
    """A trained linear correction on top of a zero-shot head (what `train --kind probe` makes).

    logits = log p_base(x) + (normalize(f) - mean) @ weights.T + bias. With
    zero weights and bias it is exactly the base head, which is where training
    starts: for a CLIP head, log p_base is scale * normalize(f) @ text_weights.T
    up to a constant, so this is a linear probe initialised from the text weights.
    """

    labels: tuple[str, ...]
    base: ZeroShotHead
    weights: np.ndarray  # (C, D)
    bias: np.ndarray  # (C,)
    mean: np.ndarray  # (D,) mean normalised training feature

    def logits(self, features: np.ndarray) -> np.ndarray:
        base = np.log(np.maximum(self.base.probabilities(features), 1e-12))
        centred = l2_normalize(features.astype(np.float32)) - self.mean
        return base + centred @ self.weights.T + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features))

    def arrays(self) -> dict[str, np.ndarray]:
        nested = {f"base.{key}": value for key, value in self.base.arrays().items()}
        return {"weights": self.weights, "bias": self.bias, "mean": self.mean,
                "base.__type__": np.array(type(self.base).__name__), **nested}


def probabilities_in_parts(head: ZeroShotHead, features: np.ndarray, part: int = 65_536) -> np.ndarray:
    """`head.probabilities` of a large (float16, memory-mapped) matrix, a part at a time, so
    that no float32 copy of all of it is made (a million 2,496-number rows: 10 GB). Parts run
    on a thread per core: numpy lets go of the interpreter lock for each (a million rows of
    128 numbers on 2 cores: 0.65 s instead of 0.95 s)."""
    if len(features) <= part:
        return head.probabilities(np.asarray(features, dtype=np.float32))
    from concurrent.futures import ThreadPoolExecutor

    def one(start: int) -> np.ndarray:
        return head.probabilities(np.asarray(features[start : start + part], dtype=np.float32))

    first = one(0)
    out = np.empty((len(features), first.shape[1]), dtype=first.dtype)  # the head's own precision
    out[:part] = first

    def into(start: int) -> None:
        out[start : start + part] = one(start)

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(into, range(part, len(features), part)))
    return out


_HEAD_TYPES = {"LinearHead": LinearHead, "BridgeHead": BridgeHead, "ResidualHead": ResidualHead}


def head_to_bytes(head: ZeroShotHead) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, __type__=np.array(type(head).__name__), __labels__=np.array(head.labels, dtype=str), **head.arrays())
    return buffer.getvalue()


def head_from_bytes(data: bytes) -> ZeroShotHead:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        kind = str(stored["__type__"])
        arrays = {k: stored[k] for k in stored.files if not k.startswith("__")}
        labels = tuple(str(x) for x in stored["__labels__"])
    return head_from_arrays(kind, labels, arrays)


def head_from_arrays(kind: str, labels: tuple[str, ...], arrays: dict[str, np.ndarray]) -> ZeroShotHead:
    if kind not in _HEAD_TYPES:
        raise ModelError(f"Unknown head type {kind!r} in a stored head; it was written by a newer labelchat.")
    if kind == "LinearHead":
        return LinearHead(labels, arrays["weights"], float(np.asarray(arrays["scale"]).reshape(-1)[0]))
    if kind == "ResidualHead":
        base_arrays = {k[5:]: v for k, v in arrays.items() if k.startswith("base.") and k != "base.__type__"}
        base = head_from_arrays(str(arrays["base.__type__"]), labels, base_arrays)
        return ResidualHead(labels, base, arrays["weights"], arrays["bias"], arrays["mean"])
    return _HEAD_TYPES[kind](labels, **arrays)


class Backend(ABC):
    """A vision(-language) model that embeds images and builds zero-shot heads.

    `preprocess` and `prepare` run in worker threads or forked worker processes
    (they must not touch the GPU or shared mutable state); `encode_images` runs
    in the main thread on batches.
    """

    spec: str  # canonical spec, e.g. "openclip:ViT-B-32/laion2b_s34b_b79k"
    description: str  # one honest line for people: what this model is
    dim: int  # length of a feature vector
    device: str  # "cpu", "cuda", "mps"
    default_batch_size: int = 32
    pixel_norm: PixelNorm | None = None  # set when `prepare` gives uint8 pixels

    @abstractmethod
    def preprocess(self, image: "Image.Image") -> "torch.Tensor":
        """A decoded RGB PIL image -> a (3, H, W) float tensor ready for `encode_images`."""

    def prepare(self, image: "Image.Image") -> "torch.Tensor":
        """What the embedding pipeline's workers do to an image: the resize and
        crop of `preprocess` only, as a (3, H, W) uint8 tensor when the backend has a
        `pixel_norm` (`encode_images` finishes the job on the device, a batch at once),
        else the float tensor of `preprocess`."""
        return self.preprocess(image)

    def geometry(self) -> "Geometry | None":
        """The resize and crop that `prepare` does, as a `Geometry`; None when it is not one."""
        return None

    def device_geometry(self) -> "Geometry | None":
        """`geometry()`, if its batch form (`Geometry.on_batch`) comes within two grey levels of
        `prepare` (checked once, on the CPU, on probe images): a GPU then resizes the images
        smaller than its input itself (see `loaders`)."""
        if not hasattr(self, "_device_geometry"):
            from .geometry import agrees_on_small_images

            geometry = self.geometry() if self.pixel_norm is not None else None
            self._device_geometry = geometry if agrees_on_small_images(geometry, self.prepare) else None
        return self._device_geometry

    def model_input(self, pixels: "torch.Tensor") -> "torch.Tensor":
        """A batch from `preprocess` or `prepare`, on the device, as the model's float input."""
        pixels = pixels.to(self.device, non_blocking=True)
        if not pixels.dtype.is_floating_point:
            if self.pixel_norm is None:
                raise ModelError(f"{self.spec} takes float pixels (from preprocess), got {pixels.dtype}.")
            pixels = self.pixel_norm.apply(pixels)
        return pixels

    @abstractmethod
    def encode_images(self, pixels: "torch.Tensor") -> np.ndarray:
        """(N, 3, H, W) -> (N, dim) float32 features, as the backend's head expects them.
        `pixels` come from `preprocess` (float) or `prepare` (uint8): see `model_input`."""

    @abstractmethod
    def zero_shot_head(self, labels: Sequence[Label], templates: Sequence[str]) -> ZeroShotHead:
        """A head for these labels; see `label_texts` for the texts of one label."""

    def trainable_tower(self) -> "torch.nn.Module":
        """A fresh fp32 copy of the image tower, pixels -> features (as `encode_images`), for fine-tuning."""
        raise ModelError(
            f"{self.spec} cannot be fine-tuned by labelchat (only open_clip CLIP and the offline "
            f"backend can). Train a probe instead: labelchat train --kind probe"
        )


def label_texts(label: Label, templates: Sequence[str]) -> list[str]:
    """The texts that describe one label to a model.

    The templates are rendered with the label's name, followed by its
    description when it has one ("a photo of a tabby, a striped cat."), and
    the label's own prompts are added to them.
    """
    from prompts import render

    subject = f"{label.name}, {label.description}" if label.description else label.name
    texts = [render(template, label=subject) for template in templates]
    return texts + [p for p in label.prompts if p not in texts]
