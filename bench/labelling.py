"""Labelling efficiency: how many human actions a dataset needs, through the real review loop.

    python bench/labelling.py DATA [DATA ...] [--model offline] [--batch 20] [--panel]

DATA is any folder laid out as <label>/<image>; the folder names are the
truth, known only to a simulated annotator. For every review strategy the
annotator takes one batch at a time from `Reviewer.batch`, accepts each
suggestion that is right and corrects each that is wrong (one action per
item), and the suggestions refresh after every batch. After each batch the
dataset's accuracy is measured: confirmed labels plus the current best
suggestion of every other item. `--panel` reviews as the browser app's review
panel does: batches of 12 cards, the next one chosen (the suggestions
refreshed) while the last 2 cards are still to answer, so it learns from all
decisions but those two (ui/review_tab.py BATCH and PREPARE_AT). Two baselines: labelling by hand (an
unlabelled item counts as wrong) and reviewing zero-shot suggestions in
random order with no learning.

Prints, per strategy, the fraction of items that needed an action to reach
90%, 95% and 98% dataset accuracy, the lowest dataset accuracy on the way
relative to zero-shot's (never below 0 is the rule), the expected calibration
error of the suggestions a person was shown (each card's best suggestion and
its probability, before the person answered: held-out confirmed items; and
of every pending item, averaged over the rounds), and
the seconds per refresh of the suggestions. One line per data set and strategy
on stderr, then one JSON line of all figures on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from index.project import Project  # noqa: E402
from index.types import Action, Label, Status  # noqa: E402
from tools.ingest import IngestOptions, ingest  # noqa: E402
from tools.review import Reviewer, Strategy  # noqa: E402

TARGETS = (0.90, 0.95, 0.98)
BASELINE = "zero-shot, random order, no learning"
STATIC = "static"  # the --strategies name of that baseline
STRATEGIES = tuple(s.value for s in Strategy) + (STATIC,)


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


@dataclass
class Run:
    curve: list[tuple[float, float]] = field(default_factory=list)  # (share of items reviewed, dataset accuracy)
    shown: list[tuple[float, bool]] = field(default_factory=list)  # (probability, was it right) per card
    refresh_seconds: list[float] = field(default_factory=list)
    pending_errors: list[float] = field(default_factory=list)  # calibration error of all pending items, per round


def simulate(project: Project, truth: dict[int, str], strategy: Strategy, batch: int, model: str,
             learn: bool = True, lag: int = 0) -> Run:
    """`lag`: cards of each batch still unanswered when the next batch is chosen (the panel's
    PREPARE_AT; 0: the next batch waits for every answer)."""
    reviewer = Reviewer(project, model=model)
    run = Run()
    timed_refresh(reviewer, run)
    n, actions = len(truth), 0
    run.curve.append((0.0, dataset_accuracy(project, truth)))
    cards = reviewer.batch(strategy, batch, seed=actions)
    while cards:
        early, late = (cards[:-lag], cards[-lag:]) if lag and len(cards) > lag else (cards, [])
        answer(reviewer, early, truth, run)
        if learn:
            timed_refresh(reviewer, run)
        upcoming = reviewer.batch(strategy, batch, seed=actions + len(cards), exclude=[c.item.id for c in late])
        answer(reviewer, late, truth, run)
        actions += len(cards)
        pending = pending_suggestions(project, truth)
        if pending:
            run.pending_errors.append(calibration_error(pending))
        run.curve.append((actions / n, dataset_accuracy(project, truth)))
        if run.curve[-1][1] >= 0.999:
            break
        cards = upcoming
    return run


def answer(reviewer: Reviewer, cards, truth: dict[int, str], run: Run) -> None:
    """The simulated annotator: accept each right suggestion, correct each wrong one."""
    for card in cards:
        right = truth[card.item.id]
        suggested = card.suggestions[0].label if card.suggestions else None
        if card.suggestions:
            run.shown.append((card.suggestions[0].score, suggested == right))
        action = Action.ACCEPT if suggested == right else Action.CORRECT
        reviewer.decide(card.item.id, action, right, actor="simulated")


def timed_refresh(reviewer: Reviewer, run: Run) -> None:
    started = time.perf_counter()
    reviewer.refresh()
    run.refresh_seconds.append(time.perf_counter() - started)


def pending_suggestions(project: Project, truth: dict[int, str]) -> list[tuple[float, bool]]:
    """(probability, was it right) of the best suggestion of every item nobody has decided yet."""
    pending = project.store.item_ids_where(status=Status.PENDING)
    top = project.store.top_suggestions()
    return [(top[i].score, top[i].label == truth[i]) for i in pending if i in top]


def calibration_error(shown: list[tuple[float, bool]], bins: int = 10) -> float | None:
    """Expected calibration error: |accuracy - mean probability| per probability bin, weighted by its size."""
    if not shown:
        return None
    probabilities = np.array([p for p, _ in shown])
    right = np.array([r for _, r in shown], dtype=float)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(right[mask].mean() - probabilities[mask].mean())
    return round(float(error), 4)


def by_hand(n: int) -> list[tuple[float, float]]:
    return [(i / n, i / n) for i in range(0, n + 1)]


def needed(curve: list[tuple[float, float]], target: float) -> float | None:
    for fraction, accuracy in curve:
        if accuracy >= target:
            return round(fraction, 3)
    return None


def run(data: Path, model: str, batch: int, scratch: Path, strategies: list[str], lag: int = 0) -> dict:
    results = {}
    runs = [(s, Strategy(s), True) for s in strategies if s != STATIC]
    if STATIC in strategies:
        runs.append((BASELINE, Strategy.RANDOM, False))
    zero_shot_accuracy = None
    for name, strategy, learn in runs:
        started = time.perf_counter()
        project, truth = build_project(scratch / f"{data.name}-{name[:8]}-{time.monotonic_ns()}", data)
        outcome = simulate(project, truth, strategy, batch, model, learn, lag)
        curve = outcome.curve
        zero_shot_accuracy = curve[0][1]
        result = {f"actions_for_{int(t * 100)}": needed(curve, t) for t in TARGETS}
        result["min_accuracy_vs_zero_shot"] = round(min(a for _, a in curve) - curve[0][1], 4)
        result["calibration_error"] = calibration_error(outcome.shown)
        result["calibration_error_pending"] = (round(float(np.mean(outcome.pending_errors)), 4)
                                               if outcome.pending_errors else None)
        result["seconds_per_refresh"] = round(float(np.mean(outcome.refresh_seconds)), 3)
        result["seconds"] = round(time.perf_counter() - started, 1)
        result["curve"] = [(round(f, 3), round(a, 4)) for f, a in curve]
        results[name] = result
        project.close()
        print(f"{data.name:>14} {name:<38} " + "  ".join(
            f"{int(t * 100)}%: {result[f'actions_for_{int(t * 100)}']}" for t in TARGETS)
            + f"  min-vs-zs: {result['min_accuracy_vs_zero_shot']:+.3f}  ECE shown/pending: "
            + f"{result['calibration_error']}/{result['calibration_error_pending']}"
            + f"  refresh: {result['seconds_per_refresh']}s", file=sys.stderr)
    hand = by_hand(len(truth))
    results["by hand"] = {f"actions_for_{int(t * 100)}": needed(hand, t) for t in TARGETS}
    return {"items": len(truth), "zero_shot_accuracy": round(zero_shot_accuracy, 4), "strategies": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", type=Path)
    parser.add_argument("--model", default="offline")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--panel", action="store_true",
                        help="review as the app's panel does: its batch size, the next batch chosen before the "
                             "last cards are answered (overrides --batch)")
    parser.add_argument("--curves", action="store_true", help="keep the full curves in the JSON line")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated, of: {', '.join(STRATEGIES)} ({STATIC}: zero-shot in random order, "
                             f"no learning; default: all)")
    args = parser.parse_args()
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    lag = 0
    if args.panel:
        from ui.review_tab import BATCH, PREPARE_AT

        args.batch, lag = BATCH, PREPARE_AT
    figures = {"model": args.model, "batch": args.batch, "lag": lag, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="labelchat-bench-") as tmp:
        for data in args.data:
            figures["datasets"][data.name] = run(data, args.model, args.batch, Path(tmp), strategies, lag)
    if not args.curves:
        for dataset in figures["datasets"].values():
            for result in dataset["strategies"].values():
                result.pop("curve", None)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
