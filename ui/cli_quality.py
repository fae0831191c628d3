"""The quality commands of `labelchat`: suspects (confirmed labels that look wrong)."""

from __future__ import annotations

import argparse
from typing import Callable

from .cli_common import EXIT_OK, emit, open_project, positive_int
from .cli_review import reviewer_for


def add_commands(command: Callable[..., argparse.ArgumentParser], model_options: Callable) -> None:
    suspects = command("suspects", "confirmed items whose labels look wrong (out-of-fold probe + cleanlab)",
                       cmd_suspects)
    suspects.add_argument("--limit", type=positive_int, default=20, metavar="N", help="how many (default 20)")
    model_options(suspects)


def cmd_suspects(args: argparse.Namespace) -> int:
    from tools.quality.suspects import find_suspects

    with open_project(args) as project:
        reviewer = reviewer_for(args, project)
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
