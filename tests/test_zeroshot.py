"""Suggestions end to end on real photos: caching, recomputation, bad input, prelabel."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imagefiles
from index.errors import LabelchatError
from index.project import Project
from index.types import Label
from tools.embed import embed_items
from tools.ingest import ingest
from tools.models import load_backend
from tools.zeroshot import suggest

TINY = "openclip:tiny/random"
LABELCHAT = Path(sys.executable).parent / "labelchat"


@pytest.fixture
def photos_project(project, photos_dir):
    ingest(project, [str(photos_dir)])
    project.store.set_labels([Label(n) for n in ["fish", "mammal", "monument", "tool", "windmill"]])
    return project


def test_every_image_gets_ranked_calibrated_suggestions(photos_project):
    report = suggest(photos_project, model=TINY)
    assert report.suggested == 94 and report.embed.embedded == 94
    for item in photos_project.store.items():
        top = photos_project.store.suggestions(item.id)
        scores = [s.score for s in top]
        assert len(top) == 5 and scores == sorted(scores, reverse=True)
        assert 0.99 <= sum(scores) <= 1.0 + 1e-6  # all five labels: a full distribution
        assert {s.model for s in top} == {TINY} and {s.method for s in top} == {"zero-shot"}
    counts = photos_project.store.status()
    assert sum(c.suggested for c in counts.by_label) == 94


def test_nothing_is_recomputed_until_labels_prompts_or_model_change(photos_project):
    suggest(photos_project, model=TINY)
    again = suggest(photos_project, model=TINY)
    assert (again.suggested, again.up_to_date) == (0, 94)
    assert again.embed is None  # answered from the store without loading the model
    photos_project.store.add_labels([Label("bird")])
    changed = suggest(photos_project, model=TINY)
    assert changed.suggested == 94 and changed.embed.embedded == 0  # features were cached
    other_prompts = suggest(photos_project, model=TINY, template_set="short")
    assert other_prompts.suggested == 94
    other_model = suggest(photos_project, model="hf:tiny-random")
    assert other_model.suggested == 94 and other_model.embed.embedded == 94
    assert len(photos_project.store.embedded_item_ids(TINY)) == 94


def test_the_project_model_setting_and_env_choose_the_backend(photos_project, monkeypatch):
    photos_project.store.set_setting("model", "hf:tiny-random")
    assert suggest(photos_project).model == "hf:tiny-random"
    monkeypatch.setenv("LABELCHAT_MODEL", TINY)
    assert suggest(photos_project).model == TINY


def test_label_sets_that_cannot_work_are_refused(photos_project):
    photos_project.store.set_labels([Label("fish")])
    with pytest.raises(LabelchatError, match="at least two labels \\(only 'fish'\\)"):
        suggest(photos_project, model=TINY)
    photos_project.store.set_labels([])
    with pytest.raises(LabelchatError, match="at least two labels"):
        suggest(photos_project, model=TINY)


def test_thousands_of_labels(photos_project):
    photos_project.store.set_labels([Label(f"class {i}") for i in range(3000)])
    report = suggest(photos_project, model=TINY, template_set="short")
    assert report.suggested == 94 and report.labels == 3000
    assert len(photos_project.store.suggestions(photos_project.store.items()[0].id)) == 5


def test_a_file_damaged_after_ingest_is_skipped_and_the_rest_goes_on(photos_project):
    victim = photos_project.store.items()[3]
    photos_project.media.path(victim.media_path).write_bytes(b"\xff\xd8\xff garbage")
    report = suggest(photos_project, model=TINY)
    assert report.suggested == 93
    (problem,) = report.embed.problems
    assert f"item {victim.id} cannot be decoded" in problem.message
    assert photos_project.store.suggestions(victim.id) == []


def test_worker_processes_embed_exactly_as_threads_do_and_skip_damaged_files(photos_project, photos_dir, tmp_path):
    """The GPU loader (forked worker processes) on this CPU: same vectors, same order, same problems."""
    backend = load_backend(TINY, "cpu")
    with Project(tmp_path / "by-threads") as twin:
        ingest(twin, [str(photos_dir)])
        victim = photos_project.store.items()[40]
        for project in (photos_project, twin):
            project.media.path(victim.media_path).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        by_threads = embed_items(twin, backend, batch_size=16, loader="threads")
        expected_ids, expected = twin.store.embeddings(TINY)
    by_processes = embed_items(photos_project, backend, batch_size=16, workers=2, loader="processes")
    assert (by_processes.loader, by_processes.embedded, by_threads.embedded) == ("processes", 93, 93)
    (problem,) = by_processes.problems
    assert f"item {victim.id} cannot be decoded" in problem.message
    ids, vectors = photos_project.store.embeddings(TINY)
    assert list(ids) == list(expected_ids) and victim.id not in ids
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
@pytest.mark.parametrize("spec", [TINY, "hf:tiny-random", "offline"])
def test_images_smaller_than_the_input_resized_on_the_device_embed_as_the_workers_resize_does(
        spec, device, tmp_path, photos_dir, fashion_dir):
    """What a GPU does with thumbnails (28x28 product photos here, and for the offline model's 224
    input most demo photos too): the workers hand them over as decoded, the device resizes
    them, a batch per size; threads and processes both, on the CPU (and on a GPU where there is one)."""
    backend = load_backend(spec, device)
    sources = [str(path) for path in sorted(fashion_dir.glob("*/*.png"))[:20]] + [str(photos_dir / "tool")]
    found = {}
    for resize_on_device, loader in ((False, "threads"), (True, "threads"), (True, "processes")):
        with Project(tmp_path / f"{resize_on_device}-{loader}") as project:
            ingest(project, sources)
            victim = project.store.items()[5]
            project.media.path(victim.media_path).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
            report = embed_items(project, backend, batch_size=16, workers=2, loader=loader,
                                 resize_on_device=resize_on_device)
            assert report.resized_on_device == resize_on_device
            assert (report.embedded, len(report.problems)) == (39, 1)
            found[resize_on_device, loader] = project.store.embeddings(backend.spec)
    expected_ids, expected = found[False, "threads"]
    for key in ((True, "threads"), (True, "processes")):
        ids, vectors = found[key]
        assert list(ids) == list(expected_ids)
        cosine = (vectors * expected).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(expected, axis=1)
        assert cosine.min() > 0.9999, key


def test_images_of_different_sizes_travel_end_to_end_and_are_resized_a_size_at_a_time():
    from tools.loaders import SmallAsDecoded, collate
    from tools.models.pixels import uint8_pixels
    from tools.models.geometry import Geometry

    geometry = Geometry(32, None, (32, 32), bicubic=True)
    small = SmallAsDecoded(geometry, geometry)  # images of 32x32 pixels or more are prepared by `geometry`
    images = [imagefiles.noise_image(i, size) for i, size in enumerate([(28, 20), (12, 12), (28, 20), (32, 32), (90, 40)])]
    handed = [small(image) for image in images]
    assert [tuple(h.shape[1:]) for h in handed] == [(20, 28), (12, 12), (20, 28), (32, 32), (32, 32)]
    batch = collate(list(enumerate(handed)))
    assert batch.shapes == [(20, 28), (12, 12), (20, 28), (32, 32), (32, 32)]
    assert batch.pixels.numel() == 3 * (2 * 20 * 28 + 12 * 12 + 2 * 32 * 32)  # the bytes as decoded, end to end
    one_at_a_time = [geometry.on_batch(uint8_pixels(image)[None])[0] for image in images[:3]] + handed[3:]
    assert torch.equal(batch.on_device("cpu", geometry), torch.stack(one_at_a_time))
    same_size = collate(list(enumerate([handed[0], handed[2]])))
    assert same_size.shapes is None  # one size: stacked, and resized as one batch
    assert torch.equal(same_size.on_device("cpu", geometry), torch.stack([one_at_a_time[0], one_at_a_time[2]]))
    with pytest.raises(ValueError, match="different sizes"):
        batch.nchw()


def test_the_device_resizes_only_for_a_geometry_that_matches_the_models_own():
    from dataclasses import replace

    from tools.models.geometry import Geometry, agrees_on_small_images

    for spec in (TINY, "hf:tiny-random", "offline"):
        backend = load_backend(spec, "cpu")
        geometry = backend.device_geometry()
        assert geometry is not None and geometry.output == (backend.prepare(Image.new("RGB", (50, 40))).shape[1:])
        assert not agrees_on_small_images(replace(geometry, bicubic=False), backend.prepare)
        assert not agrees_on_small_images(replace(geometry, round_offsets=not geometry.round_offsets), backend.prepare)
    floats = load_backend(TINY, "cpu").preprocess  # float pixels: nothing to resize on the device
    assert not agrees_on_small_images(Geometry(32, None, (32, 32), bicubic=True), floats)
    assert not agrees_on_small_images(Geometry(32, None, None, bicubic=True), load_backend(TINY, "cpu").prepare)


def test_a_cancelled_run_stops_its_worker_processes(photos_project):
    backend = load_backend(TINY, "cpu")
    batches = []
    report = embed_items(photos_project, backend, batch_size=8, workers=2, loader="processes",
                         on_progress=lambda done, total, stage: batches.append(done),
                         should_stop=lambda: len(batches) >= 2)
    assert report.cancelled and report.embedded == 16
    assert len(photos_project.store.embedded_item_ids(TINY)) == 16
    import multiprocessing

    multiprocessing.active_children()  # reaps finished workers
    assert not multiprocessing.active_children()


def test_each_batch_is_handed_on_as_it_is_stored_and_a_failure_there_loses_only_that_batch(photos_project):
    backend = load_backend(TINY, "cpu")
    batches = []
    embed_items(photos_project, backend, [item.id for item in photos_project.store.items()[:40]], batch_size=16,
                on_embedded=lambda ids, vectors: batches.append((list(ids), vectors.shape)))
    assert [len(ids) for ids, _ in batches] == [16, 16, 8] and batches[0][1] == (16, backend.dim)
    assert [i for ids, _ in batches for i in ids] == [item.id for item in photos_project.store.items()[:40]]

    def fail_on_the_second(ids, vectors):
        if len(batches) == 4:
            raise sqlite3.OperationalError("database or disk is full")
        batches.append(ids)

    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        embed_items(photos_project, backend, batch_size=16, on_embedded=fail_on_the_second)
    assert len(photos_project.store.embedded_item_ids(TINY)) == 40 + 16  # the failed batch's features rolled back


def test_a_cancelled_suggest_keeps_what_it_scored_and_the_next_run_finishes_the_rest(photos_project):
    seen = []
    first = suggest(photos_project, model=TINY, batch_size=8,
                    on_progress=lambda done, total, stage: seen.append(done), should_stop=lambda: len(seen) >= 3)
    assert first.embed.cancelled and first.suggested == first.embed.embedded == 24
    store = photos_project.store
    assert sum(bool(store.suggestions(item.id)) for item in store.items()) == 24
    second = suggest(photos_project, model=TINY, batch_size=8)
    assert (second.suggested, second.up_to_date, second.embed.embedded) == (70, 24, 70)


def test_ctrl_c_is_left_to_the_parent_worker_processes_go_on(photos_project):
    """Ctrl-C reaches the whole process group; the CLI's handler stops the run between batches."""
    import multiprocessing
    import signal

    from tools.loaders import pixel_batches

    backend = load_backend(TINY, "cpu")
    ids = [item.id for item in photos_project.store.items()]
    batches = pixel_batches(photos_project, backend, ids, 8, 2, lambda: False, "processes")
    got = len(next(batches)[0])
    workers = multiprocessing.active_children()
    assert workers
    for worker in workers:
        os.kill(worker.pid, signal.SIGINT)
    got += sum(len(batch_ids) for batch_ids, _, _ in batches)
    assert got == 94


