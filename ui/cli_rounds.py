"""`labelchat round ...`: review rounds in the terminal (start, list, review, adjudicate, report,
close, undo) and `labelchat quality-report`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from index.errors import LabelchatError

from . import format as fmt
from .cli_common import EXIT_OK, actor, emit, open_project, positive_int, probability

ROUND_ACTIONS = ["start", "list", "review", "adjudicate", "report", "close", "undo"]


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    rounds = command("round", "review rounds: a second person relabels a sample blind; an adjudicator settles "
                     "disagreements; agreement and kappa are reported", cmd_round)
    rounds.add_argument("action", choices=ROUND_ACTIONS, metavar="ACTION",
                        help="start, list, review, adjudicate, report, close or undo")
    rounds.add_argument("--round", dest="round_id", type=positive_int, metavar="ID",
                        help="which round (default: the newest open one)")
    rounds.add_argument("--size", type=positive_int, metavar="N", help="start: items to draw")
    rounds.add_argument("--confidence", type=probability, metavar="P",
                        help="start: without --size, draw enough items for this confidence (default 0.95)")
    rounds.add_argument("--margin", type=probability, metavar="E",
                        help="start: ...and this margin of error on the share of wrong labels (default 0.05)")
    rounds.add_argument("--reviewer", metavar="NAME", help="start: the one person to review this round")
    rounds.add_argument("--seed", type=int, default=None, help="start: for a reproducible sample")
    report = command("quality-report", "the labels' measured quality: per-class precision, recall and F1 from "
                     "review rounds and audits, the confusion matrix, suspects fixed, duplicates removed",
                     cmd_quality_report)
    report.add_argument("--out", metavar="FILE", help="write Markdown (or JSON with --json) to FILE")


def cmd_round(args: argparse.Namespace) -> int:
    return _HANDLERS[args.action](args)


def _start(args: argparse.Namespace) -> int:
    from tools.rounds import start_round

    from .people import AUTH_FILE_ENV, known_user, read_auth_file

    if args.size is not None and (args.confidence is not None or args.margin is not None):
        raise LabelchatError("Give --size, or --confidence and --margin, not both.")
    auth_file = args.auth_file or os.environ.get(AUTH_FILE_ENV)
    people = list(read_auth_file(auth_file)) if auth_file else None
    reviewer = known_user(args.reviewer, auth_file) if args.reviewer else None
    with open_project(args) as project:
        round_ = start_round(project.store, actor=actor(args), size=args.size, confidence=args.confidence,
                             margin=args.margin, reviewer=reviewer, people=people, seed=args.seed)
    who = f" for {round_.reviewer}" if round_.reviewer else ""
    emit(args, {"ok": True, "round": round_},
         f"Started review round {round_.id}{who}: {round_.why}.\nReview it: labelchat round review --user NAME "
         f"(nobody sees the first label, and nobody reviews their own items).")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    with open_project(args) as project:
        store = project.store
        rounds = store.rounds()
        answered = {r.id: len({a.item_id for a in store.round_answers(r.id) if a.kind == "review"}) for r in rounds}
    lines = [f"round {r.id:<4} {r.status:<7} {answered[r.id]:>4}/{r.size:<4} reviewed  by "
             f"{r.reviewer or 'anyone else'}  (started by {r.created_by}, {r.created_at[:16]})" if r.kind == "review"
             else f"audit {r.id:<4} {answered[r.id]:>4}/{r.size:<4} suggestions checked  ({r.why}, {r.created_at[:16]})"
             for r in rounds]
    emit(args, {"ok": True, "rounds": [{**fmt.to_jsonable(r), "reviewed": answered[r.id]} for r in rounds]},
         "\n".join(lines) or "No review rounds yet: labelchat round start --size 30.")
    return EXIT_OK


def _in_round(args: argparse.Namespace, work: Callable) -> tuple[str, int, int, int, int]:
    """Run `work(project, round id, user, labels)` (which returns how many answers it saved) on the
    round asked for; returns (user, round id, answers saved, items left to review, disagreements left)."""
    from tools.rounds import current_round, disagreements

    user = actor(args)
    with open_project(args) as project:
        store = project.store
        round_id = current_round(store, args.round_id).id
        done = work(project, round_id, user, store.label_set().names)
        reviewed = {a.item_id for a in store.round_answers(round_id) if a.kind == "review"}
        left = len(store.round_items(round_id)) - len(reviewed)
        waiting = len(disagreements(store, round_id))
    return user, round_id, done, left, waiting


def _image(project, item_id: int) -> str:
    """The image's file in the project, not its source: a source folder may name the label."""
    return str(project.media.path(project.store.get_item(item_id).media_path))


