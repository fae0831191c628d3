"""CLIP and SigLIP through transformers: `hf:<hub-id-or-folder>`.

transformers' tokenizer loading has two offline traps: with HF_HUB_OFFLINE
unset it retries the hub for minutes, and with it set it can hand back a
useless tokenizer that maps every word to one id. Loading is therefore
`local_files_only` unless the hub is reachable by configuration, and the
tokenizer is checked; a CLIP tokenizer can always be rebuilt from
open_clip's bundled vocabulary (it gives identical ids).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from index.types import Label

from .base import Backend, LinearHead, ModelError, PixelNorm
from .geometry import Geometry
from .clip_common import PrecisionChooser, text_head


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")



class HFClipBackend(Backend):
    def __init__(self, model, image_processor, tokenizer, *, spec: str, device: str, description: str):
        self.model = model.eval().to(device)
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.description = description
        self.model_type = model.config.model_type
        self.dim = int(getattr(model.config, "projection_dim", 0) or model.config.text_config.hidden_size)
        self.precision = PrecisionChooser(self.model, device)
        self.default_batch_size = 128 if device.startswith("cuda") else 32
        self.pixel_norm = processor_norm(image_processor)
        self._resize_crop = fast_resize_crop(image_processor) if self.pixel_norm else None

    @classmethod
    def load(cls, ident: str, device: str) -> "HFClipBackend":
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        folder = Path(ident).expanduser()
        local = folder.is_dir()
        if not local and (ident.startswith((".", "/", "~")) or ident.count("/") > 1):
            raise ModelError(f"The model folder {folder} does not exist. Check the path in --model.")
        source = str(folder) if local else ident
        only_local = local or hub_offline()
        try:
            model = AutoModel.from_pretrained(source, local_files_only=only_local)
            processor = AutoImageProcessor.from_pretrained(source, local_files_only=only_local)
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=only_local)
        except (OSError, ValueError) as exc:
            where = "that folder" if local else "the Hugging Face cache (offline)" if only_local else "the hub"
            raise ModelError(f"Could not load {ident!r} from {where}: {exc}") from exc
        if model.config.model_type not in ("clip", "siglip", "siglip2"):
            raise ModelError(
                f"{ident!r} is a {model.config.model_type} model; hf: takes CLIP or SigLIP models."
            )
        if not tokenizer_is_usable(tokenizer):
            if model.config.model_type != "clip":
                raise ModelError(f"The tokenizer of {ident!r} maps different words to the same ids.")
            tokenizer = clip_tokenizer_from_open_clip()
        return cls(model, processor, tokenizer, spec=f"hf:{ident}", device=device,
                   description=f"{model.config.model_type} {ident} via transformers")

    def preprocess(self, image):
        return self.image_processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"][0]

    def prepare(self, image):
        if self.pixel_norm is None:
            return self.preprocess(image)
        if self._resize_crop is not None:
            return self._resize_crop(image)
        return processor_pixels(self.image_processor, image)

    def geometry(self):
        return self._resize_crop

    def encode_images(self, pixels) -> np.ndarray:
        def encode(batch):
            return _pooled(self.model.get_image_features(pixel_values=batch))

        return self.precision.encode(encode, self.model_input(pixels)).cpu().numpy().astype(np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        # CLIP: pad to the longest prompt of the batch (causal attention: same result).
        # SigLIP was trained on max_length padding and needs it.
        padding = "max_length" if self.model_type.startswith("siglip") else True
        inputs = self.tokenizer(texts, padding=padding, truncation=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            return _pooled(self.model.get_text_features(**inputs)).float().cpu().numpy()

    def zero_shot_head(self, labels: Sequence[Label], templates: Sequence[str]) -> LinearHead:
        scale = float(self.model.logit_scale.exp().item())
        return text_head(labels, templates, self.encode_texts, scale)


def processor_pixels(processor, image):
    """The processor's resize and crop alone: uint8 (3, H, W)."""
    return processor(images=[image.convert("RGB")], do_rescale=False, do_normalize=False,
                     return_tensors="pt")["pixel_values"][0]


def fast_resize_crop(processor) -> Geometry | None:
    """The processor's resize and crop as a `Geometry`, only if it gives exactly the processor's
    pixels on probe images of both orientations; None for any other processor (which is then called)."""
    from PIL import Image

    size, crop = dict(getattr(processor, "size", None) or {}), dict(getattr(processor, "crop_size", None) or {})
    resample = int(getattr(processor, "resample", 3) or 3)
    if not getattr(processor, "do_resize", True) or resample not in (2, 3) or getattr(processor, "do_pad", False):
        return None
    if set(size) == {"shortest_edge"}:
        fast = Geometry(int(size["shortest_edge"]), None, None, resample == 3)
    elif set(size) == {"height", "width"}:
        fast = Geometry(None, (int(size["height"]), int(size["width"])), None, resample == 3)
    else:
        return None
    if getattr(processor, "do_center_crop", False):
        if set(crop) != {"height", "width"}:
            return None
        fast = replace(fast, crop=(int(crop["height"]), int(crop["width"])))
    rng = np.random.default_rng(0)
    # both orientations; 100x148 is cut from 224x331, whose crop offset rounds and floors differently
    for shape in ((61, 97, 3), (113, 40, 3), (100, 148, 3)):
        probe = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        expected = processor_pixels(processor, probe)
        got = fast(probe)
        if got.shape != expected.shape or not bool((got == expected).all()):
            return None
    return fast


def processor_norm(processor) -> PixelNorm | None:
    """The rescale and normalise steps of a transformers image processor, when it can
    leave them out and hand back uint8 pixels (its resize and crop alone); else None."""
    import torch
    from PIL import Image

    try:
        probe = processor(images=[Image.new("RGB", (9, 7))], do_rescale=False, do_normalize=False,
                          return_tensors="pt")["pixel_values"]
    except Exception:  # a processor that does not take these options: it is called whole, as before
        return None
    if probe.dtype != torch.uint8:
        return None
    scale = float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0
    if not getattr(processor, "do_normalize", True):
        return PixelNorm((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), scale)
    mean, std = processor.image_mean, processor.image_std
    mean = (mean,) * 3 if isinstance(mean, (int, float)) else mean
    std = (std,) * 3 if isinstance(std, (int, float)) else std
    return PixelNorm(tuple(float(m) for m in mean), tuple(float(s) for s in std), scale)


def _pooled(output):
    """transformers 5 returns a model output whose pooler_output is projected; 4.x a tensor."""
    return getattr(output, "pooler_output", output)


def tokenizer_is_usable(tokenizer) -> bool:
    ids = [tuple(tokenizer(word)["input_ids"]) for word in ("cat", "windmill", "red sneaker")]
    return len(set(ids)) == 3


@lru_cache(maxsize=1)
def clip_tokenizer_from_open_clip():
    """A transformers CLIPTokenizer built from open_clip's bundled BPE vocabulary (no hub)."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    simple = SimpleTokenizer()
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {rename.get(token, token): index for token, index in simple.encoder.items()}
    merges = [" ".join(pair) for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda kv: kv[1])]
    folder = Path(tempfile.mkdtemp(prefix="labelchat-clip-tokenizer-"))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>")
