"""The conversation commands of `labelchat`: chat (in the terminal) and run (a script of messages)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from index.errors import LabelchatError
from index.project import Project

from . import format as fmt
from .cli_common import EXIT_ERROR, EXIT_OK, actor, brain_options, lazy_progress_bar, open_project


def _session(args: argparse.Namespace, project: Project):
    from agent.session import Session

    return Session(project, brain=args.brain, yes=args.yes, session_id=args.session, actor=actor(args),
                   model=args.model, device=args.device, **brain_options(args))


@dataclass
class _Turn:
    """What one message came to, as `run` judges a script's lines."""

    failed: bool = False  # a tool failed, or an error was reported
    ran_tool: bool = False  # a tool ran
    asks_yes: bool = False  # an action waits for a yes


def _talk(session, message: str, args: argparse.Namespace) -> _Turn:
    """Send one message and print its steps; a progress bar shows only while a tool reports
    progress, and is gone before the next line is printed."""
    from agent.steps import ErrorStep, NeedsConfirmation, Progress, ToolResult

    turn, said = _Turn(), []
    source_of = _sources(session)
    with lazy_progress_bar(args, "img") as progress:
        for step in session.send(message):
            if isinstance(step, Progress):
                progress.update(step.done, step.total, step.what)
                continue
            progress.close()
            turn.failed |= isinstance(step, ErrorStep) or (isinstance(step, ToolResult) and not step.ok)
            turn.ran_tool |= isinstance(step, ToolResult)
            turn.asks_yes |= isinstance(step, NeedsConfirmation)
            if args.json:
                print(fmt.json_line({"type": type(step).__name__, **fmt.to_jsonable(step)}), flush=True)
            else:
                text = fmt.format_step(step, said, source_of)
                if text:
                    print(text, flush=True)
    return turn


def _sources(session):
    """An image's path or URL by id, for the table of shown images."""
    store = session.project.store

    def source_of(item_id: int) -> str:
        try:
            return store.get_item(item_id).source
        except LabelchatError:
            return "?"

    return source_of


def cmd_chat(args: argparse.Namespace) -> int:
    with open_project(args, create=True) as project:
        session = _session(args, project)
        if not args.json:
            print("labelchat> " + session.welcome(), flush=True)
        print("labelchat: say 'help' for what I can do; Ctrl-D to leave.", file=sys.stderr, flush=True)
        while True:
            try:
                line = input("you> ")
            except EOFError:
                print(file=sys.stderr)
                return EXIT_OK
            _talk(session, line, args)


def cmd_run(args: argparse.Namespace) -> int:
    from agent.session import NO, YES

    try:
        lines = Path(args.script).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise LabelchatError(f"The script {args.script} does not exist.") from None
    except UnicodeDecodeError as exc:
        raise LabelchatError(f"The script {args.script} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise LabelchatError(f"Cannot read the script {args.script}: {exc.strerror}") from None
    failed: list[str] = []  # "line 3 (why)"
    waiting: int | None = None  # the line whose action waits for a yes
    with open_project(args, create=True) as project:
        session = _session(args, project)
        for number, line in enumerate(lines, start=1):
            message = line.strip()
            if not message or message.startswith("#"):
                continue
            answers = waiting is not None and bool(YES.match(message) or NO.match(message))
            if waiting is not None and not answers:
                failed.append(f"line {waiting} (waited for a yes that did not come; --yes runs it)")
            waiting = None
            if not args.json:
                print(f"you> {message}", flush=True)
            turn = _talk(session, message, args)
            problem = _line_problem(turn, message, answers)
            if problem:
                failed.append(f"line {number} ({problem})")
            if turn.asks_yes:
                waiting = number
    if waiting is not None:
        failed.append(f"line {waiting} (waited for a yes that did not come; --yes runs it)")
    if failed:
        print(f"error: {len(failed)} line(s) of {args.script} failed: " + ", ".join(failed)
              + ". The answers above say why.", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _line_problem(turn: _Turn, message: str, answers_a_question: bool) -> str | None:
    """Why a script line counts as failed, or None. A line that ran nothing (not understood,
    or asked back for what it needs) fails, unless it asked for help or answered a question."""
    from agent.router import route

    if turn.failed:
        return "failed"
    if turn.ran_tool or turn.asks_yes or answers_a_question:
        return None
    if route(message).reply == route("help").reply:
        return None
    return "not understood, or something was missing: nothing was done"