def _review(args: argparse.Namespace) -> int:
    user, round_id, answered, left, waiting = _in_round(args, _review_items)
    emit(args, {"ok": True, "round": round_id, "answered": answered, "left": left, "to_adjudicate": waiting},
         f"{answered} answer(s) saved in round {round_id} by {user}; {left} item(s) left to review, "
         f"{waiting} disagreement(s) to adjudicate (labelchat round adjudicate).")
    return EXIT_OK


def _review_items(project, round_id: int, user: str, labels: list[str]) -> int:
    from tools.rounds import next_to_review, review_item, undo_answer

    store = project.store
    answered, skipped = 0, set()
    while (item := next_to_review(store, round_id, user, skipped)) is not None:
        print(f"#{item.item_id}  {_image(project, item.item_id)}\n  which label?  " +
              "  ".join(f"{i}={name}" for i, name in enumerate(labels, start=1)), file=sys.stderr)
        answer = _ask(labels, "label [a label's name or number, s skip, u undo your last answer, q quit]: ")
        if answer is None or answer[0] == "quit":
            break
        if answer[0] == "skip":
            print("  (skipped for now: it stays in the round)", file=sys.stderr)
            skipped.add(item.item_id)
            continue
        try:
            if answer[0] == "undo":
                undone = undo_answer(store, round_id, user)
                answered -= 1
                print(f"  took back your answer on #{undone.item_id}", file=sys.stderr)
                continue
            review_item(store, round_id, item.item_id, answer[1], user)
            answered += 1
        except LabelchatError as exc:  # someone else answered it first, among others: said, nothing counted
            print(f"  {exc}", file=sys.stderr)
    return answered


def _adjudicate(args: argparse.Namespace) -> int:
    user, round_id, settled, _, waiting = _in_round(args, _adjudicate_items)
    emit(args, {"ok": True, "round": round_id, "adjudicated": settled, "to_adjudicate": waiting},
         f"{settled} disagreement(s) settled by {user} in round {round_id}; {waiting} left.")
    return EXIT_OK


def _adjudicate_items(project, round_id: int, user: str, labels: list[str]) -> int:
    from tools.rounds import adjudicate, disagreements

    settled = 0
    for case in disagreements(project.store, round_id):
        print(f"#{case.item_id}  {_image(project, case.item_id)}\n  1) {case.first_label} (by {case.first_actor})   "
              f"2) {case.review_label} (by {case.reviewer})   or another label: " + "  ".join(labels), file=sys.stderr)
        answer = _ask(labels, "the right label [1, 2, a label's name, s skip, q quit]: ",
                      {"1": case.first_label, "2": case.review_label})
        if answer is None or answer[0] == "quit":
            break
        if answer[0] != "label":
            continue
        try:
            adjudicate(project.store, round_id, case.item_id, answer[1], user)
            settled += 1
        except LabelchatError as exc:
            print(f"  {exc}", file=sys.stderr)
    return settled


