"""Top-1 accuracy and speed of the offline backend on a <label>/<image> folder.

    .venv/bin/python bench/offline_bridge.py /work/shared/data/photos-tiny [--ablations]

Runs the product path end to end: PIL load -> OfflineBackend.preprocess (in
worker threads) -> encode_images in batches -> zero_shot_head(...).probabilities.
Labels are the folder names with '_' read as ' '. With --ablations, the same
image features are also scored with the alternatives this backend was chosen
against (no second pass over the images). The last line printed is one JSON
object with the figures. Nothing is written to disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.types import Label  # noqa: E402
from tools.models.base import BridgeHead, softmax  # noqa: E402
from tools.models.offline import OfflineBackend  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def list_images(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """Label names (sorted folder names, '_' -> ' ') and (path, label index) pairs."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    items = [
        (path, index)
        for index, folder in enumerate(folders)
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
    return [folder.name.replace("_", " ") for folder in folders], items


def load_and_preprocess(backend: OfflineBackend, path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return backend.preprocess(image)


def encode_all(backend: OfflineBackend, paths: list[Path], batch_size: int, workers: int) -> np.ndarray:
    import torch

    batches = [paths[start : start + batch_size] for start in range(0, len(paths), batch_size)]
    features = []
    with ThreadPoolExecutor(workers) as pool:

        def submit(batch: list[Path]) -> list:
            return [pool.submit(load_and_preprocess, backend, path) for path in batch]

        pending = submit(batches[0])
        for index in range(len(batches)):
            ready = [future.result() for future in pending]
            if index + 1 < len(batches):
                pending = submit(batches[index + 1])  # decode the next batch while this one encodes
            features.append(backend.encode_images(torch.stack(ready)))
    return np.concatenate(features)


def row_softmax_head(backend: OfflineBackend, labels: list[Label], temperature: float) -> BridgeHead:
    """The earlier baseline: each ImageNet class spread over the labels by softmax(similarity / T)."""
    bridge = softmax(backend.similarity(labels) / temperature).astype(np.float32)
    return BridgeHead(tuple(label.name for label in labels), *backend.imagenet_classifier(), bridge)


def ablations(backend: OfflineBackend, names: list[str], features: np.ndarray, truth: np.ndarray) -> dict:
    bare = [Label(name) for name in names]
    photo = [Label(f"a photo of a {name}") for name in names]

    def accuracy(head: BridgeHead) -> float:
        return float((head.probabilities(features).argmax(1) == truth).mean())

    results = {f"class-distribution T={t}": accuracy(backend.bridge_head(bare, t))
               for t in (0.03, 0.05, 0.075, 0.1)}
    results["class-distribution T=0.05, 'a photo of a {label}'"] = accuracy(backend.bridge_head(photo))
    for t in (0.1, 0.2):
        results[f"row-softmax baseline T={t}"] = accuracy(row_softmax_head(backend, bare, t))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a folder of <label>/<image> folders")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=OfflineBackend.default_batch_size)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--ablations", action="store_true", help="also score the alternatives on the same features")
    args = parser.parse_args()

    names, items = list_images(args.data)
    truth = np.array([index for _, index in items])
    backend = OfflineBackend(device=args.device)

    started = time.perf_counter()
    head = backend.zero_shot_head([Label(name) for name in names], ())
    head_s = time.perf_counter() - started  # loads MiniLM and embeds the 1000 class texts once

    encode_all(backend, [items[0][0]], 1, 1)  # load the image model outside the timing
    started = time.perf_counter()
    features = encode_all(backend, [path for path, _ in items], args.batch_size, args.workers)
    images_s = len(items) / (time.perf_counter() - started)

    predictions = head.probabilities(features).argmax(1)
    top1 = float((predictions == truth).mean())
    per_label = {name: float((predictions[truth == i] == i).mean()) for i, name in enumerate(names)}
    print(f"{args.data.name}: {len(items)} images, {len(names)} labels")
    print(f"top-1 accuracy {top1:.3f}; {images_s:.1f} images/s (load, preprocess, encode); "
          f"first head {head_s:.1f}s")
    for name, value in per_label.items():
        print(f"  {name:>16}: {value:.2f}")
    figures = {"data": str(args.data), "images": len(items), "labels": len(names), "top1": round(top1, 4),
               "images_per_s": round(images_s, 2), "first_head_s": round(head_s, 2),
               "device": args.device, "spec": backend.spec}
    if args.ablations:
        figures["ablations"] = {k: round(v, 4) for k, v in ablations(backend, names, features, truth).items()}
        for name, value in figures["ablations"].items():
            print(f"  ablation {name}: {value:.3f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
