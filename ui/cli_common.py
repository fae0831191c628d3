"""What every `labelchat` command shares: exit codes, option types, output, progress and Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from index.project import Project, default_project_dir

from . import format as fmt

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a Unix tool whose reader went away exits with


# -- option types: a value out of range is a usage error that names the option ----------------


def positive_int(text: str) -> int:
    """type= for counts that must be at least 1 (argparse shows the message, exit 2)."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give one like 10") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text} is too small: give {least} or more")
    return value


def probability(text: str) -> float:
    """type= for a probability in (0, 1]; '90%' is read as 0.9."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability; give one like 0.9") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability above 0 and at most 1; give one like 0.9")
    return value


def positive_float(text: str) -> float:
    return _number(text, lambda value: value > 0, "more than 0")


def non_negative_float(text: str) -> float:
    return _number(text, lambda value: value >= 0, "0 or more")


def _number(text: str, fits: Callable[[float], bool], wanted: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give one like 1.5") from None
    if not fits(value):
        raise argparse.ArgumentTypeError(f"{text} does not fit: give {wanted}")
    return value


def user_name(text: str) -> str:
    """type= for --user: the name that the decision log records."""
    name = text.strip()
    if not name or len(name) > 64 or ":" in name or any(c.isspace() or not c.isprintable() for c in name):
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable user name: give 1 to 64 characters "
                                         "without spaces or ':', e.g. --user ana")
    return name


def actor(args: argparse.Namespace) -> str:
    """Who decides: --user, else $LABELCHAT_USER, else the OS user; refused when an auth file
    (--auth-file or $LABELCHAT_AUTH_FILE) does not list that user."""
    import getpass
    import os

    from .people import known_user

    given = getattr(args, "user", None) or os.environ.get("LABELCHAT_USER")
    if given:
        return known_user(user_name(given), getattr(args, "auth_file", None))
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        name = "user"
    return known_user(name, getattr(args, "auth_file", None))


# -- output, progress, Ctrl-C ----------------------------------------------------------------


def emit_error(args: argparse.Namespace, message: str) -> None:
    if args.json:
        print(fmt.json_line({"ok": False, "error": message}))
    print(f"error: {message}", file=sys.stderr)


def emit(args: argparse.Namespace, value: object, text: str) -> None:
    print(fmt.json_line(value) if args.json else text)


def open_project(args: argparse.Namespace, *, create: bool = False) -> Project:
    return Project(args.project or default_project_dir(), create=create)


@contextmanager
def progress_bar(args: argparse.Namespace, unit: str) -> Iterator[Callable[[int, int, str], None]]:
    from tqdm import tqdm

    bar = tqdm(unit=unit, file=sys.stderr, disable=True if args.quiet else None, dynamic_ncols=True)

    def update(done: int, total: int, what: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what[-30:], refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


class LazyBar:
    """A tqdm bar made on the first progress report and cleared when closed: a turn without
    progress prints no bar, and no bar is left between the lines of an answer."""

    def __init__(self, unit: str, quiet: bool):
        self.unit, self.quiet, self.bar = unit, quiet, None

    def update(self, done: int, total: int, what: str) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            # disable=None: no bar where stderr is not a terminal (a script's log, a pipe)
            self.bar = tqdm(total=total, unit=self.unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                            disable=None)
        self.bar.total = total
        self.bar.n = done
        self.bar.set_postfix_str(what[-30:], refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            sys.stderr.flush()


@contextmanager
def lazy_progress_bar(args: argparse.Namespace, unit: str) -> Iterator[LazyBar]:
    bar = LazyBar(unit, bool(args.quiet))
    try:
        yield bar
    finally:
        bar.close()


@contextmanager
def graceful_stop() -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C asks the running job to stop after the current image; a second one aborts."""
    requested = []

    def handler(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(True)
        print("\nStopping after the current image (Ctrl-C again to abort)...", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(requested)
    finally:
        signal.signal(signal.SIGINT, previous)


def notice(text: str) -> None:
    print(f"notice: {text}", file=sys.stderr)


def fail(args: argparse.Namespace, value: dict, text: str, error: str) -> int:
    """A command that ran but achieved nothing: its report (ok false, with the error) and exit 1."""
    emit(args, {**value, "ok": False, "error": error}, text)
    print(f"error: {error}", file=sys.stderr)
    return EXIT_ERROR


def brain_options(args: argparse.Namespace) -> dict:
    """The chat brain's options from the command line (the OpenAI-compatible endpoint's, or none)."""
    return {"base_url": args.llm_url, "llm_model": args.llm_model} if args.brain == "openai" else {}