def _ask(labels: list[str], prompt: str, picks: dict[str, str] | None = None) -> tuple[str, str | None] | None:
    """Read answers until one is understood: ('label', name) or ('undo'|'skip'|'quit', None); None at
    the end of input. A label is its name or number; with `picks` ({"1": label, ...}) those keys
    pick instead, and labels go by name."""
    while True:
        print(prompt, end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            return None
        text = line.strip()
        if text.lower() in ("u", "s", "q"):
            return {"u": "undo", "s": "skip", "q": "quit"}[text.lower()], None
        if picks and text in picks:
            return "label", picks[text]
        parsed = fmt.parse_answer(text, labels) if text and not (picks and text.isdigit()) else None
        if parsed is not None and parsed[0] == "correct":
            return "label", parsed[1]
        print(f"  not understood: {text!r}", file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    from tools.rounds import current_round, round_report

    with open_project(args) as project:
        round_ = current_round(project.store, args.round_id, open_only=False)
        report = round_report(project.store, round_.id)
    emit(args, {"ok": True, **round_report_json(report)}, format_round_report(report))
    return EXIT_OK


def round_report_json(report) -> dict:
    return {"round": fmt.to_jsonable(report.round), "items": report.items, "reviewed": report.reviewed,
            "agreed": report.agreed, "disagreed": report.disagreed, "adjudicated": report.adjudicated,
            "to_adjudicate": report.to_adjudicate, "agreement": report.agreement, "kappa": report.kappa,
            "changed": report.changed,
            "per_class": [{"label": c.label, "reviewed": c.reviewed, "agreed": c.agreed, "agreement": c.agreement}
                          for c in report.per_class],
            "per_annotator": [{"name": a.name, "judged": a.judged, "correct": a.correct, "accuracy": a.accuracy}
                              for a in report.per_annotator],
            "notes": list(report.notes)}


def format_round_report(report) -> str:
    r = report.round
    kappa = "n/a" if report.kappa is None else f"{report.kappa:.3f}"
    agreement = "n/a" if report.agreement is None else f"{report.agreement:.0%}"
    lines = [f"Review round {r.id} ({r.status}): {report.reviewed} of {report.items} items reviewed; agreement "
             f"{agreement}, Cohen's kappa {kappa}; {report.disagreed} disagreement(s), {report.adjudicated} "
             f"adjudicated ({report.changed} label(s) changed)."]
    lines += ["  per label (first label):"] + [
        f"    {c.label:<16} {c.agreed}/{c.reviewed} agreed" + (f" ({c.agreement:.0%})" if c.reviewed else "")
        for c in report.per_class]
    if report.per_annotator:
        lines += ["  per person, against the settled answers:"] + [
            f"    {a.name:<16} {a.correct}/{a.judged} right ({a.accuracy:.0%})" for a in report.per_annotator]
    lines += [f"  note: {note}." for note in report.notes]
    return "\n".join(lines)


def _close(args: argparse.Namespace) -> int:
    from tools.rounds import close_round, current_round

    with open_project(args) as project:
        round_ = close_round(project.store, current_round(project.store, args.round_id).id, actor(args))
    emit(args, {"ok": True, "round": round_}, f"Closed review round {round_.id}; 'labelchat round report --round "
                                             f"{round_.id}' shows how it went.")
    return EXIT_OK


def _undo(args: argparse.Namespace) -> int:
    from tools.rounds import current_round, undo_answer

    user = actor(args)
    with open_project(args) as project:
        round_ = current_round(project.store, args.round_id)
        undone = undo_answer(project.store, round_.id, user)
    what = "review" if undone.kind == "review" else "adjudication"
    extra = " and the label change it made" if undone.decision_id is not None else ""
    emit(args, {"ok": True, "undone": undone},
         f"Took back {user}'s {what} of #{undone.item_id} ({undone.label!r}){extra} in round {round_.id}.")
    return EXIT_OK


_HANDLERS = {"start": _start, "list": _list, "review": _review, "adjudicate": _adjudicate, "report": _report,
             "close": _close, "undo": _undo}


def cmd_quality_report(args: argparse.Namespace) -> int:
    from tools.quality.report import format_markdown, quality_report, to_json

    with open_project(args) as project:
        report = quality_report(project.store)
    value = {"ok": True, **to_json(report)}
    text = format_markdown(report)
    if args.out:
        Path(args.out).expanduser().write_text(fmt.json_line(value) + "\n" if args.json else text + "\n",
                                               encoding="utf-8")
        print(f"Wrote the quality report to {args.out}.", file=sys.stderr)
        if not args.json:
            return EXIT_OK
    emit(args, value, text)
    return EXIT_OK
