"""Weights on disk: safetensors only, written atomically, read with clear errors.

Pickled weights (.pt, .bin, .pth) can run code when loaded, so labelchat never
loads them from a project or an imported model version: only safetensors,
whose loader reads plain arrays. Every write goes to a temporary file that is
renamed over the old one, so a full disk or a crash leaves the previous file
whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.errors import LabelchatError

from ..models.base import ZeroShotHead, head_from_arrays

if TYPE_CHECKING:  # pragma: no cover
    import torch

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".ckpt")


class CheckpointError(LabelchatError):
    """A weights file that cannot be written or read."""


def write_atomic(path: Path, write) -> None:
    """Call write(temporary_path), then rename it to `path`; nothing half-written is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except Exception as exc:  # OSError, or safetensors' own error wrapping one ("File too large")
        temporary.unlink(missing_ok=True)
        raise CheckpointError(
            f"Could not write {path}: {getattr(exc, 'strerror', None) or exc}. The previous file is kept. "
            f"Free some disk space (or choose another project folder) and resume with "
            f"labelchat train --resume."
        ) from exc


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, lambda p: p.write_text(json.dumps(data, indent=1)))


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} cannot be read ({exc}); it is damaged or missing.") from exc


def save_tensors(path: Path, tensors: dict[str, "torch.Tensor"], metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    write_atomic(path, lambda p: save_file(contiguous, str(p), metadata=metadata))


def load_tensors(path: Path) -> dict[str, "torch.Tensor"]:
    from safetensors.torch import load_file

    refuse_pickle(path)
    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError: damaged, truncated, or not safetensors at all
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}). It is damaged or was not "
            f"written by labelchat; train again (labelchat train --restart) or re-export the version."
        ) from exc


def refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES or not path.name.endswith(".safetensors"):
        raise CheckpointError(
            f"{path} is not a .safetensors file. labelchat loads model weights only from "
            f"safetensors, never from pickled files (.pt, .bin, .pth), because loading those can "
            f"run arbitrary code. Convert trusted weights with safetensors.torch.save_file."
        )


def save_head(path: Path, head: ZeroShotHead) -> None:
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in head.arrays().items() if v.dtype.kind != "U"}
    kinds = {k: str(v) for k, v in head.arrays().items() if v.dtype.kind == "U"}
    metadata = {"type": type(head).__name__, "labels": json.dumps(list(head.labels)), "strings": json.dumps(kinds)}
    write_atomic(path, lambda p: save_file(arrays, str(p), metadata=metadata))


def load_head(path: Path) -> ZeroShotHead:
    from safetensors import safe_open

    refuse_pickle(path)
    try:
        with safe_open(str(path), framework="np") as stored:
            metadata = stored.metadata() or {}
            arrays = {name: stored.get_tensor(name) for name in stored.keys()}
        kind, labels = metadata["type"], tuple(json.loads(metadata["labels"]))
        arrays.update({k: np.array(v) for k, v in json.loads(metadata.get("strings", "{}")).items()})
        return head_from_arrays(kind, labels, arrays)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable labelchat head ({type(exc).__name__}: {exc}).") from exc
