"""Zero-shot benchmark: throughput against two baselines, peak memory, offline accuracy.

    python bench/zeroshot.py DATA [DATA ...] [--limit 200] [--batch-size 32]

DATA is any folder laid out as <label>/<image>. In one run, on the images of
the first folder and a randomly initialised CLIP ViT-B/32 (the same weights
for every contender):

1. end-to-end `suggest` (media files on disk -> suggestions in the store) in
   images/s, as a ratio to the bare model forward pass on pre-decoded tensors
   at the same batch size and precision (goal >= 0.85);
2. the same throughput as a ratio to transformers'
   pipeline("zero-shot-image-classification") on the same model, images and
   labels (goal >= 3);
3. peak resident memory of the process;
4. top-1 accuracy of the offline backend on every DATA folder, default prompts;
5. the embedding pipeline's loader alone (read, decode, resize, crop, batch:
   what feeds the model) in images/s, handing over uint8 pixels as it does,
   as a ratio to the same loader running the model's own per-image float
   transform, and as a ratio to the bare forward pass: on a GPU, where the
   forward pass is fast, this is what end-to-end throughput is bound by.

Ends with one JSON line of all figures. Needs no network (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from index.project import Project  # noqa: E402
from index.types import Label  # noqa: E402
from tools.ingest import IngestOptions, ingest  # noqa: E402
from tools.models import load_backend  # noqa: E402
from tools.zeroshot import suggest  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


def labelled_images(folder: Path, limit: int | None = None) -> list[tuple[Path, str]]:
    """(path, label) for a <label>/<image> folder, interleaved across labels."""
    per_label = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(folder.iterdir())
        if d.is_dir()
    }
    rows, index = [], 0
    while any(index < len(paths) for paths in per_label.values()):
        rows += [(paths[index], label) for label, paths in per_label.items() if index < len(paths)]
        index += 1
    return rows[:limit] if limit else rows


def label_text(folder_name: str) -> str:
    return folder_name.replace("_", " ")


def random_vit_b32_folder(scratch: Path) -> Path:
    """A random CLIP ViT-B/32 saved as a transformers folder, with tokenizer and processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from tools.models.hf import clip_tokenizer_from_open_clip

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, image_size=224, patch_size=32),
        projection_dim=512,
    )
    folder = scratch / "random-clip-vit-b-32"
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(folder)
    clip_tokenizer_from_open_clip().save_pretrained(folder)
    return folder


def bare_forward(backend, paths: list[Path], batch_size: int) -> float:
    """images/s of encode_images alone, on tensors decoded and preprocessed beforehand."""
    import torch
    from PIL import Image

    tensors = []
    for path in paths:
        with Image.open(path) as image:
            tensors.append(backend.preprocess(image.convert("RGB")))
    pixels = torch.stack(tensors)
    backend.encode_images(pixels[:batch_size])  # warm-up; settles the precision choice
    started = time.perf_counter()
    for start in range(0, len(pixels), batch_size):
        backend.encode_images(pixels[start : start + batch_size])
    return len(pixels) / (time.perf_counter() - started)


def end_to_end(spec: str, rows, scratch: Path, batch_size: int, device: str = "cpu") -> tuple[float, float]:
    """(images/s of `suggest` from files to stored suggestions, ingest images/s)."""
    with Project(scratch / f"project-{time.monotonic_ns()}") as project:
        started = time.perf_counter()
        ingest(project, [str(path) for path, _ in rows], IngestOptions())
        ingest_rate = len(rows) / (time.perf_counter() - started)
        project.store.set_labels([Label(label_text(l)) for l in sorted({l for _, l in rows})])
        started = time.perf_counter()
        report = suggest(project, model=spec, batch_size=batch_size, device=device)
        rate = report.suggested / (time.perf_counter() - started)
    return rate, ingest_rate


class OwnTransform:
    """A backend as the loader saw it before uint8 hand-over: each worker ran the full float transform."""

    def __init__(self, backend):
        self.backend, self.device = backend, backend.device

    def prepare(self, image):
        return self.backend.preprocess(image)


