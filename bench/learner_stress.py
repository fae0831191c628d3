"""The live learner where images and zero-shot disagree about what is easy: synthetic sets.

    python bench/learner_stress.py [--items 600] [--classes 6] [--seeds 3]

bench/labelling.py runs real photos through the real model; this one asks
what happens at the two extremes that real projects sit between, with the
same annotator simulation (batches of 20, smallest margin first, every
reviewed item one action) run on `LiveLearner` directly:

- "features tell nothing": image features unrelated to the labels, zero-shot
  right 85% of the time (a label set CLIP knows, images the feature model
  does not separate);
- "zero-shot knows nothing": well separated features, zero-shot at chance.

For each it compares the fixed blend alone (guard off) with the guarded blend
the product uses, and prints the actions needed for 90/95/98% dataset
accuracy and the lowest accuracy on the way relative to zero-shot's, as one
JSON line (means over seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.learn import BlendConfig, LiveLearner  # noqa: E402

TARGETS = (0.90, 0.95, 0.98)


def noisy_zero_shot(y: np.ndarray, classes: int, right: float, rng) -> np.ndarray:
    wrong = (y + rng.integers(1, classes, len(y))) % classes
    picked = np.where(rng.random(len(y)) < right, y, wrong)
    zero_shot = np.full((len(y), classes), 0.3 / (classes - 1))
    zero_shot[np.arange(len(y)), picked] = 0.7
    return zero_shot


def make_set(kind: str, items: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), items // classes)
    if kind == "features tell nothing":
        return rng.standard_normal((len(y), 64)).astype(np.float32), noisy_zero_shot(y, classes, 0.85, rng), y
    centres = rng.standard_normal((classes, 64))
    x = (centres[y] + 0.4 * rng.standard_normal((len(y), 64))).astype(np.float32)
    return x, noisy_zero_shot(y, classes, 1 / classes, rng), y


def simulate(x: np.ndarray, zero_shot: np.ndarray, y: np.ndarray, config: BlendConfig, batch: int = 20) -> dict:
    ids = np.arange(len(y))
    learner = LiveLearner(ids, x, zero_shot, config)
    confirmed: dict[int, int] = {}
    curve = []
    while True:
        pending = np.array([i for i in ids if i not in confirmed], dtype=np.int64)
        predicted = y.copy()
        if len(pending):
            blended = learner.blend(pending, confirmed)
            predicted[pending] = blended.probabilities.argmax(axis=1)
        curve.append((len(confirmed) / len(y), float((predicted == y).mean())))
        if curve[-1][1] >= 0.999 or not len(pending):
            break
        top2 = -np.sort(-blended.uncalibrated, axis=1)[:, :2]
        for row in np.argsort(top2[:, 0] - top2[:, 1], kind="stable")[:batch]:
            confirmed[int(pending[row])] = int(y[pending[row]])
    figures = {f"actions_for_{int(t * 100)}": next((f for f, a in curve if a >= t), 1.0) for t in TARGETS}
    figures["min_accuracy_vs_zero_shot"] = min(a for _, a in curve) - curve[0][1]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    blends = {"fixed blend (guard off)": BlendConfig(guard_after=10**9), "guarded (the product)": BlendConfig()}
    results = {}
    for kind in ("features tell nothing", "zero-shot knows nothing"):
        results[kind] = {}
        for name, config in blends.items():
            runs = [simulate(*make_set(kind, args.items, args.classes, seed), config) for seed in range(args.seeds)]
            mean = {key: round(float(np.mean([r[key] for r in runs])), 3) for key in runs[0]}
            results[kind][name] = mean
            print(f"{kind:<24} {name:<24} " + "  ".join(f"{k}: {v}" for k, v in mean.items()), file=sys.stderr)
    print(json.dumps({"items": args.items, "classes": args.classes, "seeds": args.seeds, "sets": results}))


if __name__ == "__main__":
    main()
