"""The `labelchat` command line.

Each subcommand parses its arguments, calls one function of `tools/` or the
store, and prints the typed result: text for people, or one JSON object on
stdout with --json. Progress and messages go to stderr.

Exit codes: 0 done; 1 error (nothing was changed by the failing step), or a command that
could do nothing it was asked (its report says why); 2 usage error; 3 done, but some inputs were skipped (see the summary);
130 interrupted; 141 (quietly) when the reader of stdout went away, as with `| head`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from index.errors import LabelchatError
from index.project import Project, default_project_dir
from index.types import Label
from tools.workbench import Workbench

from . import format as fmt
from .cli_chat import cmd_chat, cmd_run
from .cli_common import (
    EXIT_BROKEN_PIPE, EXIT_ERROR, actor, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, brain_options, emit,
    emit_error, fail, graceful_stop, non_negative_float, non_negative_int, notice, open_project, positive_float, positive_int,
    probability, progress_bar, user_name,
)
from .cli_review import cmd_auto_accept, cmd_correct, cmd_decide, cmd_review, cmd_similar
from .cli_quality import add_commands as add_quality_commands
from .cli_rounds import add_commands as add_round_commands
from .cli_train import add_commands as add_training_commands

DEMO_PROJECT = Path("labelchat-data") / "demo"
# The demo photos ship inside the package (in a checkout, ui/demo_photos links to examples/photos).
EXAMPLES = Path(__file__).resolve().parent / "demo_photos"


# -- argument parsing ------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Options accepted both before and after the subcommand."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--project",
        metavar="DIR",
        default=default,
        help="project folder (default: $LABELCHAT_PROJECT or ./labelchat-data/default)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print one machine-readable JSON object on stdout",
    )
    parser.add_argument(
        "--user",
        type=user_name,
        default=default,
        metavar="NAME",
        help="who decides, as the decision log records it (default: $LABELCHAT_USER or the OS user)",
    )
    parser.add_argument(
        "--auth-file",
        default=default,
        metavar="FILE",
        help="the people who may decide, one user:password a line: the app asks for one of them and "
        "--user must be one of them (default: $LABELCHAT_AUTH_FILE)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="no progress bars",
    )


def _limits(parser: argparse.ArgumentParser) -> None:
    from tools.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

    parser.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse images with more pixels (default %(default)s)")
    parser.add_argument("--max-bytes", type=positive_int, default=DEFAULT_MAX_BYTES, metavar="N",
                        help="refuse files larger than this (default %(default)s)")
    parser.add_argument("--near-dup-distance", type=int, default=4, metavar="BITS",
                        help="report images within this many pHash bits of an earlier one "
                        "as near-duplicates; -1 turns it off (default %(default)s)")
    parser.add_argument("--allow-private", action="store_true",
                        help="allow URLs on private, loopback or link-local addresses")
    parser.add_argument("--workers", type=positive_int, default=8, metavar="N",
                        help="images read and decoded in parallel (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelchat",
        description="Turn a pile of unlabelled images into a clean, labelled dataset.",
        epilog="Run 'labelchat COMMAND --help' for the options of a command.",
    )
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, handler: Callable) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _common(sub, top=False)
        sub.set_defaults(handler=handler)
        return sub

    add = command("add", "add images from folders, files, zips, URL lists (.txt/.csv) or URLs", cmd_add)
    add.add_argument("sources", nargs="+", metavar="SOURCE")
    add.add_argument("--labels-from-folders", action="store_true",
                     help="a folder laid out as <label>/<image>: record those labels as confirmed")
    _limits(add)

    imp = command("import", "import a labelled dataset: a labelchat export or an ImageFolder", cmd_import)
    imp.add_argument("path", metavar="PATH")
    _limits(imp)

    labels = command("labels", "show or change the label set", cmd_labels)
    labels.add_argument("action", nargs="?", default=None, choices=["show", "set", "add", "remove"],
                        help="show (default), set (replace the set), add or remove")
    labels.add_argument("names", nargs="*", metavar="LABEL",
                        help="labels, as separate words or one list: 'cat, dog; bird'")
    labels.add_argument("--file", metavar="F",
                        help="read the labels from a file: one a line ('name = description' allowed) or "
                        "comma-separated; '#' comments and blank lines are skipped. Without an action "
                        "the file replaces the label set, as with 'labels set --file F'")

    command("status", "counts per label and status", cmd_status).add_argument(
        "--check", action="store_true", help="also verify the database's consistency"
    )

    items = command("items", "list items with their current state", cmd_items)
    items.add_argument("--status", choices=["pending", "confirmed", "rejected", "skipped"])
    items.add_argument("--label")
    items.add_argument("--limit", type=positive_int, default=50)

    log = command("log", "the newest decisions", cmd_log)
    log.add_argument("--limit", type=positive_int, default=20)

    export = command("export", "export the labels as a dataset", cmd_export)
    export.add_argument("out", metavar="OUT_DIR")
    export.add_argument("--format", default="imagefolder",
                        choices=["imagefolder", "csv", "jsonl", "coco", "hf"])
    export.add_argument("--include", default="confirmed", choices=["confirmed", "suggested"],
                        help="confirmed labels only (default), or also the best suggestion of "
                        "every other item")
    export.add_argument("--link", action="store_true", help="hard-link images instead of copying")
    export.add_argument("--overwrite", action="store_true",
                        help="replace an earlier labelchat export in OUT_DIR")

    undo = command("undo", "undo the newest decision, or all of the newest bulk action (--item ID: of one item)",
                   cmd_undo)
    undo.add_argument("--item", type=int, metavar="ID")

    crawl = command("crawl", "gather images from web pages, sitemaps and URL lists (politely)", cmd_crawl)
    crawl.add_argument("urls", nargs="*", metavar="URL", help="pages, sitemap.xml files or URL lists")
    crawl.add_argument("--depth", type=non_negative_int, default=2, help="link hops from the start pages (default 2)")
    crawl.add_argument("--max-images", type=positive_int, metavar="N", help="stop after saving N images")
    crawl.add_argument("--max-pages", type=positive_int, metavar="N", help="stop after reading N pages")
    site = crawl.add_mutually_exclusive_group()
    site.add_argument("--same-site", dest="same_site", action="store_true", default=True,
                      help="follow links only on the start sites (default)")
    site.add_argument("--any-site", dest="same_site", action="store_false", help="follow links anywhere")
    crawl.add_argument("--include", action="append", default=[], metavar="PATTERN",
                       help="only URLs matching this glob or text (repeatable)")
    crawl.add_argument("--exclude", action="append", default=[], metavar="PATTERN")
    crawl.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                       help="allow this host even on a private/loopback address (repeatable)")
    crawl.add_argument("--min-side", type=non_negative_int, default=32, metavar="PX", help="smaller images are skipped")
    crawl.add_argument("--per-host", type=positive_int, default=4, help="concurrent fetches per host (default 4)")
    crawl.add_argument("--delay", type=non_negative_float, default=0.1, metavar="S", help="seconds between requests to one host")
    crawl.add_argument("--timeout", type=positive_float, default=10.0, metavar="S")
    crawl.add_argument("--time-limit", type=positive_float, metavar="S", help="stop this run after S seconds")
    crawl.add_argument("--resume", action="store_true", help="continue the last crawl where it stopped")
    _limits(crawl)
    crawl.set_defaults(workers=16)

    suggest = command("suggest", "zero-shot label suggestions for the project's images", cmd_suggest)
    _model_options(suggest)
    _engine_options(suggest)

    prelabel = command(
        "prelabel", "label a folder of images in one go (no project needed); one prediction per image", cmd_prelabel
    )
    prelabel.add_argument("--images", nargs="+", required=True, metavar="SOURCE",
                          help="folders, files, zips, URL lists or URLs, as for 'add'")
    given = prelabel.add_mutually_exclusive_group(required=True)
    given.add_argument("--labels", metavar="LIST", help="'cat, dog, bird' (or separated by ;)")
    given.add_argument("--labels-file", metavar="F", help="one label a line; 'name = description' allowed")
    prelabel.add_argument("--out", default="-", metavar="FILE", help="where to write (default: stdout)")
    prelabel.add_argument("--format", default="jsonl", choices=["jsonl", "csv"])
    prelabel.add_argument("--cache-project", metavar="DIR",
                          help="keep images and features in this project to reuse them next time")
    _model_options(prelabel)
    _engine_options(prelabel)

    model = command("model", "show or set the project's model (e.g. offline, openclip:ViT-B-32/laion2b_s34b_b79k)", cmd_model)
    model.add_argument("spec", nargs="?", metavar="SPEC")

    review = command("review", "show the next batch to review; with --answer, decide each in the terminal", cmd_review)
    review.add_argument("--strategy", default="uncertain", choices=["uncertain", "balanced", "confident", "random", "suspect"],
                        help="suspect: confirmed items whose labels look wrong (y keeps the label)")
    review.add_argument("--size", type=positive_int, default=20, metavar="N", help="cards in the batch (default 20)")
    review.add_argument("--label", help="only items whose best suggestion is this label")
    review.add_argument("--answer", action="store_true",
                        help="read an answer per card from stdin: y (accept), n (reject), a label's "
                        "number or name (correct), s (skip), u (undo), q (quit)")
    _model_options(review)

    for name, help_text in [
        ("accept", "accept items: their best suggestion, or --label; or every item above --min-prob"),
        ("reject", "reject items' best suggestion (or --label): evidence against it"),
        ("skip", "skip items for now"),
    ]:
        decide = command(name, help_text, cmd_decide)
        decide.add_argument("items", nargs="*", type=int, metavar="ID")
        decide.add_argument("--label")
        if name == "accept":
            decide.add_argument("--min-prob", type=probability, metavar="P",
                                help="accept every pending item whose best suggestion (of --label, if "
                                "given) has at least this probability")
        _model_options(decide)

    correct = command("correct", "give an item its right label", cmd_correct)
    correct.add_argument("item", type=int, metavar="ID")
    correct.add_argument("label", metavar="LABEL")
    _model_options(correct)

    auto = command("auto-accept", "accept every pending item above a probability, after a small audit", cmd_auto_accept)
    auto.add_argument("--min-prob", type=probability, required=True, metavar="P",
                      help="a probability above 0 and at most 1, e.g. 0.9")
    auto.add_argument("--label", help="only items suggested as this label")
    auto.add_argument("--audit", type=non_negative_int, default=20, metavar="N",
                      help="random candidates to check first (answers on stdin); 0: no audit")
    auto.add_argument("--min-precision", type=probability, default=None, metavar="P",
                      help="what the audit must show before the rest is accepted unseen (default 0.9)")
    auto.add_argument("--seed", type=int, default=None)
    _model_options(auto)

    similar = command("similar", "the items most like an item, a text or an image", cmd_similar)
    similar.add_argument("item", nargs="?", type=int, metavar="ID")
    similar.add_argument("--text", help="e.g. 'red sneakers' (CLIP models only)")
    similar.add_argument("--image", metavar="PATH")
    similar.add_argument("--k", type=positive_int, default=10, metavar="N", help="how many (default 10)")
    similar.add_argument("--confirmed", action="store_true", help="only confirmed items")
    similar.add_argument("--label", help="only confirmed items with this label")
    similar.add_argument("--status", choices=["pending", "confirmed", "rejected", "skipped"])
    _model_options(similar)

    for name, help_text in [("chat", "talk to the agent in the terminal"),
                            ("run", "run a script: each non-empty, non-# line is a chat message")]:
        talk = command(name, help_text, cmd_chat if name == "chat" else cmd_run)
        if name == "run":
            talk.add_argument("script", metavar="SCRIPT")
        talk.add_argument("--yes", action="store_true", help="do not ask before expensive or bulk actions")
        talk.add_argument("--brain", default="router", choices=["router", "openai"],
                          help="router: offline and instant (default); openai: any OpenAI-compatible endpoint")
        talk.add_argument("--llm-url", metavar="URL", help="e.g. http://127.0.0.1:11434/v1 ($LABELCHAT_LLM_URL)")
        talk.add_argument("--llm-model", metavar="NAME", help="the model name the endpoint serves")
        talk.add_argument("--session", default="default", help="conversation name (kept in the project)")
        talk.add_argument("--model", metavar="SPEC", help="vision model spec, as for suggest")
        talk.add_argument("--device", default=None, metavar="DEV")

    add_training_commands(command)
    add_quality_commands(command, _model_options)
    add_round_commands(command)

    fetch = command("fetch-model", "download a model's weights into the local cache (needs network)", cmd_fetch_model)
    fetch.add_argument("spec", nargs="?", metavar="SPEC", help="default: the project's model, else CLIP ViT-B-32")

    ui = command("ui", "start the browser app on a project", cmd_ui)
    _ui_options(ui)

    demo = command("demo", "build the demo project from the bundled photos (once) and open it", cmd_demo)
    demo.add_argument("--from", dest="source", default=str(EXAMPLES), metavar="DIR",
                      help="a <label>/<image> folder to build the demo from (default: the bundled photos)")
    demo.add_argument("--no-ui", action="store_true", help="build the demo project and print its status only")
    _ui_options(demo)
    return parser


def _ui_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=positive_int, default=None, help="default: 7860, or the next free port")
    parser.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                        help="ask for a login; repeat for several users (or --auth-file FILE)")
    parser.add_argument("--brain", default="router", choices=["router", "openai"])
    parser.add_argument("--llm-url", metavar="URL")
    parser.add_argument("--llm-model", metavar="NAME")
    parser.add_argument("--yes", action="store_true", help="do not ask before bulk actions in the chat")
    parser.add_argument("--model", metavar="SPEC", help="vision model spec, as for suggest")
    parser.add_argument("--share", action="store_true", help="also make a public Gradio share link (off by default)")


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="SPEC",
                        help="openclip:<arch>/<pretrained>, hf:<hub-id-or-folder> or offline "
                        "(default: $LABELCHAT_MODEL, the project's model, or CLIP ViT-B-32)")
    parser.add_argument("--device", default=None, metavar="DEV", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--templates", default="default", choices=["default", "short"],
                        help="the prompt ensemble (prompts/clip_templates.yaml)")
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N")


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default="local", choices=["local", "ray"],
                        help="who embeds the images: this process (default), or Ray Data on a Ray cluster "
                        "(needs labelchat[ray])")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="with --engine ray: the cluster to connect to (e.g. 10.0.0.5:6379, as 'ray status' "
                        "prints it); without it a local one is started on 127.0.0.1")


def _engine(args: argparse.Namespace):
    from tools.ray_engine import Engine

    return Engine(args.engine, args.ray_address)


# -- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run one command. The one place where errors become messages and exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not after main
        return code
    except LabelchatError as exc:
        emit_error(args, str(exc))
        return EXIT_ERROR
    except BrokenPipeError:
        return _quiet_after_broken_pipe()
    except OSError as exc:
        emit_error(args, fmt.format_os_error(exc, _verb_for(exc, args)))
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nInterrupted. Everything saved before this point is kept.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _quiet_after_broken_pipe() -> int:
    """The reader of stdout went away (`labelchat status | head -4`): stop without a word, as
    Unix tools do. What is left in the buffer goes nowhere, so the exit flush cannot fail."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _verb_for(exc: OSError, args: argparse.Namespace) -> str:
    """'write' when the failing path is (in) what the command writes, else 'read'."""
    failed = exc.filename
    if failed is None:
        return "read"
    failed = Path(os.fsdecode(failed)).expanduser().absolute()
    for output in _outputs(args):
        target = Path(output).expanduser().absolute()
        if failed == target or target in failed.parents:
            return "write"
    return "read"


