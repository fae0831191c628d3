"""The quality commands of `labelchat`: suspects (confirmed labels that look wrong)."""

from __future__ import annotations

import argparse
from typing import Callable

from tools.wording import counted

from .cli_common import EXIT_OK, emit, open_project, positive_int
from .cli_review import workbench_for


def add_commands(command: Callable[..., argparse.ArgumentParser], model_options: Callable) -> None:
    suspects = command("suspects", "confirmed items whose labels look wrong (out-of-fold probe + cleanlab)",
                       cmd_suspects)
    suspects.add_argument("--limit", type=positive_int, default=20, metavar="N", help="how many (default 20)")
    model_options(suspects)
    health = command("health", "duplicates, outliers that fit no label, and images too small or blank", cmd_health)
    health.add_argument("--limit", type=positive_int, default=10, metavar="N", help="examples shown per finding (text)")
    model_options(health)


def cmd_suspects(args: argparse.Namespace) -> int:
    from tools.quality.suspects import find_suspects

    with open_project(args) as project:
        reviewer = workbench_for(args, project).reviewer()
        report = find_suspects(project, reviewer.model, limit=args.limit)
    value = {"ok": True, "suspects": [{"item_id": s.item_id, "label": s.label, "likely_label": s.likely_label,
                                       "score": s.score} for s in report.suspects],
             "scored": report.scored, "kept": report.kept, "unscored": report.unscored}
    emit(args, value, format_suspects(report))
    return EXIT_OK


def format_suspects(report) -> str:
    lines = [f"item {s.item_id:<6} labelled {s.label!r}, looks like {s.likely_label!r}  (score {s.score:.2f})"
             for s in report.suspects]
    head = (f"{len(report.suspects)} label(s) look wrong among {report.scored} confirmed items"
            + (f" ({report.kept} flagged earlier were kept by a person)" if report.kept else "") + ".")
    if not report.suspects:
        head = f"No label looks wrong among {report.scored} confirmed items."
    tail = [f"Not scored: {label}: {why}." for label, why in report.unscored.items()]
    advice = ["Check them: labelchat review --answer --strategy suspect (y keeps a label, a label's "
              "number corrects it)."] if report.suspects else []
    return "\n".join([head, *lines, *tail, *advice])


def cmd_health(args: argparse.Namespace) -> int:
    from tools.quality.health import dataset_health

    with open_project(args) as project:
        report = dataset_health(workbench_for(args, project).reviewer())
    emit(args, {"ok": True, "items": report.items, "counts": report.counts,
                "exact_duplicates": [{"item_id": i, "sources": n} for i, n in report.exact_duplicates],
                "duplicates": report.duplicates, "outliers": report.outliers, "poor_images": report.poor_images},
         format_health(report, args.limit))
    return EXIT_OK


def format_health(report, limit: int) -> str:
    counts = report.counts
    lines = [f"Health of {counted(report.items, 'image')}: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()) + "."]
    for pair in report.duplicates[:limit]:
        how = f"{pair.closeness:.0f} hash bits apart" if pair.kind == "perceptual" else f"cosine {pair.closeness:.3f}"
        lines.append(f"  duplicate: items {pair.item_id} and {pair.other_id} ({how}), labels "
                     f"{pair.labels[0] or '-'} / {pair.labels[1] or '-'}")
    for finding in (report.outliers + report.poor_images)[:limit]:
        lines.append(f"  {finding.reason}: item {finding.item_id}: {finding.detail}")
    if len(report.duplicates) + len(report.outliers) + len(report.poor_images) > 0:
        lines.append("Act on them: 'labelchat reject ID' drops one, 'labelchat correct ID LABEL' relabels; "
                     "'labelchat similar ID' shows its neighbours.")
    return "\n".join(lines)