def test_a_gpu_gets_worker_processes_only_when_cores_images_and_shared_memory_allow(monkeypatch):
    from types import SimpleNamespace

    from tools import loaders

    gpu = SimpleNamespace(device="cuda", prepare=lambda image: torch.zeros(3, 224, 224, dtype=torch.uint8))
    monkeypatch.setattr(loaders, "usable_cores", lambda: 16)
    monkeypatch.setattr(loaders, "shared_memory_free", lambda: 64 << 30)
    assert loaders.loader_kind(gpu, 20_000, 256) == "processes"
    assert loaders.default_workers("processes") == 8
    assert loaders.loader_kind(gpu, 500, 256) == "threads"  # a short job: forking costs more than it saves
    assert loaders.loader_kind(SimpleNamespace(device="cpu"), 20_000, 256) == "threads"  # the model needs the cores
    assert loaders.shared_memory_needed(gpu, 256, 8) == 3 * 224 * 224 * 256 * (3 * 8 + 2)  # in flight, and two held
    monkeypatch.setattr(loaders, "shared_memory_free", lambda: 64 << 20)  # Docker's default /dev/shm
    assert loaders.loader_kind(gpu, 20_000, 256) == "threads"
    monkeypatch.setattr(loaders, "shared_memory_free", lambda: 64 << 30)
    monkeypatch.setattr(loaders, "usable_cores", lambda: 2)
    assert loaders.loader_kind(gpu, 20_000, 256) == "threads"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_worker_processes_embed_as_threads_do(photos_dir, tmp_path):
    """The loader a GPU gets by default: same features as threads, problems counted, and a
    cancelled suggest stops its workers. (Run on an H100 as a script: bench/results/gpu-h100-loader-check.log.)"""
    import multiprocessing

    backend = load_backend(TINY, "cuda")
    found = {}
    for kind in ("threads", "processes"):
        with Project(tmp_path / kind) as project:
            ingest(project, [str(photos_dir)])
            project.media.path(project.store.items()[30].media_path).write_bytes(b"\x89PNG\r\n\x1a\n broken")
            report = embed_items(project, backend, batch_size=16, loader=kind)
            found[kind] = (report.embedded, len(report.problems), *project.store.embeddings(TINY))
    (n_t, p_t, ids_t, v_t), (n_p, p_p, ids_p, v_p) = found["threads"], found["processes"]
    assert (n_t, p_t) == (n_p, p_p) == (93, 1) and list(ids_t) == list(ids_p)
    np.testing.assert_allclose(v_t, v_p, atol=1e-5)
    with Project(tmp_path / "cancel") as project:
        ingest(project, [str(photos_dir)])
        project.store.set_labels([Label(n) for n in ["fish", "mammal", "monument", "tool", "windmill"]])
        seen = []
        report = suggest(project, model=TINY, batch_size=16, device="cuda",
                         on_progress=lambda done, total, stage: seen.append(done), should_stop=lambda: len(seen) >= 2)
        assert report.embed.cancelled and report.suggested == 32  # workers on a GPU host of 4 cores or more
    multiprocessing.active_children()
    assert not multiprocessing.active_children()