def _outputs(args: argparse.Namespace) -> list[str]:
    """The paths a command writes to, as given on the command line."""
    if args.command == "export" or (args.command == "prelabel" and args.out != "-"):
        return [args.out]
    if args.command == "models" and args.action == "export" and len(args.args) == 2:
        return [args.args[1]]
    return []


# -- commands ----------------------------------------------------------------------------


def _ingest_options(args: argparse.Namespace, labels_from_folders: bool = False):
    from tools.ingest import IngestOptions

    return IngestOptions(
        labels_from_folders=labels_from_folders,
        max_pixels=args.max_pixels,
        max_bytes=args.max_bytes,
        near_duplicate_distance=args.near_dup_distance,
        allow_private=args.allow_private,
        workers=args.workers,
    )


def _finish_ingest(args: argparse.Namespace, report) -> int:
    value = {"ok": True, **fmt.to_jsonable(report), "skipped_by_reason": report.skipped_by_reason()}
    if report.cancelled:
        emit(args, value, fmt.format_ingest(report))
        return EXIT_INTERRUPTED
    if report.problems and not (report.added or report.duplicates):
        return fail(args, value, fmt.format_ingest(report), fmt.format_nothing_added(report))
    emit(args, value, fmt.format_ingest(report))
    return EXIT_PARTIAL if report.problems else EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    from tools.ingest import ingest

    with open_project(args, create=True) as project, progress_bar(args, "img") as progress, graceful_stop() as stop:
        report = ingest(
            project,
            args.sources,
            _ingest_options(args, args.labels_from_folders),
            on_progress=progress,
            should_stop=stop,
        )
    return _finish_ingest(args, report)


