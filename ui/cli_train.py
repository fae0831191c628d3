"""The training commands of `labelchat`: train, models, jobs."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from index.errors import LabelchatError
from index.project import Project
from index.types import ModelVersion
from tools.wording import counted

from .cli_common import EXIT_INTERRUPTED, EXIT_OK, emit, graceful_stop, non_negative_int, open_project, positive_int
from .format import percent


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    train = command("train", "train a model on the confirmed labels (a probe in seconds, or a fine-tune)", cmd_train)
    train.add_argument("--kind", default="probe", choices=["probe", "finetune"],
                       help="probe: a linear classifier on cached features (default); "
                       "finetune: the image tower too (a GPU is best)")
    train.add_argument("--epochs", type=positive_int, default=10, help="finetune: most epochs (early stopping may end sooner)")
    train.add_argument("--device", default="auto", help="auto (default), cuda, cuda:N, cpu or mps")
    train.add_argument("--holdout", type=float, default=0.2, metavar="F",
                       help="share of each label's confirmed items kept out to measure the model (default 0.2)")
    train.add_argument("--batch-size", type=non_negative_int, default=0, metavar="N", help="finetune: default 64 on GPU, 16 on CPU")
    train.add_argument("--lr", type=float, default=1e-4, help="finetune: peak learning rate of the tower")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--model", metavar="SPEC", help="base model (default: the project's)")
    train.add_argument("--activate", action="store_true", help="activate the new version: it re-scores every item")
    what = train.add_mutually_exclusive_group()
    what.add_argument("--resume", action="store_true", help="continue the last cancelled or interrupted run")
    what.add_argument("--cancel", action="store_true", help="ask the running training job to stop")

    models = command("models", "list, compare, activate, export and import trained model versions", cmd_models)
    models.add_argument("action", nargs="?", default="list",
                        choices=["list", "show", "compare", "activate", "export", "import"])
    models.add_argument("args", nargs="*", metavar="ARG",
                        help="show V | compare V1 V2 | activate V (or 'base' for zero-shot) | "
                        "export V DIR | import DIR   (V: a version's id or name)")
    models.add_argument("--device", default=None, help="for activate: where to re-score")

    jobs = command("jobs", "recent background jobs (training, crawls) and their progress", cmd_jobs)
    jobs.add_argument("--limit", type=positive_int, default=10)


# -- handlers ---------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from tools.training import TrainConfig, TrainingCancelled, request_cancel
    from tools.workbench import Workbench

    with open_project(args) as project:
        if args.cancel:
            job = request_cancel(project)
            text = f"Asked training job {job.id} to stop; it keeps its checkpoint." if job else "No training job is running."
            emit(args, {"ok": True, "cancelled": job.id if job else None}, text)
            return EXIT_OK
        config = TrainConfig(kind=args.kind, model=args.model, device=args.device, holdout=args.holdout,
                             seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
        with _train_progress(args) as progress, graceful_stop() as stop:
            try:
                bench = Workbench(project, device=None if args.device == "auto" else args.device)
                report, activation = bench.train(config, activate=args.activate, resume=args.resume,
                                                 on_progress=progress, should_stop=stop)
            except TrainingCancelled as exc:
                emit(args, {"ok": False, "cancelled": True, "job": exc.job_id, "error": str(exc)}, str(exc))
                return EXIT_INTERRUPTED
        text = format_train_report(report)
        if activation is not None:
            text += f"\nActivated {report.version.name}: re-scored {activation.rescored} items."
        else:
            text += f"\nUse it for suggestions: labelchat models activate {report.version.name}"
        version = project.store.model_version(report.version.id)
    m = version.metrics
    emit(args, {"ok": True, "version": {"id": version.id, "name": version.name, "kind": version.kind,
                                         "active": version.active},
                 "accuracy": m.get("accuracy"), "zero_shot_accuracy": m.get("zero_shot_accuracy"),
                 "holdout_items": m.get("holdout_items"), "metrics": m, "seconds": report.seconds}, text)
    return EXIT_OK


def _train_progress(args: argparse.Namespace):
    """Epoch lines and a step bar on stderr."""
    from contextlib import contextmanager

    from tqdm import tqdm

    @contextmanager
    def manager():
        bar = tqdm(unit="step", file=sys.stderr, disable=True if args.quiet else None, dynamic_ncols=True, leave=False)

        def update(event) -> None:
            if event.phase == "step":
                bar.total, bar.n = event.steps, event.step
                bar.set_description_str(f"epoch {event.epoch}/{event.epochs}", refresh=False)
                bar.set_postfix_str(f"loss {event.train_loss:.3f}", refresh=False)
                bar.refresh()
            elif event.message and not args.quiet:
                bar.clear()
                print(event.message, file=sys.stderr)

        try:
            yield update
        finally:
            bar.close()

    return manager()


def cmd_models(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tools.training import export_version, import_version
    from tools.workbench import Workbench

    action, rest = args.action, list(args.args)
    with open_project(args) as project:
        if action == "list":
            versions = project.store.model_versions()
            emit(args, {"ok": True, "versions": versions}, format_versions(versions))
        elif action == "show":
            need_args(action, rest, 1, "one version")
            v = find_version(project, rest[0])
            emit(args, {"ok": True, "version": v}, format_versions([v]) + "\n" + _details(v))
        elif action == "compare":
            need_args(action, rest, 2, "two versions")
            a, b = find_version(project, rest[0]), find_version(project, rest[1])
            emit(args, {"ok": True, "versions": [a, b]}, format_compare(a, b))
        elif action == "activate":
            need_args(action, rest, 1, "one version, or 'base'")
            done = Workbench(project, device=args.device).use_version(rest[0])
            version = done.version
            name = version.name if version else "zero-shot (no trained version)"
            emit(args, {"ok": True, "active": version.name if version else None, "rescored": done.rescored},
                  f"Active: {name}. Re-scored {done.rescored} items in {done.seconds:.1f} s.")
        elif action == "export":
            need_args(action, rest, 2, "a version and a folder")
            target = export_version(project, find_version(project, rest[0]).id, Path(rest[1]))
            emit(args, {"ok": True, "path": str(target)}, f"Exported to {target}")
        else:
            need_args(action, rest, 1, "one folder")
            version = import_version(project, Path(rest[0]))
            emit(args, {"ok": True, "version": version},
                  f"Imported as {version.name}. Activate it with: labelchat models activate {version.name}")
    return EXIT_OK


def _details(version: ModelVersion) -> str:
    from tools.training.metrics import Metrics

    lines = []
    if version.metrics.get("holdout"):
        lines += format_per_class(Metrics.from_dict(version.metrics["holdout"]))
    history = version.metrics.get("history", [])
    if history and "step" in history[0]:  # a probe: L-BFGS steps, not epochs
        first, last = history[0], history[-1]
        lines.append(f"  fitted in {counted(len(history), 'step')}: loss {first['train_loss']:.3f} -> "
                     f"{last['train_loss']:.3f}, training accuracy {last['train_accuracy']:.3f}")
        history = []
    for record in history:
        accuracy = record.get("val_accuracy")
        lines.append(f"  epoch {record['epoch']}: loss {record['train_loss']:.3f}"
                     + (f", validation accuracy {accuracy:.3f}" if accuracy is not None else ""))
    return "\n".join(lines)


def cmd_jobs(args: argparse.Namespace) -> int:
    with open_project(args) as project:
        jobs = project.store.jobs(limit=args.limit)
    emit(args, {"ok": True, "jobs": jobs}, format_jobs(jobs))
    return EXIT_OK


def find_version(project: Project, ref: str) -> ModelVersion:
    from tools.workbench import Workbench

    return Workbench(project).find_version(ref)


def need_args(action: str, args: list[str], count: int, usage: str) -> None:
    if len(args) != count:
        raise LabelchatError(f"'labelchat models {action}' takes {usage}; got {args or 'nothing'}.")


# -- text for people ---------------------------------------------------------------------


def format_train_report(report) -> str:
    m = report.version.metrics
    lines = [
        f"Trained {report.version.name} ({report.version.kind} on {report.version.base_model}) in {report.seconds:.1f} s.",
        f"  held-out accuracy: {percent(m.get('accuracy'))} (zero-shot on the same "
        f"{m.get('holdout_items', 0)} items: {percent(m.get('zero_shot_accuracy'))})",
        f"  trained on {m.get('train_items', 0)} items, validated on {m.get('validation_items', 0)}",
    ]
    if report.details.get("wise_alpha") is not None:
        lines.append(f"  WiSE-FT mix with zero-shot weights: {report.details['wise_alpha']} (picked on validation)")
    if "strength" in report.details:
        strength = report.details["strength"]
        lines.append(f"  regularisation: {strength if strength is not None else 'none fitted: zero-shot was best'}")
    lines += format_per_class(report.metrics)
    return "\n".join(lines)


def format_per_class(metrics) -> list[str]:
    if not metrics.per_class:
        return []
    lines = ["  per label (held out):  precision  recall  items"]
    for c in metrics.per_class:
        lines.append(f"    {c.label[:20]:<20} {percent(c.precision):>9} {percent(c.recall):>7} {c.support:>6}")
    return lines


def format_versions(versions: list[ModelVersion]) -> str:
    if not versions:
        return "No model versions yet. Confirm some labels, then: labelchat train"
    lines = [f"{'':2}{'version':<22}{'kind':<10}{'held-out':>9}{'zero-shot':>10}  base model, created"]
    for v in versions:
        mark = "* " if v.active else "  "
        lines.append(f"{mark}{v.name:<22}{v.kind:<10}{percent(v.metrics.get('accuracy')):>9}"
                     f"{percent(v.metrics.get('zero_shot_accuracy')):>10}  {v.base_model}, {v.created_at[:16]}")
    lines.append("(* active: it suggests labels; 'labelchat models activate base' goes back to zero-shot)")
    return "\n".join(lines)


def format_compare(a: ModelVersion, b: ModelVersion) -> str:
    from tools.training.metrics import Metrics

    lines = [f"{'':24}{a.name:>16}{b.name:>16}"]
    for key in ("accuracy", "zero_shot_accuracy", "train_items", "holdout_items"):
        va, vb = a.metrics.get(key), b.metrics.get(key)
        show = percent if "accuracy" in key else str
        lines.append(f"{key:<24}{show(va):>16}{show(vb):>16}")
    ma = Metrics.from_dict(a.metrics["holdout"]) if a.metrics.get("holdout") else None
    mb = Metrics.from_dict(b.metrics["holdout"]) if b.metrics.get("holdout") else None
    if ma and mb:
        recall_b = {c.label: c.recall for c in mb.per_class}
        lines.append("recall per label:")
        for c in ma.per_class:
            lines.append(f"  {c.label[:22]:<22}{percent(c.recall):>16}{percent(recall_b.get(c.label)):>16}")
    return "\n".join(lines)


def format_jobs(jobs) -> str:
    if not jobs:
        return "No jobs yet."
    lines = []
    for job in jobs:
        progress = f"{job.done}/{job.total}" if job.total else str(job.done)
        lines.append(f"{job.id:>4} {job.kind:<8} {job.status.value:<10} {progress:>7}  {job.message[:80]}")
    return "\n".join(lines)