def loader_rates(backend, rows, scratch: Path, batch_size: int, rounds: int = 3) -> tuple[float, float]:
    """(uint8 loader images/s, float loader images/s): the median of `rounds`, interleaved."""
    from tools.embed import DEFAULT_WORKERS, pixel_batches

    with Project(scratch / f"loader-{time.monotonic_ns()}") as project:
        ingest(project, [str(path) for path, _ in rows], IngestOptions(near_duplicate_distance=-1))
        ids = [item.id for item in project.store.items()]
        rates: dict[str, list[float]] = {"uint8": [], "float": []}
        for _ in range(rounds):
            for name, contender in (("uint8", backend), ("float", OwnTransform(backend))):
                started = time.perf_counter()
                count = sum(len(batch_ids) for batch_ids, _, _ in
                            pixel_batches(project, contender, ids, batch_size, DEFAULT_WORKERS, lambda: False))
                rates[name].append(count / (time.perf_counter() - started))
    return sorted(rates["uint8"])[rounds // 2], sorted(rates["float"])[rounds // 2]


def transformers_pipeline(folder: Path, rows, batch_size: int, device: str = "cpu") -> float:
    from PIL import Image
    from transformers import pipeline

    classify = pipeline("zero-shot-image-classification", model=str(folder), device=device)
    labels = sorted({label_text(l) for _, l in rows})
    images = []
    for path, _ in rows:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    started = time.perf_counter()
    classify(images, candidate_labels=labels, batch_size=batch_size)
    return len(images) / (time.perf_counter() - started)


def offline_accuracy(folder: Path, scratch: Path) -> dict:
    rows = labelled_images(folder)
    with Project(scratch / f"acc-{folder.name}-{time.monotonic_ns()}") as project:
        ingest(project, [str(path) for path, _ in rows], IngestOptions(near_duplicate_distance=-1))
        names = sorted({l for _, l in rows})
        project.store.set_labels([Label(label_text(n)) for n in names])
        started = time.perf_counter()
        suggest(project, model="offline")
        seconds = time.perf_counter() - started
        truth = {}
        for path, label in rows:
            truth.setdefault(_sha(path), label_text(label))
        hits = total = 0
        for item in project.store.items():
            top = project.store.suggestions(item.id)
            total += 1
            hits += bool(top) and top[0].label == truth[item.sha256]
    return {"images": total, "top1": round(hits / total, 4), "images_per_s": round(total / seconds, 1)}


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", type=Path, help="<label>/<image> folders")
    parser.add_argument("--limit", type=int, default=200, help="images for the throughput runs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip-pipeline", action="store_true", help="skip the slow transformers baseline")
    parser.add_argument("--skip-accuracy", action="store_true", help="skip the offline backend's accuracy")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: the same for every contender")
    args = parser.parse_args()
    figures: dict = {"data": [str(d) for d in args.data], "batch_size": args.batch_size, "device": args.device}
    with tempfile.TemporaryDirectory(prefix="labelchat-bench-") as tmp:
        scratch = Path(tmp)
        rows = labelled_images(args.data[0], args.limit)
        figures["throughput_images"] = len(rows)
        folder = random_vit_b32_folder(scratch)
        spec = f"hf:{folder}"
        backend = load_backend(spec, args.device)
        bare = bare_forward(backend, [p for p, _ in rows], args.batch_size)
        e2e, ingest_rate = end_to_end(spec, rows, scratch, args.batch_size, args.device)
        figures.update(
            model="random CLIP ViT-B/32 (transformers)",
            precision="float16 autocast" if args.device.startswith("cuda") else str(backend.precision.dtype).replace("torch.", ""),
            bare_forward_images_per_s=round(bare, 2),
            suggest_images_per_s=round(e2e, 2),
            ingest_images_per_s=round(ingest_rate, 1),
            ratio_suggest_to_bare_forward=round(e2e / bare, 3),
        )
        print(f"bare forward {bare:.1f} img/s | suggest end to end {e2e:.1f} img/s "
              f"| ratio {e2e / bare:.2f} (goal >= 0.85)", file=sys.stderr)
        loader, loader_float = loader_rates(backend, rows, scratch, args.batch_size)
        figures.update(
            loader_images_per_s=round(loader, 1),
            loader_own_transform_images_per_s=round(loader_float, 1),
            ratio_loader_to_own_transform=round(loader / loader_float, 2),
            ratio_loader_to_bare_forward=round(loader / bare, 2),
        )
        print(f"loader (uint8) {loader:.0f} img/s | with the model's own float transform {loader_float:.0f} img/s "
              f"| ratio {loader / loader_float:.2f} | loader / bare forward {loader / bare:.2f}", file=sys.stderr)
        if not args.skip_pipeline:
            reference = transformers_pipeline(folder, rows, args.batch_size, args.device)
            figures["transformers_pipeline_images_per_s"] = round(reference, 2)
            figures["ratio_suggest_to_transformers_pipeline"] = round(e2e / reference, 2)
            print(f"transformers pipeline {reference:.1f} img/s | ratio {e2e / reference:.2f} (goal >= 3)",
                  file=sys.stderr)
        figures["offline_top1"] = {}
        for data in [] if args.skip_accuracy else args.data:
            result = offline_accuracy(data, scratch)
            figures["offline_top1"][data.name] = result
            print(f"offline backend on {data.name}: top-1 {result['top1']:.3f} "
                  f"({result['images']} images, {result['images_per_s']} img/s)", file=sys.stderr)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