def cmd_import(args: argparse.Namespace) -> int:
    from tools.importing import import_dataset

    with open_project(args, create=True) as project, progress_bar(args, "img") as progress, graceful_stop() as stop:
        report = import_dataset(project, args.path, _ingest_options(args), on_progress=progress, should_stop=stop)
    return _finish_ingest(args, report)


def cmd_labels(args: argparse.Namespace) -> int:
    from index.labels import parse_label_list, read_label_file

    action = args.action or ("set" if args.file else "show")  # bare 'labels --file F' sets them
    if args.file and args.names:
        raise LabelchatError("Give the labels or --file, not both.")
    if action == "show" and args.file:
        raise LabelchatError(f"'labels show' takes no --file; to make {args.file} the label set: "
                             f"labelchat labels set --file {args.file}")
    if action != "show" and not args.file and not " ".join(args.names).strip():
        raise LabelchatError(f"'labelchat labels {action}' needs labels, e.g. 'cat, dog', or --file F.")
    with open_project(args, create=action != "show") as project:
        bench = Workbench(project)
        if args.file:
            labels = read_label_file(args.file)
        elif action != "show":
            labels = parse_label_list("\n".join(args.names) if len(args.names) > 1 else " ".join(args.names))
        if action == "set":
            label_set = bench.set_labels(labels)
        elif action == "add":
            label_set = bench.add_labels(labels)
        elif action == "remove":
            label_set = bench.remove_labels([label.name for label in labels])
        else:
            label_set = project.store.label_set()
        emit(args, {"ok": True, "labels": label_set.labels, "version": label_set.version},
              fmt.format_labels(label_set))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with open_project(args) as project:
        counts = project.store.status()
        problems = project.check() if args.check else []
        value = {"ok": not problems, "project": str(project.folder), **fmt.to_jsonable(counts)}
        text = fmt.format_status(project.name, str(project.folder), counts)
        if args.check:
            value["problems"] = problems
            text += "\n\n" + ("Check of the database and the images: consistent." if not problems else
                              "The check found problems:\n  " + "\n  ".join(problems))
    if problems:
        return fail(args, value, text, f"the check found {len(problems)} problem(s), listed above")
    emit(args, value, text)
    return EXIT_OK


