"""Real CLIP through open_clip_torch: `openclip:<arch>/<pretrained>`.

<pretrained> is an open_clip tag (weights from the Hugging Face hub cache),
a local weights file (.safetensors, or .bin/.pt loaded with weights_only), or
`random` (random weights: for speed benchmarks only).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from index.types import Label

from .base import Backend, LinearHead, ModelError, PixelNorm
from .pixels import uint8_pixels
from .clip_common import PrecisionChooser, text_head
from .geometry import Geometry

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def is_local_weights(pretrained: str) -> bool:
    return pretrained.endswith(WEIGHT_SUFFIXES) or os.sep in pretrained or pretrained.startswith("~")


class OpenClipBackend(Backend):
    def __init__(self, model, preprocess, tokenizer, *, spec: str, device: str, description: str):
        self.model = model.eval().to(device)
        self._preprocess = preprocess
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.description = description
        self.dim = int(model.text_projection.shape[-1] if model.text_projection is not None else model.visual.output_dim)
        self.precision = PrecisionChooser(self.model, device)
        self.default_batch_size = 128 if device.startswith("cuda") else 32
        self._pil_steps, self.pixel_norm = split_transform(preprocess)

    @classmethod
    def load(cls, arch: str, pretrained: str, device: str) -> "OpenClipBackend":
        import open_clip

        if arch not in open_clip.list_models():
            raise ModelError(
                f"open_clip has no model {arch!r}. Known ones include ViT-B-32, ViT-B-16, ViT-L-14 "
                f"(open_clip.list_models() lists all)."
            )
        weights: str | None = pretrained
        if pretrained == "random":
            weights = None
        elif is_local_weights(pretrained):
            path = Path(pretrained).expanduser()
            if not path.is_file():
                raise ModelError(f"The weights file {path} does not exist. Check the path in --model.")
            weights = str(path)
        elif not open_clip.get_pretrained_cfg(arch, pretrained):
            tags = ", ".join(tag for a, tag in open_clip.list_pretrained() if a == arch) or "none"
            raise ModelError(f"open_clip knows no weights {pretrained!r} for {arch}; known: {tags}.")
        elif os.environ.get("HF_HUB_OFFLINE") == "1" and not _in_hub_cache(arch, pretrained):
            raise ModelError(f"the weights {arch}/{pretrained} are not in the local Hugging Face cache")
        try:
            logging.disable(logging.ERROR)  # open_clip logs the failure it is about to raise
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights, device=device)
        except Exception as exc:  # hub errors, bad files: all mean "these weights cannot be had"
            raise ModelError(
                f"Could not load the weights {pretrained!r} for {arch}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            logging.disable(logging.NOTSET)
        description = f"CLIP {arch} ({'random weights' if weights is None else pretrained}) via open_clip"
        return cls(model, preprocess, open_clip.get_tokenizer(arch), spec=f"openclip:{arch}/{pretrained}",
                   device=device, description=description)

    def preprocess(self, image):
        return self._preprocess(image.convert("RGB"))

    def prepare(self, image):
        if self._pil_steps is None:
            return self.preprocess(image)
        image = image.convert("RGB")
        for step in self._pil_steps:
            image = step(image)
        return uint8_pixels(image)

    def geometry(self):
        return pil_steps_geometry(self._pil_steps)

    def encode_images(self, pixels) -> np.ndarray:
        features = self.precision.encode(self.model.encode_image, self.model_input(pixels))
        return features.cpu().numpy().astype(np.float32)

    def trainable_tower(self):
        import copy

        return copy.deepcopy(self.model.visual).float().train()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            return encode_text_truncated(self.model, tokens).float().cpu().numpy()

    def zero_shot_head(self, labels: Sequence[Label], templates: Sequence[str]) -> LinearHead:
        scale = float(self.model.logit_scale.exp().item())
        return text_head(labels, templates, self.encode_texts, scale)


def split_transform(transform) -> tuple[list | None, PixelNorm | None]:
    """open_clip's eval transform as (its steps on PIL images, the arithmetic after them).

    It ends with ToTensor (uint8 -> [0, 1]) and Normalize; everything before
    those (resize, crop, mode conversion) works on PIL images. A transform of
    any other shape is not split: (None, None), and `prepare` gives its floats.
    """
    steps = list(getattr(transform, "transforms", ()))
    names = [type(step).__name__ for step in steps]
    if len(steps) < 2 or not names[-2].endswith("ToTensor") or names[-1] != "Normalize":
        return None, None
    normalize = steps[-1]
    return steps[:-2], PixelNorm(tuple(float(m) for m in normalize.mean), tuple(float(s) for s in normalize.std))


def pil_steps_geometry(steps: list | None) -> Geometry | None:
    """The PIL steps of open_clip's eval transform (Resize to a shorter side or a size, then
    CenterCrop, then a mode conversion) as a Geometry; None for steps of any other shape."""
    import torchvision.transforms as T

    if not steps or len(steps) < 2 or not isinstance(steps[0], T.Resize) or not isinstance(steps[1], T.CenterCrop):
        return None
    resize, crop = steps[0], steps[1]
    if any("convert" not in type(step).__name__.lower() and "rgb" not in getattr(step, "__name__", "").lower()
           for step in steps[2:]):
        return None
    modes = {T.InterpolationMode.BICUBIC: True, T.InterpolationMode.BILINEAR: False}
    if resize.interpolation not in modes or resize.max_size is not None or resize.antialias is False:
        return None
    sides = [resize.size] if isinstance(resize.size, int) else list(resize.size)
    crop_size = (crop.size, crop.size) if isinstance(crop.size, int) else tuple(crop.size)
    edge, size = (sides[0], None) if len(sides) == 1 else (None, (sides[0], sides[1]))
    return Geometry(edge, size, (int(crop_size[0]), int(crop_size[-1])), modes[resize.interpolation],
                    round_offsets=True)


def _in_hub_cache(arch: str, pretrained: str) -> bool:
    """Whether open_clip would find these weights without the network (checked in milliseconds,
    before building a model that would only fail to load)."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    repo = open_clip.get_pretrained_cfg(arch, pretrained).get("hf_hub", "").strip("/")
    if not repo:
        return True  # a URL download: let open_clip look in its own cache
    names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    return any(isinstance(try_to_load_from_cache(repo, name), str) for name in names)


def encode_text_truncated(model, tokens):
    """`model.encode_text`, with the context cut to the longest prompt in the batch.

    The text tower's attention is causal and pools at the end-of-text token, so
    the padding after the longest prompt never influences the result: cutting
    it gives the same features for a fraction of the work (77 -> ~15 tokens).
    """
    import torch
    from open_clip.transformer import text_global_pool

    if getattr(model, "text_pool_type", None) not in ("argmax", "eos") or not hasattr(model, "attn_mask"):
        return model.encode_text(tokens)
    length = int((tokens != 0).sum(dim=1).max())
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is not None:
        x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
    return x
