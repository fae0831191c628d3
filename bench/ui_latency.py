"""Browser app latency: from a decision key press to the next card, on a 10,000-item project.

    python bench/ui_latency.py DATA [--items 10000] [--decisions 100]

DATA is any <label>/<image> folder: its images are ingested for real; the
rest of the 10,000 items are synthetic rows (pointing at those images, with
random feature vectors), which is enough for the review loop's arithmetic.
In Debian's headless Chromium through Playwright it measures, in one run:

1. p50/p95 from pressing A on the focused card to the server's
   acknowledgement that the decision is written, with the card gone from the
   panel (and at a batch's end the next batch shown), over N decisions (goal:
   p95 under 150 ms), as a ratio to a bare Gradio round trip (an event that
   does nothing but re-render the panel) measured the same way;
2. the time from starting `labelchat ui` to the first rendered page.

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from index.project import Project  # noqa: E402
from index.types import Label, Origin  # noqa: E402
from tools.ingest import IngestOptions, ingest  # noqa: E402
from tools.models import OFFLINE_SPEC  # noqa: E402
from tools.zeroshot import suggest  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def build(folder: Path, data: Path, total: int) -> None:
    with Project(folder) as project:
        project.store.set_labels([Label(d.name.replace("_", " ")) for d in sorted(data.iterdir()) if d.is_dir()])
        ingest(project, [str(data)], IngestOptions(near_duplicate_distance=-1))
        suggest(project, model="offline")
        real = project.store.items()
        _, features = project.store.embeddings(OFFLINE_SPEC)
        rng = np.random.default_rng(0)
        vectors = {}
        for n in range(total - len(real)):
            model = real[n % len(real)]
            item, _ = project.store.add_item(
                sha256=hashlib.sha256(f"synthetic-{n}".encode()).hexdigest(), phash=model.phash,
                media_path=model.media_path, width=model.width, height=model.height, format=model.format,
                bytes=model.bytes, origin=Origin(f"synthetic://{n}"))
            vectors[item.id] = features[n % len(features)] * rng.uniform(0.8, 1.2, features.shape[1])
        project.store.put_embeddings(OFFLINE_SPEC, vectors)
        project.store.set_setting("model", "offline")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(url: str, decisions: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Review").click()
        page.click("#lc-next")
        page.wait_for_selector("#lc-review .lc-card", timeout=120000)
        page.locator("#lc-review .lc-card").nth(0).click(position={"x": 5, "y": 5})
        bare, latencies = [], []
        for n in range(1, 21):  # the baseline: the same round trip and re-render, with no decision
            started = time.perf_counter()
            page.evaluate(f"labelchatAct('skip', -{n})")  # an id no card has: nothing is decided
            page.wait_for_function(f"(document.querySelector('#lc-review .lc-notice') || {{}}).textContent"
                                   f"?.includes('#-{n} ')", timeout=30000, polling="raf")
            bare.append(time.perf_counter() - started)
        open_cards = "#lc-review .lc-card:not(.lc-done)"
        for _ in range(decisions):
            card = page.locator(f"{open_cards}.focused, {open_cards}").first
            item = card.get_attribute("data-item")
            started = time.perf_counter()
            page.keyboard.press("a")
            page.wait_for_function(f"!document.querySelector('{open_cards}[data-item=\"{item}\"]') && "
                                   f"document.querySelector('#lc-ack [data-decided=\"{item}\"]') && "
                                   f"document.querySelector('{open_cards}')", timeout=60000, polling="raf")
            latencies.append(time.perf_counter() - started)
        browser.close()
    ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1000, 1)
    return {"decisions": decisions, "p50_ms": ms(latencies, 50), "p95_ms": ms(latencies, 95),
            "rerender_without_decision_p50_ms": ms(bare, 50), "rerender_without_decision_p95_ms": ms(bare, 95),
            "p95_ratio_to_rerender": round(ms(latencies, 95) / max(ms(bare, 95), 0.1), 2)}


def first_render(folder: Path) -> float:
    from playwright.sync_api import sync_playwright

    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([str(Path(sys.executable).parent / "labelchat"), "ui", "--project", str(folder),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=5000)
                    break
                except Exception:
                    time.sleep(0.2)
            page.wait_for_selector("#lc-chat", timeout=120000)
            seconds = time.perf_counter() - started
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return round(seconds, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--decisions", type=int, default=100)
    args = parser.parse_args()
    from ui.app import launch

    with tempfile.TemporaryDirectory(prefix="labelchat-bench-") as tmp:
        folder = Path(tmp) / "project"
        build(folder, args.data, args.items)
        figures = {"items": args.items, "first_render_s": first_render(folder)}
        print(f"first render {figures['first_render_s']} s", file=sys.stderr)
        server, url = launch(folder, port=free_port(), block=False)
        figures["decision_to_next_card"] = measure(url, args.decisions)
        print(f"decision -> next card {figures['decision_to_next_card']}", file=sys.stderr)
        server.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