def test_out_of_memory_halves_the_batch_and_loses_nothing(photos_project):
    backend = load_backend(TINY, "cpu")

    class SmallGpu(type(backend)):
        """Stands in for a GPU this machine does not have: fails like CUDA on batches over 8."""

        def encode_images(self, pixels):
            if len(pixels) > 8:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().encode_images(pixels)

    small = SmallGpu.__new__(SmallGpu)
    small.__dict__.update(backend.__dict__)
    report = embed_items(photos_project, small, batch_size=32)
    assert report.embedded == 94 and report.batch_size == 8
    ids, vectors = photos_project.store.embeddings(TINY)
    item = photos_project.store.get_item(int(ids[0]))
    with Image.open(photos_project.media.path(item.media_path)) as image:
        direct = backend.encode_images(torch.stack([backend.preprocess(image.convert("RGB"))]))
    assert np.allclose(vectors[0], direct[0], atol=1e-2)


def _prelabel(*args, cwd):
    return subprocess.run(
        [str(LABELCHAT), "prelabel", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_prelabel_writes_one_prediction_per_image_as_jsonl_and_csv(tmp_path, photos_dir):
    result = _prelabel("--images", str(photos_dir / "fish"), str(photos_dir / "tool"), "--labels", "fish, tool, windmill",
                       "--model", TINY, "--out", "preds.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert len(rows) == 40
    assert set(rows[0]) >= {"path", "sha256", "label", "score", "top", "model"}
    assert rows[0]["label"] == rows[0]["top"][0]["label"] and len(rows[0]["top"]) == 3
    assert "Wrote 40 predictions" in result.stderr
    as_csv = _prelabel("--images", str(photos_dir / "fish"), "--labels-file", str(_labels_file(tmp_path)),
                       "--model", TINY, "--format", "csv", cwd=tmp_path)
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(table) == 20 and table[0]["label"] in {"fish", "tool"}


def _labels_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("fish = an animal that lives in water\ntool\n")
    return path


def test_prelabel_fails_clearly_when_nothing_can_be_labelled(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_bytes(b"nope")
    result = _prelabel("--images", "junk", "--labels", "a, b", "--model", TINY, cwd=tmp_path)
    assert result.returncode == 1 and "Nothing could be labelled" in result.stderr
    bad = _prelabel("--images", "junk", "--labels", "a", "--model", TINY, cwd=tmp_path)
    assert bad.returncode == 1 and "at least two labels" in bad.stderr
    unknown = _prelabel("--images", "junk", "--labels", "a, b", "--model", "clip-9000", cwd=tmp_path)
    assert unknown.returncode == 1 and "Unknown model spec 'clip-9000'" in unknown.stderr


def test_suggest_cli_prints_counts_per_label(tmp_path, photos_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = lambda *a: subprocess.run([str(LABELCHAT), *a, "--project", "p"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    run("add", str(photos_dir))
    run("labels", "set", "fish, mammal, monument, tool, windmill")
    run("model", TINY)
    result = run("suggest", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["suggested"] == 94 and report["model"] == TINY
    assert report["embed"]["embedded"] == 94
    assert (report["embed"]["loader"], report["embed"]["workers"]) == ("threads", 4)  # a CPU: threads decode