def cmd_items(args: argparse.Namespace) -> int:
    from index.types import Status

    with open_project(args) as project:
        store = project.store
        status = Status(args.status) if args.status else None
        items = store.items(status=status, label=args.label, limit=args.limit)
        top = store.top_suggestions([item.id for item in items])
        rows = [{"item": item, "state": store.state(item.id), "suggestion": top.get(item.id)} for item in items]
        lines = [fmt.format_item_row(r["item"], r["state"], r["suggestion"]) for r in rows]
        emit(args, {"ok": True, "items": rows}, "\n".join(lines) or "No items match.")
    return EXIT_OK


def cmd_log(args: argparse.Namespace) -> int:
    with open_project(args) as project:
        decisions = project.store.decisions(limit=args.limit)
        lines = [
            f"{d.id:>6}  {d.created_at}  item {d.item_id:<6} {d.action.value:<8} {d.label or '':<16} by {d.actor}"
            for d in decisions
        ]
        emit(args, {"ok": True, "decisions": decisions}, "\n".join(lines) or "No decisions yet.")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from tools.export import export_dataset

    with open_project(args) as project:
        report = export_dataset(
            project, args.out, args.format, include=args.include, link=args.link, overwrite=args.overwrite
        )
        emit(args, {"ok": True, **fmt.to_jsonable(report)}, fmt.format_export(report))
    return EXIT_OK


