"""Benchmark: labelchat's crawler against img2dataset, on the same images from a local server.

    .venv/bin/python bench/crawl.py /work/shared/data/fashion-dev [--variants 3] [--latency-ms 20]
        [--workers 16] [--rounds 3] [--img2dataset-python PATH]

What it does:
1. Turns a <label>/<image> folder into distinct, realistic JPEGs: each image is
   upscaled to --size px and re-encoded in --variants versions (as is,
   mirrored, rotated, flipped), so 1,000 images give 3,000 distinct files.
2. Serves them from a separate process on 127.0.0.1, --latency-ms per request,
   on pages of --per-page images each, with an index page linking the pages.
3. Per round, in a rotating order: crawls the index with labelchat (robots.txt,
   pages, images, full decode, sha256 + perceptual dedup, a fresh project with
   per-URL outcomes); downloads the same image URLs with img2dataset (same
   thread count, one process, resize_mode="no", skip_reencode=True,
   output_format="files"); and with a plain requests + ThreadPool loop that
   checks nothing (a floor for what the network and server allow).
4. Prints images/s and CPU ms per image for each round, the medians and the
   ratios, then one JSON line with all figures. The machine's load average is
   in the JSON too: on a shared machine, compare within one run only.

img2dataset runs with the Python given by --img2dataset-python (default: this
one if it can import img2dataset, else /tmp/i2d-venv/bin/python), in its own
process. Every process this script starts can only connect to 127.0.0.0/8 and
cannot look up host names: a socket guard is installed here and, through
sitecustomize, in the server and img2dataset processes (albumentations, which
img2dataset imports, otherwise asks pypi.org for updates at import time).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GUARD = '''
import ipaddress, socket
def _local(host):
    if host is None or host == "localhost":
        return True
    if isinstance(host, bytes):
        host = host.decode()
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False
def _guard(real):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            raise OSError(f"bench network guard: only 127.0.0.0/8, not {address!r}")
        return real(self, address)
    return connect
_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        raise socket.gaierror(f"bench network guard: no name lookups ({host!r})")
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect = _guard(socket.socket.connect)
socket.socket.connect_ex = _guard(socket.socket.connect_ex)
socket.getaddrinfo = getaddrinfo
'''
QUIET_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "WANDB_DISABLED": "true",
             "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"}

I2D_SCRIPT = '''
import glob, json, resource, sys, time
from img2dataset import download
a = json.loads(sys.argv[1])
def cpu():
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
cpu0, began = cpu(), time.perf_counter()
download(url_list=a["list"], input_format="txt", output_format="files", output_folder=a["out"],
         processes_count=1, thread_count=a["threads"], resize_mode="no", skip_reencode=True,
         timeout=10, retries=0, enable_wandb=False, number_sample_per_shard=1000000)
elapsed, cpu_s = time.perf_counter() - began, cpu() - cpu0
stats = [json.load(open(p)) for p in glob.glob(a["out"] + "/*_stats.json")]
print("RESULT " + json.dumps({"elapsed_s": elapsed, "cpu_s": cpu_s, "ok": sum(s["successes"] for s in stats),
                               "count": sum(s["count"] for s in stats)}))
'''


# -- the images ----------------------------------------------------------------------------


def make_images(data_dir: Path, out: Path, variants: int, size: int) -> int:
    """Write distinct JPEGs 0.jpg, 1.jpg, ... into `out`; returns how many."""
    from PIL import Image, ImageOps

    sources = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not sources:
        raise SystemExit(f"no images under {data_dir}; give a <label>/<image> folder")
    out.mkdir(parents=True)
    transforms = [lambda im: im, ImageOps.mirror, lambda im: im.rotate(90), ImageOps.flip][: max(1, variants)]
    n = 0
    for transform in transforms:
        for path in sources:
            with Image.open(path) as image:
                big = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
            buffer = io.BytesIO()
            transform(big).save(buffer, "JPEG", quality=85 + n % 10)
            (out / f"{n}.jpg").write_bytes(buffer.getvalue())
            n += 1
    return n


# -- the server, in its own process ------------------------------------------------------


def serve(folder: Path, latency_s: float, per_page: int) -> None:
    """Serve images, pages and robots.txt until stdin closes; prints the port first."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = {f"/img/{p.name}": p.read_bytes() for p in folder.glob("*.jpg")}
    names = sorted(files, key=lambda k: int(k.rsplit("/", 1)[-1].split(".")[0]))
    pages = {
        f"/page/{k}.html": "".join(f'<img src="{n}" alt="image {n}">' for n in names[i : i + per_page]).encode()
        for k, i in enumerate(range(0, len(names), per_page))
    }
    pages["/index.html"] = "".join(f'<a href="{p}">{p}</a>' for p in pages).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes; no 40 ms ACK stalls

        def log_message(self, *args):
            pass

        def do_GET(self):
            time.sleep(latency_s)
            path = self.path.split("?")[0]
            body, kind = (files.get(path), "image/jpeg") if path in files else (pages.get(path), "text/html")
            if path == "/robots.txt":
                body, kind = b"User-agent: *\nAllow: /\n", "text/plain"
            status = 200 if body is not None else 404
            body = body or b"not found"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

        def handle_error(self, request, client_address):
            pass

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin


@contextmanager
def server_process(folder: Path, latency_s: float, per_page: int):
    command = [sys.executable, __file__, "--serve", str(folder), "--latency-ms", str(latency_s * 1000), "--per-page", str(per_page)]
    env = {**os.environ, "PYTHONPATH": str(folder.parent / "guard")}  # the server too: loopback only
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stdin.close()
        process.wait(timeout=10)


# -- the contestants ---------------------------------------------------------------------------


def run_labelchat(base: str, project_dir: Path, workers: int) -> dict:
    from index.project import Project
    from tools.crawl import CrawlOptions, crawl

    options = CrawlOptions(depth=1, workers=workers, per_host=workers, host_delay_s=0.0, allow_hosts=("127.0.0.1",))
    with Project(project_dir) as project:
        began = time.perf_counter()
        report = crawl(project, [f"{base}/index.html"], options)
        elapsed = time.perf_counter() - began
    return {"elapsed_s": elapsed, "ok": report.saved, "counts": report.counts,
            "near_duplicates": len(report.near_duplicates), "bytes": report.bytes}


def run_img2dataset(python: str, urls: list[str], work: Path, workers: int, guard_dir: Path) -> dict:
    listing = work / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    args = json.dumps({"list": str(listing), "out": str(work / "i2d"), "threads": workers})
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(guard_dir)}
    done = subprocess.run([python, "-c", I2D_SCRIPT, args], capture_output=True, text=True, env=env, timeout=900, cwd=work)
    line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"img2dataset failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def run_plain(urls: list[str], out: Path, workers: int) -> dict:
    """requests + ThreadPool: fetch and write bytes, nothing checked."""
    import threading

    import requests

    out.mkdir()
    local = threading.local()

    def get(index_url: tuple[int, str]) -> bool:
        index, url = index_url
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        try:
            response = session.get(url, timeout=10)
            if response.ok:
                (out / f"{index}.jpg").write_bytes(response.content)
            return response.ok
        except requests.RequestException:
            return False

    began = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        ok = sum(pool.map(get, enumerate(urls)))
    return {"elapsed_s": time.perf_counter() - began, "ok": ok}


def default_i2d_python() -> str | None:
    find = "import importlib.util, sys; sys.exit(importlib.util.find_spec('img2dataset') is None)"  # no import
    probe = subprocess.run([sys.executable, "-c", find], capture_output=True)
    if probe.returncode == 0:
        return sys.executable
    fallback = Path("/tmp/i2d-venv/bin/python")
    return str(fallback) if fallback.exists() else None


