"""Model specs and loading: one obvious default, explicit alternatives, loaded once per process.

    openclip:<arch>/<pretrained>   real CLIP via open_clip (default: openclip:ViT-B-32/laion2b_s34b_b79k)
    hf:<hub-id-or-folder>          CLIP or SigLIP via transformers
    offline                        EfficientNet-Lite0 (ImageNet) + MiniLM text bridge, weights from pip packages
    openclip:tiny/random, hf:tiny-random   tiny random CLIPs, for tests and benchmarks

The spec comes from --model, else $LABELCHAT_MODEL, else the project's setting,
else the default. Weights are read from the local Hugging Face cache only:
nothing is downloaded unless asked for (`labelchat fetch-model`, or
LABELCHAT_ALLOW_DOWNLOAD=1), so no run touches the network by surprise. When
the default's weights are not there, labelchat falls back to `offline` with
one notice saying how to get CLIP.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable

from .base import Backend, ModelError
from .offline import SPEC as OFFLINE_SPEC  # a light import: torch loads only with the model

DEFAULT_SPEC = "openclip:ViT-B-32/laion2b_s34b_b79k"
OFFLINE_NAME = OFFLINE_SPEC.partition(":")[2]
MODEL_ENV = "LABELCHAT_MODEL"
MODEL_SETTING = "model"
DOWNLOAD_ENV = "LABELCHAT_ALLOW_DOWNLOAD"

_loaded: dict[tuple[str, str], Backend] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "openclip", "hf", "offline"
    name: str  # arch for openclip, hub id or folder for hf
    weights: str = ""  # open_clip pretrained tag or file

    def __str__(self) -> str:
        if self.kind == "openclip":
            return f"openclip:{self.name}/{self.weights}"
        if self.kind == "hf":
            return f"hf:{self.name}"
        return OFFLINE_SPEC


def parse_spec(text: str) -> ModelSpec:
    text = text.strip()
    kind, _, rest = text.partition(":")
    # the spec before middle-stage features (1280-d) names the same backend: its projects re-embed
    if kind == "offline" and rest in ("", OFFLINE_NAME, "efficientnet-lite0+minilm"):
        return ModelSpec("offline", OFFLINE_NAME)
    if kind == "openclip" and "/" in rest and rest.split("/", 1)[0] and rest.split("/", 1)[1]:
        arch, weights = rest.split("/", 1)
        return ModelSpec("openclip", arch, weights)
    if kind == "hf" and rest:
        return ModelSpec("hf", rest)
    raise ModelError(
        f"Unknown model spec {text!r}. Use openclip:<arch>/<pretrained> (e.g. {DEFAULT_SPEC}), "
        f"hf:<hub-id-or-folder> (e.g. hf:openai/clip-vit-base-patch32), or offline."
    )


def resolve_spec(requested: str | None, project_setting: str | None = None) -> tuple[str, bool]:
    """(spec, whether it is the implied default rather than a choice someone made)."""
    chosen = requested or os.environ.get(MODEL_ENV) or project_setting
    return (chosen, False) if chosen else (DEFAULT_SPEC, True)


def load_backend(
    spec: str,
    device: str | None = None,
    *,
    fallback: bool = False,
    on_notice: Callable[[str], None] | None = None,
    allow_download: bool | None = None,
) -> Backend:
    """The backend for `spec`, loaded once per process and device.

    With `fallback`, a spec whose weights cannot be had gives the offline
    backend instead, after one notice through `on_notice`.
    """
    from .device import pick_device

    parsed = parse_spec(spec)
    device = pick_device(device)
    if allow_download is None:
        allow_download = os.environ.get(DOWNLOAD_ENV, "").lower() in ("1", "true", "yes")
    _hub_offline(not allow_download)
    with _lock:
        try:
            return _cached(parsed, device)
        except ModelError as exc:
            if not fallback or parsed.kind == "offline":
                raise
            if on_notice:
                on_notice(_fallback_notice(str(parsed), exc))
            return _cached(parse_spec(OFFLINE_SPEC), device)


def _cached(spec: ModelSpec, device: str) -> Backend:
    key = (str(spec), device)
    if key not in _loaded:
        _loaded[key] = _load(spec, device)
    return _loaded[key]


def _hub_offline(offline: bool) -> None:
    """Tell huggingface_hub (and so open_clip and transformers) whether it may use the network."""
    os.environ["HF_HUB_OFFLINE"] = "1" if offline else "0"
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: it read the variable at import time
        constants.HF_HUB_OFFLINE = offline


def _load(spec: ModelSpec, device: str) -> Backend:
    if spec.kind == "openclip" and spec.name == "tiny":
        from .tiny import tiny_openclip

        return tiny_openclip(device)
    if spec.kind == "hf" and spec.name == "tiny-random":
        from .tiny import tiny_hf_clip

        return tiny_hf_clip(device)
    # Without these, an unreachable hub can stall a load for minutes.
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "20")
    if spec.kind == "openclip":
        from .openclip import OpenClipBackend

        return OpenClipBackend.load(spec.name, spec.weights, device)
    if spec.kind == "hf":
        from .hf import HFClipBackend

        return HFClipBackend.load(spec.name, device)
    from .offline import OfflineBackend

    return OfflineBackend(device=device)


def _fallback_notice(spec: str, error: ModelError) -> str:
    return (
        f"CLIP weights for {spec} could not be had ({error}). Using the offline backend instead "
        f"({OFFLINE_SPEC}: an ImageNet EfficientNet-Lite0 bridged to your labels by text "
        f"similarity; it works without network but is less accurate than CLIP). To use CLIP, run "
        f"'labelchat fetch-model' once on a machine with network access, or pass a local weights "
        f"file by its absolute path, after a double slash: --model openclip:ViT-B-32//path/to/model.safetensors"
    )


__all__ = [
    "Backend",
    "DEFAULT_SPEC",
    "ModelError",
    "ModelSpec",
    "OFFLINE_SPEC",
    "load_backend",
    "parse_spec",
    "resolve_spec",
]
