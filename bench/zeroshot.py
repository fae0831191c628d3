"""Zero-shot benchmark: throughput against two baselines, peak memory, offline accuracy.

    python bench/zeroshot.py DATA [DATA ...] [--limit 200] [--batch-size 32] [--device cuda]

DATA is any folder laid out as <label>/<image>. In one run, on `--limit` images
of the first folder (topped up with distinct copies when it has fewer: a GPU
needs tens of thousands to show its rate) and a randomly initialised CLIP
ViT-B/32 (the same weights for every contender):

1. end-to-end `suggest` (media files on disk -> suggestions in the store) in
   images/s, as a ratio to the bare model forward pass on pre-decoded pixels
   at the same batch size and precision (goal >= 0.85). The bare pass gets
   the uint8 batches the pipeline's loader hands over, the strict baseline;
   the ratio to a bare pass on the model's own float input is printed too
   (on a GPU that one is bound by copying four times the bytes);
2. the same throughput as a ratio to transformers'
   pipeline("zero-shot-image-classification") on the same model, images and
   labels (goal >= 3);
3. peak resident memory of the process; on a CPU, the bare forward pass's FLOP/s as a share
   of the CPU's rate for one large matrix product of the same shape and precision (how much
   room any pipeline has left there);
4. top-1 accuracy of the offline backend on every DATA folder, default prompts;
5. the embedding pipeline's loader alone (read, decode, resize, crop, batch:
   what feeds the model) in images/s, handing over uint8 pixels as it does,
   as a ratio to the same loader running the model's own per-image float
   transform, and as a ratio to the bare forward pass: on a GPU, where the
   forward pass is fast, this is what end-to-end throughput is bound by. On
   a GPU also worker threads against worker processes, and worker processes
   that resize the images smaller than the model's input themselves against
   the default, which leaves them to the GPU;
6. what one worker does per image (µs on one thread, bytes handed over) when
   it resizes every image and when it leaves the small ones to the device,
   and the device's time for them: measurable on any machine, and what bounds
   a GPU's throughput.

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
from tools.loaders import (  # noqa: E402
    DEFAULT_WORKERS, SmallAsDecoded, _decode, collate, default_workers, loader_kind, pixel_batches)
from tools.ingest import IngestOptions, ingest  # noqa: E402
from tools.models import load_backend  # noqa: E402
from tools.zeroshot import suggest  # noqa: E402

PIPELINE_MAX_IMAGES = 2000  # the baseline holds its decoded images in memory; its rate is steady by then
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


def with_variants(rows: list[tuple[Path, str]], count: int, scratch: Path) -> list[tuple[Path, str]]:
    """`rows` topped up to `count` with distinct copies of its images (a GPU needs more images
    than a small folder has to show its throughput): mirrored every other time, with the copy's
    number written into two pixels so that every file has its own checksum; same format."""
    from concurrent.futures import ThreadPoolExecutor

    folder = scratch / "variants"
    folder.mkdir(exist_ok=True)
    jobs = [(n, *rows[n % len(rows)]) for n in range(len(rows), count)]

    def write(job) -> tuple[Path, str]:
        from PIL import Image, ImageOps

        n, path, label = job
        with Image.open(path) as image:
            copy = image.convert("RGB")
        copy = ImageOps.mirror(copy) if n % 2 else copy
        copy.putpixel((0, 0), (n % 256, n // 256 % 256, n // 65536 % 256))
        copy.putpixel((copy.width - 1, copy.height - 1), (n * 7 % 256, 0, 255))
        target = folder / f"{n:07d}{path.suffix.lower()}"
        copy.save(target, quality=92) if target.suffix in {".jpg", ".jpeg"} else copy.save(target)
        return target, label

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        return rows + list(pool.map(write, jobs))


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


def bare_forward(backend, paths: list[Path], batch_size: int, as_loaded: bool, held: int = 1024) -> float:
    """images/s of encode_images alone, on pixels decoded beforehand (at most `held` of them,
    cycled: as many images as `paths` pass through the model). `as_loaded`: uint8 batches
    stacked as the embedding pipeline's loader hands them over; else the float tensors of
    the model's own transform (`preprocess`), which on a GPU cost four times the bytes to copy."""
    import torch
    from PIL import Image

    if as_loaded:
        pixels = collate([(0, _decode(path, 0, backend.prepare)) for path in paths[: max(held, batch_size)]]).nchw()
    else:
        tensors = []
        for path in paths[: max(held, batch_size)]:
            with Image.open(path) as image:
                tensors.append(backend.preprocess(image.convert("RGB")))
        pixels = torch.stack(tensors)
    twice = torch.cat([pixels, pixels])  # a batch may wrap around the end
    batches = [twice[s % len(pixels) :][:batch_size] for s in range(0, len(paths), batch_size)]
    backend.encode_images(batches[0])  # warm-up; settles the precision choice
    started = time.perf_counter()
    for batch in batches:
        backend.encode_images(batch)
    return len(paths) / (time.perf_counter() - started)


