"""Labelling efficiency: how many human actions a dataset needs, through the real review loop.

    python bench/labelling.py DATA [DATA ...] [--model offline] [--batch 20]

DATA is any folder laid out as <label>/<image>; the folder names are the
truth, known only to a simulated annotator. For every review strategy the
annotator takes one batch at a time from `Reviewer.batch`, accepts each
suggestion that is right and corrects each that is wrong (one action per
item), and the suggestions refresh after every batch. After each batch the
dataset's accuracy is measured: confirmed labels plus the current best
suggestion of every other item. Two baselines: labelling by hand (an
unlabelled item counts as wrong) and reviewing zero-shot suggestions in
random order with no learning.

Prints, per strategy, the fraction of items that needed an action to reach
90%, 95% and 98% dataset accuracy, and ends with one JSON line of all figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from index.project import Project  # noqa: E402
from index.types import Action, Label, Status  # noqa: E402
from tools.ingest import IngestOptions, ingest  # noqa: E402
from tools.review import Reviewer, Strategy  # noqa: E402

TARGETS = (0.90, 0.95, 0.98)


def build_project(folder: Path, data: Path) -> tuple[Project, dict[int, str]]:
    project = Project(folder)
    names = sorted(d.name for d in data.iterdir() if d.is_dir())
    project.store.set_labels([Label(name.replace("_", " ")) for name in names])
    ingest(project, [str(data)], IngestOptions(near_duplicate_distance=-1))
    truth = {}
    for item in project.store.items():
        for origin in project.store.origins(item.id):
            truth.setdefault(item.id, Path(origin.source).parent.name.replace("_", " "))
    return project, truth


def dataset_accuracy(project: Project, truth: dict[int, str]) -> float:
    states = {s.item_id: s for s in project.store.states()}
    top = project.store.top_suggestions()
    right = 0
    for item_id, label in truth.items():
        state = states[item_id]
        guess = state.label if state.status is Status.CONFIRMED else (top[item_id].label if item_id in top else None)
        right += guess == label
    return right / len(truth)


def simulate(project: Project, truth: dict[int, str], strategy: Strategy, batch: int, model: str,
             learn: bool = True) -> list[tuple[float, float]]:
    reviewer = Reviewer(project, model=model)
    reviewer.refresh()
    n, actions = len(truth), 0
    curve = [(0.0, dataset_accuracy(project, truth))]
    while True:
        cards = reviewer.batch(strategy, batch, seed=actions)
        if not cards:
            break
        for card in cards:
            right = truth[card.item.id]
            suggested = card.suggestions[0].label if card.suggestions else None
            if suggested == right:
                reviewer.decide(card.item.id, Action.ACCEPT, right, actor="simulated")
            else:
                reviewer.decide(card.item.id, Action.CORRECT, right, actor="simulated")
        actions += len(cards)
        if learn:
            reviewer.refresh()
        curve.append((actions / n, dataset_accuracy(project, truth)))
        if curve[-1][1] >= 0.999:
            break
    return curve


def by_hand(n: int) -> list[tuple[float, float]]:
    return [(i / n, i / n) for i in range(0, n + 1)]


def needed(curve: list[tuple[float, float]], target: float) -> float | None:
    for fraction, accuracy in curve:
        if accuracy >= target:
            return round(fraction, 3)
    return None


def run(data: Path, model: str, batch: int, scratch: Path) -> dict:
    results = {}
    runs = [(s.value, s, True) for s in (Strategy.UNCERTAIN, Strategy.BALANCED, Strategy.CONFIDENT, Strategy.RANDOM)]
    runs.append(("zero-shot, random order, no learning", Strategy.RANDOM, False))
    zero_shot_accuracy = None
    for name, strategy, learn in runs:
        started = time.perf_counter()
        project, truth = build_project(scratch / f"{data.name}-{name[:8]}-{time.monotonic_ns()}", data)
        curve = simulate(project, truth, strategy, batch, model, learn)
        zero_shot_accuracy = curve[0][1]
        results[name] = {f"actions_for_{int(t * 100)}": needed(curve, t) for t in TARGETS}
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
        results[name]["curve"] = [(round(f, 3), round(a, 4)) for f, a in curve]
        project.close()
        print(f"{data.name:>14} {name:<38} " + "  ".join(
            f"{int(t * 100)}%: {results[name][f'actions_for_{int(t * 100)}']}" for t in TARGETS), file=sys.stderr)
    hand = by_hand(len(truth))
    results["by hand"] = {f"actions_for_{int(t * 100)}": needed(hand, t) for t in TARGETS}
    return {"items": len(truth), "zero_shot_accuracy": round(zero_shot_accuracy, 4), "strategies": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--model", default="offline")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--curves", action="store_true", help="keep the full curves in the JSON line")
    args = parser.parse_args()
    figures = {"model": args.model, "batch": args.batch, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="labelchat-bench-") as tmp:
        for data in args.data:
            figures["datasets"][data.name] = run(data, args.model, args.batch, Path(tmp))
    if not args.curves:
        for dataset in figures["datasets"].values():
            for result in dataset["strategies"].values():
                result.pop("curve", None)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
