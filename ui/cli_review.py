"""The review commands of `labelchat`: review (and --answer), accept, reject, skip, correct,
auto-accept and similar."""

from __future__ import annotations

import argparse
import sys

from index.errors import LabelchatError, NothingToUndoError
from index.project import Project
from tools.wording import counted
from tools.workbench import Workbench

from . import format as fmt
from .cli_common import EXIT_OK, actor, emit, fail, notice, open_project, progress_bar


def workbench_for(args: argparse.Namespace, project: Project) -> Workbench:
    """The project's workbench with its review loop open (scoring what is not scored yet, with
    a progress bar), on the model the options name."""
    with progress_bar(args, "img") as progress:
        bench = Workbench(project, model=args.model, device=args.device, template_set=args.templates,
                          on_notice=notice, on_progress=progress)
        bench.reviewer()
    return bench


def cmd_review(args: argparse.Namespace) -> int:
    with open_project(args) as project:
        bench = workbench_for(args, project)
        reviewer = bench.reviewer()
        cards = reviewer.batch(args.strategy, args.size, label=args.label)
        if not args.answer:
            emit(args, {"ok": True, "cards": cards}, fmt.format_cards(cards, reviewer.labels))
            return EXIT_OK
        decided = _answer_cards(bench, cards, actor(args))
        refresh = bench.refresh()
        emit(args, {"ok": True, "decided": decided, "refresh": refresh},
              f"{counted(decided, 'decision')} saved; suggestions of {counted(refresh.written, 'item')} updated.")
    return EXIT_OK


def _answer_cards(bench: Workbench, cards, who: str) -> int:
    """Ask for one answer per card on stdin; each decision is saved before the next card.
    'u' takes back this session's newest decision and asks again about its card (never a
    decision made before the session). Returns how many of its decisions are still in effect."""
    from index.types import Action

    start = bench.store.decision_mark()
    labels = bench.reviewer().labels
    queue = list(cards)
    by_id = {card.item.id: card for card in cards}
    decided: list[int] = []  # item ids, in the order they were decided
    while queue:
        card = queue[0]
        action = _ask(card, labels)
        if action is None or action[0] == "quit":
            break
        if action[0] == "undo":
            undone = [item_id for item_id in _undo_newest(bench, start, who) if item_id in decided]
            for item_id in undone:
                decided.remove(item_id)
            queue[:0] = [by_id[item_id] for item_id in undone]
            continue
        try:
            bench.decide(card.item.id, Action(action[0]), action[1], actor=who)
        except LabelchatError as exc:
            print(f"  {exc}", file=sys.stderr)
            continue
        decided.append(card.item.id)
        queue.pop(0)
    return len(decided)


def _ask(card, labels: list[str]) -> tuple[str, str | None] | None:
    """Show a card and read answers until one is understood; None at the end of input."""
    print(fmt.format_cards([card], labels), file=sys.stderr)
    while True:
        print(fmt.ANSWER_PROMPT, end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if not answer:
            return None
        action = fmt.parse_answer(answer, labels)
        if action is not None:
            return action
        print(f"  not understood: {answer.strip()!r}", file=sys.stderr)


def _undo_newest(bench: Workbench, since: int, who: str) -> list[int]:
    """Undo the newest decision made after the mark `since`; the items it undid."""
    try:
        report = bench.undo(actor=who, since=since)
    except NothingToUndoError:
        print("  nothing to undo", file=sys.stderr)
        return []
    print(f"  {report.text}", file=sys.stderr)
    return [d.item_id for d in report.undone]


def cmd_decide(args: argparse.Namespace) -> int:
    from index.types import Action

    action = Action(args.command)
    with open_project(args) as project:
        bench = workbench_for(args, project)
        if getattr(args, "min_prob", None) is not None:
            if args.items:
                raise LabelchatError("Give item ids or --min-prob, not both.")
            report = bench.accept_above(args.min_prob, args.label, actor=actor(args))
            text = f"Accepted {counted(report.accepted, 'item')}" + (f" suggested as {args.label}" if args.label else "") + \
                f" with probability >= {args.min_prob}. 'labelchat undo' takes them all back."
            value = {"ok": True, "accepted": report.accepted}
        else:
            if not args.items:
                raise LabelchatError(f"Give the ids of the items to {action.value}, e.g. labelchat {action.value} 12 13.")
            decisions = bench.decide_many(args.items, action, args.label, actor=actor(args))  # all or none; one undo
            text = "\n".join(fmt.format_decision(d) for d in decisions)
            value = {"ok": True, "decisions": decisions}
        value["refresh"] = bench.refresh()
        emit(args, value, text)
    return EXIT_OK


def cmd_correct(args: argparse.Namespace) -> int:
    from index.types import Action

    with open_project(args) as project:
        bench = workbench_for(args, project)
        decision = bench.decide(args.item, Action.CORRECT, args.label, actor=actor(args))
        refresh = bench.refresh()
        emit(args, {"ok": True, "decision": decision, "refresh": refresh}, fmt.format_decision(decision))
    return EXIT_OK


def cmd_auto_accept(args: argparse.Namespace) -> int:
    from tools.review import DEFAULT_MIN_PRECISION, finish_auto_accept, plan_auto_accept

    with open_project(args) as project:
        bench = workbench_for(args, project)
        reviewer = bench.reviewer()
        plan = plan_auto_accept(reviewer, args.min_prob, label=args.label, audit_size=args.audit, seed=args.seed)
        print(f"{len(plan.candidates)} pending items have a suggestion with probability >= {args.min_prob}.",
              file=sys.stderr)
        suggested = {i: project.store.suggestions(i)[0].label for i in plan.audit}
        if plan.audit:
            print(f"Check these {len(plan.audit)} random ones first:", file=sys.stderr)
            _answer_cards(bench, [reviewer.card(i) for i in plan.audit], actor(args))
        minimum = DEFAULT_MIN_PRECISION if args.min_precision is None else args.min_precision
        report = finish_auto_accept(reviewer, plan, suggested, min_precision=minimum)
        reviewer.refresh()
    value, text = {"ok": True, **fmt.to_jsonable(report)}, fmt.format_auto_accept(report)
    if report.refused:
        return fail(args, value, text, f"nothing more was accepted: {report.refused}")
    emit(args, value, text)
    return EXIT_OK


def cmd_similar(args: argparse.Namespace) -> int:
    from index.types import Status

    filters = {"confirmed_only": args.confirmed, "label": args.label,
               "status": Status(args.status) if args.status else None}
    with open_project(args) as project:
        reviewer = workbench_for(args, project).reviewer()
        if args.text:
            found = reviewer.similar_to_text(args.text, args.k, **filters)
        elif args.image:
            from PIL import Image

            try:
                with Image.open(args.image) as image:
                    found = reviewer.similar_to_image(image, args.k, **filters)
            except OSError as exc:
                raise LabelchatError(f"Cannot read the image {args.image}: {exc}") from exc
        elif args.item is not None:
            found = reviewer.similar(args.item, args.k, **filters)
        else:
            raise LabelchatError("Give an item id, --text or --image.")
        sources = {n.item_id: project.store.get_item(n.item_id).source for n in found}
        lines = [f"{n.item_id:>6}  {n.similarity:.3f}  {n.label or '-':<14}  {sources[n.item_id]}" for n in found]
        emit(args, {"ok": True, "neighbors": found}, "\n".join(lines) or "Nothing found.")
    return EXIT_OK