def cmd_undo(args: argparse.Namespace) -> int:
    with open_project(args) as project:
        report = Workbench(project).undo(args.item, actor=actor(args))
        emit(args, {"ok": True, "decision": report.undone[0], "state": report.states[0], "undone": len(report.undone),
                     "decisions": list(report.undone)}, report.text)
    return EXIT_OK


def cmd_crawl(args: argparse.Namespace) -> int:
    from tools.crawl import CrawlOptions, crawl

    if not args.urls and not args.resume:
        raise LabelchatError("Give a page, sitemap or URL list to crawl, or --resume to continue the last crawl.")
    options = CrawlOptions(
        depth=args.depth, max_images=args.max_images, max_pages=args.max_pages, same_site=args.same_site,
        include=tuple(args.include), exclude=tuple(args.exclude), allow_private=args.allow_private,
        allow_hosts=tuple(args.allow_host), min_side=args.min_side, max_bytes=args.max_bytes,
        max_pixels=args.max_pixels, near_duplicate_distance=args.near_dup_distance, workers=args.workers,
        per_host=args.per_host, host_delay_s=args.delay, timeout_s=args.timeout, time_limit_s=args.time_limit,
    )
    with open_project(args, create=True) as project, progress_bar(args, "img") as progress, graceful_stop() as stop:
        report = crawl(project, args.urls, options, resume=args.resume, should_stop=stop,
                       on_progress=lambda p: progress(p.images, 0, f"{p.pages} pages, {p.errors} errors"))
    value = {"ok": True, **fmt.to_jsonable(report), "saved": report.saved}
    fine = {"saved", "duplicate", "read"}
    gathered = any(outcome in fine for outcome in report.counts)
    if report.stopped != "stopped" and not gathered and (report.counts or report.problems):
        return fail(args, value, fmt.format_crawl(report), fmt.format_crawl_failure(report))
    emit(args, value, fmt.format_crawl(report))
    if report.stopped == "stopped":
        return EXIT_INTERRUPTED
    return EXIT_PARTIAL if any(outcome not in fine for outcome in report.counts) else EXIT_OK