def hardware_share(backend, batch_size: int, bare: float) -> dict[str, float]:
    """On a CPU: how close the bare forward pass is to the machine's limit. The image tower's
    FLOPs per image (counted by torch), times the bare images/s, against the rate of one large
    matrix product of the tower's own shape in the same precision."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model, dtype = backend.model, backend.precision.dtype
    config = model.config.vision_config
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.get_image_features(pixel_values=torch.zeros(1, 3, config.image_size, config.image_size, dtype=dtype))
    tokens = batch_size * ((config.image_size // config.patch_size) ** 2 + 1)
    a = torch.randn(tokens, config.hidden_size, dtype=dtype)
    b = torch.randn(config.hidden_size, config.intermediate_size, dtype=dtype)
    with torch.inference_mode():
        a @ b
        started, rounds = time.perf_counter(), 10
        for _ in range(rounds):
            a @ b
    matmul = 2 * tokens * config.hidden_size * config.intermediate_size * rounds / (time.perf_counter() - started)
    achieved = counter.get_total_flops() * bare
    return {"forward_gflop_per_image": round(counter.get_total_flops() / 1e9, 2),
            "forward_gflop_per_s": round(achieved / 1e9, 1), "matmul_gflop_per_s": round(matmul / 1e9, 1),
            "forward_share_of_matmul_rate": round(achieved / matmul, 3)}


def end_to_end(spec: str, rows, scratch: Path, batch_size: int, device: str = "cpu") -> tuple[float, float, float]:
    """(images/s of `suggest` from files to stored suggestions, ingest images/s,
    the share of `suggest`'s time spent embedding)."""
    with Project(scratch / f"project-{time.monotonic_ns()}") as project:
        started = time.perf_counter()
        ingest(project, [str(path) for path, _ in rows], IngestOptions(near_duplicate_distance=-1))
        ingest_rate = len(rows) / (time.perf_counter() - started)
        project.store.set_labels([Label(label_text(l)) for l in sorted({l for _, l in rows})])
        started = time.perf_counter()
        report = suggest(project, model=spec, batch_size=batch_size, device=device)
        seconds = time.perf_counter() - started
    return report.suggested / seconds, ingest_rate, report.embed.seconds / seconds


class OwnTransform:
    """A backend as the loader saw it before uint8 hand-over: each worker ran the full float transform."""

    def __init__(self, backend):
        self.backend, self.device = backend, backend.device

    def prepare(self, image):
        return self.backend.preprocess(image)


def loader_rates(backend, rows, scratch: Path, batch_size: int, rounds: int = 3) -> dict[str, float]:
    """Loader images/s, the median of `rounds` (interleaved) for each contender: "uint8" is
    the product's loader as `embed_items` picks it, "float" the same handing over the model's
    own per-image float transform; on a GPU also "threads" and "processes" (uint8, small
    images resized on the GPU, as `embed_items` does there) and "processes_resize_in_workers"."""
    import torch

    gpu = backend.device.startswith("cuda")
    with Project(scratch / f"loader-{time.monotonic_ns()}") as project:
        ingest(project, [str(path) for path, _ in rows], IngestOptions(near_duplicate_distance=-1))
        ids = [item.id for item in project.store.items()]
        chosen = loader_kind(backend, len(ids), batch_size)
        contenders = {"uint8": (backend, chosen, gpu), "float": (OwnTransform(backend), chosen, False)}
        if gpu:
            contenders.update(threads=(backend, "threads", True), processes=(backend, "processes", True),
                              processes_resize_in_workers=(backend, "processes", False))
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, (contender, kind, on_device) in contenders.items():
                started = time.perf_counter()
                batches = pixel_batches(project, contender, ids, batch_size, default_workers(kind), lambda: False,
                                        kind, on_device)
                count = sum(len(batch_ids) for batch_ids, _, _ in batches)
                if gpu:
                    torch.cuda.synchronize()
                rates[name].append(count / (time.perf_counter() - started))
    return {name: sorted(values)[rounds // 2] for name, values in rates.items()}


def worker_work(backend, paths: list[Path], batch_size: int) -> dict[str, float]:
    """What one worker does per image (read, decode, resize, crop, stack; one thread, µs) and
    the bytes it hands over, when it resizes every image and when it leaves the images smaller
    than the model's input to the device (as on a GPU); then the device's part, timed here on
    this device. On a GPU host the workers' part bounds the throughput (see loader_rates)."""
    import torch

    geometry = backend.device_geometry()
    if geometry is None:
        return {}
    contenders = {"resize_in_workers": backend.prepare, "small_left_to_device": SmallAsDecoded(backend.prepare, geometry)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one worker's share of the machine
    figures: dict[str, float] = {}
    try:
        for name, prepare in contenders.items():
            started, size, batches = time.perf_counter(), 0, []
            for start in range(0, len(paths), batch_size):
                chunk = paths[start : start + batch_size]
                batch = collate([(i, _decode(path, i, prepare)) for i, path in enumerate(chunk)])
                size += batch.pixels.numel()
                batches.append(batch)
            figures[f"{name}_us_per_image"] = round((time.perf_counter() - started) / len(paths) * 1e6, 1)
            figures[f"{name}_bytes_per_image"] = round(size / len(paths))
        torch.set_num_threads(threads)
        started = time.perf_counter()
        for batch in batches:
            batch.on_device(backend.device, geometry)
        if backend.device.startswith("cuda"):
            torch.cuda.synchronize()
        figures["device_resize_us_per_image"] = round((time.perf_counter() - started) / len(paths) * 1e6, 1)
    finally:
        torch.set_num_threads(threads)
    return figures


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
    parser.add_argument("--limit", type=int, default=200,
                        help="images for the throughput runs (beyond the folder's count: distinct copies)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--loader-rounds", type=int, default=3, help="loader timings per contender (median)")
    parser.add_argument("--skip-pipeline", action="store_true", help="skip the slow transformers baseline")
    parser.add_argument("--skip-accuracy", action="store_true", help="skip the offline backend's accuracy")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: the same for every contender")
    args = parser.parse_args()
    figures: dict = {"data": [str(d) for d in args.data], "batch_size": args.batch_size, "device": args.device}
    with tempfile.TemporaryDirectory(prefix="labelchat-bench-") as tmp:
        scratch = Path(tmp)
        rows = labelled_images(args.data[0], args.limit)
        if args.limit and args.limit > len(rows):
            rows = with_variants(rows, args.limit, scratch)
        figures["throughput_images"] = len(rows)
        folder = random_vit_b32_folder(scratch)
        spec = f"hf:{folder}"
        backend = load_backend(spec, args.device)
        bare = bare_forward(backend, [p for p, _ in rows], args.batch_size, as_loaded=True)
        bare_float = bare_forward(backend, [p for p, _ in rows], args.batch_size, as_loaded=False)
        e2e, ingest_rate, embed_share = end_to_end(spec, rows, scratch, args.batch_size, args.device)
        figures.update(
            model="random CLIP ViT-B/32 (transformers)",
            precision="float16 autocast" if args.device.startswith("cuda") else str(backend.precision.dtype).replace("torch.", ""),
            bare_forward_images_per_s=round(bare, 2),
            bare_forward_float_input_images_per_s=round(bare_float, 2),
            suggest_images_per_s=round(e2e, 2),
            ingest_images_per_s=round(ingest_rate, 1),
            suggest_share_embedding=round(embed_share, 3),
            ratio_suggest_to_bare_forward=round(e2e / bare, 3),
            ratio_suggest_to_bare_forward_float_input=round(e2e / bare_float, 3),
        )
        print(f"bare forward {bare:.1f} img/s (uint8 as loaded; {bare_float:.1f} on float input) "
              f"| suggest end to end {e2e:.1f} img/s | ratio {e2e / bare:.2f} (goal >= 0.85; "
              f"{e2e / bare_float:.2f} to the float-input forward)", file=sys.stderr)
        if args.device == "cpu":
            share = figures["cpu_limit"] = hardware_share(backend, args.batch_size, bare)
            print(f"the bare forward pass does {share['forward_gflop_per_s']:.0f} GFLOP/s: "
                  f"{share['forward_share_of_matmul_rate']:.0%} of this CPU's rate for one large matrix product of "
                  f"the tower's shape in {figures['precision']} ({share['matmul_gflop_per_s']:.0f} GFLOP/s)",
                  file=sys.stderr)
        loaders = loader_rates(backend, rows, scratch, args.batch_size, args.loader_rounds)
        loader, loader_float = loaders["uint8"], loaders["float"]
        figures.update(
            loader_kind=loader_kind(backend, len(rows), args.batch_size),
            loader_images_per_s=round(loader, 1),
            loader_own_transform_images_per_s=round(loader_float, 1),
            ratio_loader_to_own_transform=round(loader / loader_float, 2),
            ratio_loader_to_bare_forward=round(loader / bare, 2),
        )
        if "processes" in loaders:
            in_workers = loaders["processes_resize_in_workers"]
            figures.update(loader_threads_images_per_s=round(loaders["threads"], 1),
                           loader_processes_images_per_s=round(loaders["processes"], 1),
                           loader_processes_resize_in_workers_images_per_s=round(in_workers, 1),
                           ratio_loader_processes_to_threads=round(loaders["processes"] / loaders["threads"], 2),
                           ratio_loader_resize_on_device_to_in_workers=round(loaders["processes"] / in_workers, 2))
            print(f"loader, {DEFAULT_WORKERS} threads {loaders['threads']:.0f} img/s | "
                  f"{default_workers('processes')} processes {loaders['processes']:.0f} img/s "
                  f"({in_workers:.0f} when they resize the small images too)", file=sys.stderr)
        work = worker_work(backend, [p for p, _ in rows], args.batch_size)
        if work:
            figures["worker_work"] = work
            print(f"one worker, per image: {work['resize_in_workers_us_per_image']:.0f} µs and "
                  f"{work['resize_in_workers_bytes_per_image'] / 1024:.1f} KB handed over when it resizes everything, "
                  f"{work['small_left_to_device_us_per_image']:.0f} µs and "
                  f"{work['small_left_to_device_bytes_per_image'] / 1024:.1f} KB when the images smaller than the "
                  f"model's input are left to the device (which spends {work['device_resize_us_per_image']:.0f} µs "
                  f"on them here, on {args.device}) | ratio "
                  f"{work['resize_in_workers_us_per_image'] / work['small_left_to_device_us_per_image']:.2f}",
                  file=sys.stderr)
        print(f"loader (uint8) {loader:.0f} img/s | with the model's own float transform {loader_float:.0f} img/s "
              f"| ratio {loader / loader_float:.2f} | loader / bare forward {loader / bare:.2f}", file=sys.stderr)
        if not args.skip_pipeline:
            reference = transformers_pipeline(folder, rows[:PIPELINE_MAX_IMAGES], args.batch_size, args.device)
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
