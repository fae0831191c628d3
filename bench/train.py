"""Training benchmark: held-out accuracy of zero-shot, `probe` and `finetune`, by examples per class.

    python bench/train.py DATA [--model offline] [--per-class 10 50 all] [--seeds 3]
                               [--kinds probe finetune] [--epochs 3] [--device auto]
                               [--finetune-per-class 10 50] [--workdir DIR]

DATA is any folder laid out as <label>/<image>. Per seed, a fixed 20% of each
class is the test set; n confirmed examples per class are drawn from the rest
("all": every one of them), a model version is trained with the real
`train()` (holdout 0: the test set measures it), activated (which re-scores
every item through the real path), and its suggestions on the test set are
compared with the truth, next to zero-shot's on the same items.

The project (images, features, zero-shot head) is built once into --workdir
and copied per run, so a second run, or a run on a GPU machine given that
folder, skips the embedding. Ends with one JSON line of all figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from index.project import Project  # noqa: E402
from index.types import Action  # noqa: E402
from tools.training import TrainConfig, activate, train  # noqa: E402
from tools.zeroshot import suggest  # noqa: E402

TEST_SHARE = 0.2


def prepare(data: Path, folder: Path, model: str) -> dict[int, str]:
    """Build (once) a project of DATA with features and zero-shot suggestions; returns the truth."""
    truth_file = folder / "truth.json"
    if truth_file.exists():
        return {int(k): v for k, v in json.loads(truth_file.read_text()).items()}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from labelling import build_project

    started = time.perf_counter()
    project, truth = build_project(folder, data)
    project.store.set_setting("model", model)
    suggest(project, model=model)
    project.close()
    truth_file.write_text(json.dumps(truth))
    print(f"built {folder} ({len(truth)} items) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return truth


def draw(truth: dict[int, str], seed: int) -> tuple[dict[str, list[int]], list[int]]:
    """(training pool per class, test items): a fixed share of every class is the test set."""
    rng = np.random.default_rng(seed)
    pool, test = {}, []
    for label in sorted(set(truth.values())):
        ids = [int(i) for i in rng.permutation(sorted(i for i, l in truth.items() if l == label))]
        n_test = max(1, round(len(ids) * TEST_SHARE))
        test += ids[:n_test]
        pool[label] = ids[n_test:]
    return pool, sorted(test)


def accuracy_on(project: Project, truth: dict[int, str], items: list[int]) -> float:
    top = project.store.top_suggestions()
    return float(np.mean([top[i].label == truth[i] for i in items if i in top]))


def one_run(base: Path, scratch: Path, truth: dict[int, str], kind: str, n: str, seed: int,
            args: argparse.Namespace) -> dict:
    pool, test = draw(truth, seed)
    folder = scratch / f"{kind}-{n}-{seed}"
    shutil.copytree(base, folder)
    with Project(folder) as project:
        chosen = [(i, Action.ACCEPT, label) for label, ids in pool.items()
                  for i in (ids if n == "all" else ids[: int(n)])]
        project.store.decide_many(chosen, actor="bench", auto=False)
        zero_shot = accuracy_on(project, truth, test)
        config = TrainConfig(kind=kind, holdout=0.0, seed=seed, epochs=args.epochs, device=args.device,
                             batch_size=args.batch_size, lr=args.lr)
        started = time.perf_counter()
        report = train(project, config)
        seconds = time.perf_counter() - started
        activate(project, report.version.id, device=None if args.device == "auto" else args.device)
        trained = accuracy_on(project, truth, test)
    shutil.rmtree(folder, ignore_errors=True)
    result = {"zero_shot": round(zero_shot, 4), kind: round(trained, 4), "train_seconds": round(seconds, 2),
              "examples": len(chosen), "test_items": len(test)}
    for key in ("strength", "wise_alpha", "best_epoch", "device", "precision", "batch_size", "peak_memory_mb"):
        if key in report.details:
            result[key] = report.details[key]
    if "history" in report.details:
        result["seconds_per_epoch"] = round(statistics.mean(h["seconds"] for h in report.details["history"]), 2)
        result["epochs_run"] = len(report.details["history"])
    print(f"{kind:>9} n={n:<4} seed={seed}: zero-shot {zero_shot:.3f} -> {trained:.3f} "
          f"({seconds:.1f} s)", file=sys.stderr)
    return result


def summarise(runs: list[dict], kind: str) -> dict:
    def mean(key):
        return round(statistics.mean(r[key] for r in runs), 4)

    summary = {"zero_shot": mean("zero_shot"), kind: mean(kind), "train_seconds": mean("train_seconds"),
               "min_gain": round(min(r[kind] - r["zero_shot"] for r in runs), 4), "runs": runs}
    if all("seconds_per_epoch" in r for r in runs):
        summary["seconds_per_epoch"] = mean("seconds_per_epoch")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="offline")
    parser.add_argument("--per-class", nargs="+", default=["10", "50", "all"])
    parser.add_argument("--finetune-per-class", nargs="+", default=None,
                        help="sizes for finetune (default: as --per-class)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=["probe", "finetune"], choices=["probe", "finetune"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-4, help="finetune: peak learning rate of the tower")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", type=Path, help="keep the prepared project here (default: a temporary folder)")
    args = parser.parse_args()
    figures: dict = {"data": args.data.name, "model": args.model, "epochs": args.epochs, "lr": args.lr, "results": {}}
    with tempfile.TemporaryDirectory(prefix="labelchat-train-bench-") as tmp:
        base = args.workdir or Path(tmp) / "base"
        truth = prepare(args.data, base, args.model)
        for kind in args.kinds:
            sizes = args.finetune_per_class if kind == "finetune" and args.finetune_per_class else args.per_class
            for n in sizes:
                runs = [one_run(base, Path(tmp), truth, kind, n, seed, args) for seed in range(args.seeds)]
                figures["results"][f"{kind}/{n}"] = summarise(runs, kind)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