def cmd_suggest(args: argparse.Namespace) -> int:
    from tools.review import suggest_with_examples

    with open_project(args) as project, progress_bar(args, "img") as progress, graceful_stop() as stop:
        report = suggest_with_examples(project, model=args.model, device=args.device, template_set=args.templates,
                         batch_size=args.batch_size, on_progress=progress, on_notice=notice, should_stop=stop,
                         engine=_engine(args))
        counts = project.store.status()
        stopped = bool(report.embed and report.embed.cancelled)
        remaining = len(project.store.items_without_suggestions_from(report.head_key)) if report.head_key else 0
    emit(args, {"ok": True, **fmt.to_jsonable(report), "remaining": remaining},
          fmt.format_suggest(report, counts, remaining if stopped else None))
    if stopped:
        return EXIT_INTERRUPTED
    return EXIT_PARTIAL if report.embed and report.embed.problems else EXIT_OK


def cmd_prelabel(args: argparse.Namespace) -> int:
    from index.labels import parse_label_list, read_label_file
    from tools.ingest import IngestOptions
    from tools.prelabel import format_predictions, prelabel

    labels = read_label_file(args.labels_file) if args.labels_file else parse_label_list(args.labels)
    if args.out != "-":
        _check_writable(Path(args.out).expanduser())  # before minutes of model work, not after
    with progress_bar(args, "img") as progress, graceful_stop() as stop:
        report = prelabel(args.images, labels, model=args.model, device=args.device,
                          template_set=args.templates, project_dir=args.cache_project,
                          ingest_options=IngestOptions(near_duplicate_distance=-1),
                          on_progress=progress, on_notice=notice, should_stop=stop, engine=_engine(args))
    output = format_predictions(report.predictions, args.format)
    if args.out == "-":
        sys.stdout.write(output)
    else:
        Path(args.out).expanduser().write_text(output, encoding="utf-8")
    print(fmt.format_prelabel(report, args.out), file=sys.stderr)
    if not report.predictions:
        return EXIT_ERROR
    return EXIT_PARTIAL if report.ingest and report.ingest.problems else EXIT_OK


