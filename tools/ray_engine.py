"""Embedding on Ray (`--engine ray`): Ray Data reads, decodes and encodes the images, shards merge.

The items without features are a Ray dataset of (item id, file); `map_batches`
hands batches to a pool of actors (`Embedder`), each of which loads the model
once, decodes and encodes a batch with the same code as the local engine
(`loaders.decode_files`, `embed.encode_with_backoff`) and writes it as one
Parquet shard (item ids, model, vectors; and the files it could not decode)
under PROJECT/shards/<run>/. The driver merges each shard into the store as it
is reported, then deletes it. Merging skips items that already have features
for the shard's model, so a shard merged twice, or written twice (Ray retried
its task), adds nothing twice; shards left by a run that was interrupted are
merged before a new run looks for work, so a rerun encodes only what no shard
holds. Ray is imported only here, and only when this engine is asked for.

A local cluster is started on 127.0.0.1 with nothing that talks to the outside:
usage statistics off, no dashboard, accelerators given explicitly (no TPU
probe of the cloud metadata server), node addresses on loopback, and a dead
loopback proxy for the HTTP clients of Ray's own processes (its usage-stats
module asks the cloud metadata address which cloud it runs on even with usage
statistics off; the proxy makes that request fail on 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from index.errors import LabelchatError
from index.project import Project

from .embed import EmbedReport
from .images import Reason
from .loaders import DEFAULT_WORKERS, usable_cores
from .models.base import Backend
from .sources import Problem

ENGINES = ("local", "ray")
SHARDS_DIR = "shards"
MAX_CPU_ACTORS = 8  # a CPU pool: at most this many model copies, each with a share of the cores
INSTALL_HINT = "pip install 'labelchat[ray]'"

# What every Ray process of a local cluster inherits (see the module's docstring).
_DEAD_PROXY = "http://127.0.0.1:9"
_NO_PROXY = "localhost,127.0.0.1,::1"
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "AWS_EC2_METADATA_DISABLED": "true",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # on Linux: the node's address is loopback, never looked up
    "http_proxy": _DEAD_PROXY, "HTTP_PROXY": _DEAD_PROXY,
    "https_proxy": _DEAD_PROXY, "HTTPS_PROXY": _DEAD_PROXY,
    "no_proxy": _NO_PROXY, "NO_PROXY": _NO_PROXY,
}
ACCELERATORS_OFF = {"TPU": 0, "NPU": 0, "HPU": 0, "neuron_cores": 0}


class RayEngineError(LabelchatError):
    """Ray missing, a cluster that cannot be reached or went away, a run that failed."""


@dataclass(frozen=True)
class Engine:
    """Which engine embeds: "local" (this process) or "ray" (a Ray cluster: `address`, else a
    local one started on 127.0.0.1 with `cpus` CPUs, default all usable cores)."""

    kind: str = "local"
    address: str | None = None
    cpus: int | None = None
    device: str | None = None  # the actors' device; None: a GPU where the pool has one, else the CPU

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise RayEngineError(f"Unknown engine {self.kind!r}; use one of: {', '.join(ENGINES)}.")
        if self.address and self.kind != "ray":
            raise RayEngineError(f"--ray-address {self.address} needs --engine ray.")


LOCAL = Engine()


@dataclass(frozen=True)
class Pool:
    """The actor pool for a cluster's resources: one actor per GPU, else a CPU pool."""

    actors: int
    cpus_per_actor: int
    gpus_per_actor: int

    @staticmethod
    def for_resources(resources: dict, device: str | None) -> "Pool":
        cpus = max(1, int(resources.get("CPU", 1)))
        gpus = int(resources.get("GPU", 0))
        if gpus and device != "cpu":
            return Pool(gpus, max(1, min(DEFAULT_WORKERS, cpus // gpus // 2)), 1)
        per_actor = max(1, -(-cpus // MAX_CPU_ACTORS))
        return Pool(max(1, cpus // per_actor), per_actor, 0)


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayEngineError(
            f"--engine ray needs Ray, which is not installed ({exc}). Install labelchat[ray]: "
            f"{INSTALL_HINT}, or use --engine local."
        ) from exc
    return ray


@contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[object]:
    """Ray, connected: to `address`, else to a local cluster started now on 127.0.0.1 and shut
    down afterwards. A process already connected (a caller's own session) is used as it is."""
    ray = import_ray()
    if address:
        _check_reachable(address)
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # this process too (a driver reports as well)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    try:
        with _environment(QUIET_ENV if not address else {}), _loopback_node(not address or _is_loopback(address)):
            if address:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            else:
                ray.init(num_cpus=cpus or usable_cores(), num_gpus=_cuda_devices(), resources=ACCELERATORS_OFF,
                         include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                         configure_logging=False)
    except Exception as exc:  # ConnectionError, TimeoutError, RuntimeError from ray.init
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise RayEngineError(
            f"Could not connect to {where} ({type(exc).__name__}: {exc}). "
            + ("Check the address (ray status on the head node prints it), or leave out --ray-address "
               "to start a local one." if address else "Try --engine local.")
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _host_port(address: str) -> tuple[str, int]:
    text = address.removeprefix("ray://")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise RayEngineError(f"--ray-address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, as 'ray status' "
                             f"on the head node prints it).")
    return host.strip("[]"), int(port)


def _is_loopback(address: str) -> bool:
    import ipaddress

    host, _ = _host_port(address)
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """One TCP connect to the cluster's address before Ray is asked: Ray itself retries a dead
    address for minutes."""
    import socket

    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise RayEngineError(
            f"No Ray cluster answers at {address} ({exc}). Start one there (ray start --head), check the "
            f"address ('ray status' on the head node prints it), or leave out --ray-address to start a local one."
        ) from exc


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """These environment variables set while Ray starts its processes (which keep them), then
    restored: this process's own HTTP clients keep their settings."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _loopback_node(on: bool) -> Iterator[None]:
    """Ray on Linux turns the node address 127.0.0.1 into the machine's outward address (found by
    a UDP connect towards 8.8.8.8) unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER is off, which it reads
    once, at import: its constant is set here for this process, and the variable for Ray's."""
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = saved and not on
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# -- the run ----------------------------------------------------------------------


def embed_with_ray(
    project: Project,
    backend: Backend,
    item_ids: Sequence[int],
    engine: Engine = Engine("ray"),
    *,
    batch_size: int | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EmbedReport:
    """Features for those of `item_ids` that have none for `backend.spec`, computed on Ray and
    merged into the store; what `embed_items` reports, with loader "ray"."""
    started = time.perf_counter()
    store = project.store
    report = EmbedReport(backend.spec, loader="ray", batch_size=batch_size or backend.default_batch_size)
    merge_shards(project)  # what an interrupted run left: merged, not computed again
    done_before = store.embedded_item_ids(backend.spec)
    todo = [i for i in item_ids if i not in done_before]
    report.cached = len(item_ids) - len(todo)
    if not todo:
        return report
    paths = store.media_paths(todo)
    files = [{"item_id": i, "path": str(project.media.path(paths[i]))} for i in todo if i in paths]
    report.problems += [Problem(f"item {i}", Reason.CORRUPT, f"Item {i} is no longer in the project.")
                        for i in todo if i not in paths]
    run_dir = _new_run_dir(project, backend.spec)
    stop = should_stop or (lambda: False)
    with ray_session(engine.address, engine.cpus) as ray:
        pool = Pool.for_resources(ray.cluster_resources(), engine.device)
        report.workers = pool.actors
        report.resized_on_device = bool(pool.gpus_per_actor)
        results = ray.data.from_items(files).map_batches(
            Embedder,
            fn_constructor_kwargs={"spec": backend.spec, "device": engine.device, "out_dir": str(run_dir),
                                   "threads": pool.cpus_per_actor},
            batch_size=report.batch_size, concurrency=pool.actors,
            num_cpus=pool.cpus_per_actor, num_gpus=pool.gpus_per_actor, batch_format="pandas",
        )
        try:
            for summary in results.iter_rows():
                shard = _merge_shard(store, Path(summary["shard"]))
                report.embedded += shard.merged
                report.problems += shard.problems
                report.precision = summary["precision"]
                if on_progress:
                    on_progress(report.embedded + len(report.problems), len(todo), "embedding on Ray")
                if stop():
                    report.cancelled = True
                    break
        except RayEngineError:
            raise
        except Exception as exc:  # a worker or the cluster went away for good, a full disk, ...
            raise RayEngineError(
                f"The Ray run stopped: {type(exc).__name__}: {_first_line(exc)}. The {report.embedded} images "
                f"embedded before that are kept; run the same command again to do the rest."
            ) from exc
    report.embedded += merge_shards(project)  # shards written after the last one reported (a stopped run)
    if report.embedded:
        store.compact_embeddings(backend.spec)  # shards arrive in any order: rows in id order again
    report.seconds = time.perf_counter() - started
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _new_run_dir(project: Project, spec: str) -> Path:
    run = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    folder = project.folder / SHARDS_DIR / run
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"model": spec, "started": run}))
    return folder


class Embedder:
    """A Ray Data actor: loads the model once, then encodes a batch of files per call into one
    Parquet shard and returns one row that names it."""

    def __init__(self, spec: str, device: str | None, out_dir: str, threads: int):
        import torch

        from .models import load_backend

        torch.set_num_threads(max(1, threads))
        if device is None:
            device = "cuda" if torch.cuda.is_available() and _assigned_gpus() else "cpu"
        self.backend = load_backend(spec, device)
        self.out_dir, self.threads = Path(out_dir), threads

    def __call__(self, batch):
        import pandas as pd

        from .embed import encode_with_backoff
        from .loaders import decode_files

        files = [(int(i), Path(p)) for i, p in zip(batch["item_id"], batch["path"])]
        resize = self.backend.device.startswith("cuda")
        ids, pixels, problems = decode_files(files, self.backend, resize, self.threads)
        decoded = set(ids)
        failed = [item_id for item_id, _ in files if item_id not in decoded]  # in order, as `problems`
        report = EmbedReport(self.backend.spec, batch_size=len(files) or 1)
        vectors = encode_with_backoff(self.backend, pixels, report) if ids else np.zeros((0, 0), np.float32)
        shard = write_shard(self.out_dir, self.backend.spec, ids, vectors, list(zip(failed, problems)))
        precision = getattr(getattr(self.backend, "precision", None), "dtype", None)
        return pd.DataFrame({"shard": [str(shard)], "items": [len(files)],
                             "precision": [str(precision).replace("torch.", "") if precision else "float32"]})


def _assigned_gpus() -> list:
    import ray

    return ray.get_gpu_ids()


# -- shards -----------------------------------------------------------------------


def write_shard(folder: Path, model: str, ids: Sequence[int], vectors: np.ndarray,
                problems: Sequence[tuple[int, Problem]]) -> Path:
    """One Parquet file of a batch's features (and the files that could not be decoded), named by
    its items and written whole or not at all (a temporary file, renamed): written twice, by a
    retried task, it is the same file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = int(vectors.shape[1]) if len(ids) else 0
    rows = len(ids) + len(problems)
    vector_type = pa.list_(pa.float32(), dim) if dim else pa.list_(pa.float32())
    flat = pa.array(np.asarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    good = (pa.FixedSizeListArray.from_arrays(flat, dim) if dim
            else pa.array([[]] * 0, type=vector_type))
    table = pa.table({
        "item_id": pa.array([int(i) for i in ids] + [int(i) for i, _ in problems], type=pa.int64()),
        "model": pa.array([model] * rows, type=pa.string()),
        "vector": pa.concat_arrays([good, pa.nulls(len(problems), type=vector_type)]),
        "source": pa.array([None] * len(ids) + [p.source for _, p in problems], type=pa.string()),
        "error": pa.array([None] * len(ids) + [p.message for _, p in problems], type=pa.string()),
    })
    key = hashlib.sha256(json.dumps([model, sorted(table.column("item_id").to_pylist())]).encode()).hexdigest()[:20]
    path = folder / f"shard-{key}.parquet"
    partial = folder / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.partial"
    try:
        pq.write_table(table, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


@dataclass
class MergedShard:
    merged: int = 0  # features added to the store
    already: int = 0  # items that had features for the shard's model already: left as they were
    problems: list[Problem] | None = None


def _merge_shard(store, path: Path) -> MergedShard:
    """Adds a shard's features that the store lacks, in one transaction, then deletes the shard."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        return MergedShard(problems=[])  # merged already (by a rerun that came first)
    except Exception as exc:
        raise RayEngineError(
            f"The shard {path} cannot be read ({exc}); it was not merged. Delete it and run again: "
            f"its images are then embedded anew."
        ) from exc
    result = MergedShard(problems=[])
    models = set(table.column("model").to_pylist())
    by_model: dict[str, dict[int, np.ndarray]] = {model: {} for model in models}
    rows = table.to_pydict()
    known = set(store.media_paths(rows["item_id"]))
    for item_id, model, vector, source, error in zip(rows["item_id"], rows["model"], rows["vector"],
                                                     rows["source"], rows["error"]):
        if vector is None:
            result.problems.append(Problem(source or f"item {item_id}", Reason.CORRUPT, error or ""))
        elif item_id in known:
            by_model[model][item_id] = np.asarray(vector, dtype=np.float32)
    with store.transaction():
        for model, vectors in by_model.items():
            have = store.embedded_item_ids(model) if vectors else set()
            new = {i: v for i, v in vectors.items() if i not in have}
            result.already += len(vectors) - len(new)
            if new:
                store.put_embeddings(model, new)
            result.merged += len(new)
    path.unlink(missing_ok=True)
    return result


def merge_shards(project: Project) -> int:
    """Merges every shard under PROJECT/shards (runs that were interrupted, or stopped before
    their last shards were reported), removes what is merged; returns the features added."""
    root = project.folder / SHARDS_DIR
    if not root.is_dir():
        return 0
    added = 0
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        for partial in run.glob(".*.partial"):
            partial.unlink(missing_ok=True)  # a write that was cut off: its batch is redone
        for shard in sorted(run.glob("shard-*.parquet")):
            added += _merge_shard(project.store, shard).merged
        if not any(run.glob("shard-*.parquet")):
            (run / "run.json").unlink(missing_ok=True)
            try:
                run.rmdir()
            except OSError:
                pass  # something else lies there: leave it
    try:
        root.rmdir()  # when every run was merged
    except OSError:
        pass
    return added