def race(base: str, urls: list[str], work: Path, args: argparse.Namespace, python: str | None) -> dict[str, list[dict]]:
    """Every contestant once per round, the order rotated each round; img2dataset errors are kept."""
    contestants = {
        "labelchat": lambda d: run_labelchat(base, d, args.workers),
        "img2dataset": (lambda d: run_img2dataset(python, urls, d, args.workers, work / "guard")) if python else None,
        "plain_requests": lambda d: run_plain(urls, d / "files", args.workers),
    }
    names = [name for name, run in contestants.items() if run]
    results: dict[str, list[dict]] = {name: [] for name in contestants}
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            folder = work / f"{name}-{round_}"
            folder.mkdir()
            cpu0 = time.process_time()
            try:
                result = contestants[name](folder)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                results[name].append({"error": str(exc)})
                continue
            result.setdefault("cpu_s", time.process_time() - cpu0)
            result["images_per_s"] = round(result["ok"] / result["elapsed_s"], 1)
            result["cpu_ms_per_image"] = round(1000 * result["cpu_s"] / max(1, result["ok"]), 2)
            results[name].append(result)
            print(f"round {round_ + 1} {name:>15}: {result['ok']:5d} images in {result['elapsed_s']:6.2f} s = "
                  f"{result['images_per_s']:7.1f} images/s, {result['cpu_ms_per_image']:.2f} ms CPU each", file=sys.stderr)
    return results


def median_run(runs: list[dict]) -> dict | None:
    good = sorted((r for r in runs if "error" not in r), key=lambda r: r["images_per_s"])
    return good[len(good) // 2] if good else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "fashion-dev")
    parser.add_argument("--variants", type=int, default=3, help="versions of each source image (1-4)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="each contestant runs once per round; medians are compared")
    parser.add_argument("--img2dataset-python", default=None)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.latency_ms / 1000, args.per_page)
        return 0
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="labelchat-bench-") as tmp:
        work = Path(tmp)
        (work / "guard").mkdir()
        (work / "guard" / "sitecustomize.py").write_text(GUARD)
        exec(GUARD, {})  # this process too: only loopback from here on
        n = make_images(args.data, work / "www", args.variants, args.size)
        print(f"{n} distinct {args.size}px JPEGs from {args.data}; {args.latency_ms:g} ms per request; "
              f"{args.workers} workers; {args.rounds} rounds", file=sys.stderr)
        python = args.img2dataset_python or default_i2d_python()
        with server_process(work / "www", args.latency_ms / 1000, args.per_page) as base:
            results = race(base, [f"{base}/img/{i}.jpg" for i in range(n)], work, args, python)
    figures: dict = {"images": n, "latency_ms": args.latency_ms, "workers": args.workers, "rounds": args.rounds,
                     "load_average_before": load_before, "load_average_after": os.getloadavg()[0]}
    for name, runs in results.items():
        figures[name] = {"median": median_run(runs), "images_per_s_each_round": [r.get("images_per_s") for r in runs]}
    ours, ref, plain = (figures[k]["median"] for k in ("labelchat", "img2dataset", "plain_requests"))
    if ref:
        figures["ratio_labelchat_vs_img2dataset"] = round(ours["images_per_s"] / ref["images_per_s"], 2)
    else:
        errors = [r["error"] for r in results["img2dataset"] if "error" in r]
        figures["img2dataset_error"] = errors[0] if errors else "img2dataset is not importable (pip install img2dataset, or pass --img2dataset-python)"
    figures["ratio_labelchat_vs_plain"] = round(ours["images_per_s"] / plain["images_per_s"], 2)
    for name in ("labelchat", "img2dataset", "plain_requests"):
        if figures[name]["median"]:
            print(f"median {name:>15}: {figures[name]['median']['images_per_s']:7.1f} images/s", file=sys.stderr)
    print(f"labelchat / img2dataset = {figures.get('ratio_labelchat_vs_img2dataset', 'n/a')}; "
          f"labelchat / plain requests = {figures['ratio_labelchat_vs_plain']}", file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