def _check_writable(path: Path) -> None:
    """Raise the OSError that writing `path` would raise (the edge words it), leaving no file behind."""
    existed = path.exists()
    with open(path, "a", encoding="utf-8"):
        pass
    if not existed:
        path.unlink()


def cmd_model(args: argparse.Namespace) -> int:
    from tools.models import DEFAULT_SPEC, MODEL_SETTING, resolve_spec

    with open_project(args, create=bool(args.spec)) as project:
        if args.spec:
            Workbench(project).set_model(args.spec)
        spec, implied = resolve_spec(None, project.store.get_setting(MODEL_SETTING))
        note = " (the default; falls back to offline when CLIP weights cannot be had)" if implied else ""
        emit(args, {"ok": True, "model": spec, "default": DEFAULT_SPEC, "implied": implied},
              f"Model: {spec}{note}")
    return EXIT_OK


def cmd_ui(args: argparse.Namespace, folder: Path | None = None) -> int:
    from ui.app import launch
    from ui.people import credentials

    folder = folder or Path(args.project or default_project_dir())
    options = brain_options(args)
    auth_file = args.auth_file or os.environ.get("LABELCHAT_AUTH_FILE")
    credentials(args.auth, auth_file)  # a bad line or a missing file is said before anything starts
    print(f"Starting labelchat on {folder} ... (Ctrl-C to stop)", file=sys.stderr)
    launch(folder, host=args.host, port=args.port, auth=args.auth, auth_file=auth_file, brain=args.brain, yes=args.yes,
           model=args.model, brain_options=options, share=args.share)
    return EXIT_OK


def cmd_fetch_model(args: argparse.Namespace) -> int:
    from tools.models import MODEL_SETTING, load_backend, resolve_spec

    setting = None
    if args.project or default_project_dir().joinpath("project.db").exists():
        with open_project(args) as project:
            setting = project.store.get_setting(MODEL_SETTING)
    spec, _ = resolve_spec(args.spec, setting)
    print(f"Fetching {spec} (this needs network access)...", file=sys.stderr)
    backend = load_backend(spec, "cpu", allow_download=True)
    emit(args, {"ok": True, "model": backend.spec, "description": backend.description},
          f"Ready: {backend.description}. It now loads without network.")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo project once (unlabelled photos plus their label set), suggest, open it."""
    from tools.ingest import IngestOptions, ingest
    from tools.zeroshot import suggest

    folder = Path(args.project or DEMO_PROJECT)
    source = Path(args.source)
    with Project(folder, create=True) as project:
        if project.store.item_count() == 0:
            if not source.is_dir():
                raise LabelchatError(
                    f"The demo photos are not at {source}. Pass --from DIR with a <label>/<image> "
                    f"folder, or reinstall labelchat (its package ships them in ui/demo_photos)."
                )
            names = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
            Workbench(project).set_labels([Label(name) for name in names])
            with progress_bar(args, "img") as progress:
                ingest(project, [str(source)], IngestOptions(), on_progress=progress)
        with progress_bar(args, "img") as progress:
            report = suggest(project, on_progress=progress, on_notice=notice)
        counts = project.store.status()
        text = fmt.format_status(project.name, str(project.folder), counts)
        text += (
            f"\n\nThe demo project is ready, with suggestions from {report.model}. Try:\n"
            f"  .venv/bin/labelchat items --project {folder} --limit 10\n"
            f"  .venv/bin/labelchat export /tmp/demo-export --project {folder} --include suggested"
        )
        emit(args, {"ok": True, "project": str(project.folder), "model": report.model,
                     **fmt.to_jsonable(counts)}, text)
    if args.no_ui or args.json:
        return EXIT_OK
    return cmd_ui(args, folder)


if __name__ == "__main__":
    sys.exit(main())
