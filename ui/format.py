"""Pure functions that turn typed results into text for people or JSON for scripts."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from enum import Enum
from pathlib import Path
from typing import Any

from index.types import StatusCounts
from tools.wording import counted, plural, unpacked_text


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    return value


def json_line(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, sort_keys=False)


def format_os_error(exc: OSError, verb: str) -> str:
    """'could not write PATH: reason. What to do.' for a file (or other system) error."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return f"Could not {verb}: {reason}. Check the path or address and try again."
    path = os.fsdecode(exc.filename)
    return f"Could not {verb} {path}: {reason}. {_os_error_hint(exc.errno, verb)}"


def _os_error_hint(number: int | None, verb: str) -> str:
    if number == errno.ENOENT:
        return ("Check the path: the folder it goes in must exist and be one you can write to."
                if verb == "write" else "Check the path: it does not exist.")
    if number == errno.ENOTDIR:
        return "A part of the path is a file, not a folder; choose another path."
    if number == errno.EISDIR:
        return "It is a folder; give the path of a file."
    if number in (errno.EACCES, errno.EPERM):
        return f"You may not {verb} there; choose another place, or change its permissions."
    if number == errno.EROFS:
        return "That file system is read-only; choose another place."
    if number == errno.ENOSPC:
        return "The disk is full; free some space and run it again."
    return "Check the path and try again."


def percent(value: float | None, missing: str = "n/a") -> str:
    return missing if value is None else f"{100 * value:.1f}%"


def bar(count: int, biggest: int, width: int = 24) -> str:
    if biggest <= 0:
        return ""
    filled = round(width * count / biggest)
    return "█" * filled + ("▏" if count and not filled else "")


def format_status(project_name: str, folder: str, counts: StatusCounts) -> str:
    lines = [f"Project {project_name} ({folder})", f"  {counted(counts.items, 'image')}, {counted(counts.decisions, 'decision')}"]
    lines.append(
        "  "
        + ", ".join(f"{name} {n}" for name, n in counts.by_status.items())
    )
    if not counts.by_label:
        lines.append("  No labels yet: set them with  labelchat labels set 'cat, dog, bird'")
        return "\n".join(lines)
    width = max(len(c.label) for c in counts.by_label)
    biggest = max(max(c.confirmed, c.suggested) for c in counts.by_label)
    lines.append("")
    lines.append(f"  {'label'.ljust(width)}  confirmed  suggested")
    for c in counts.by_label:
        note = "" if c.in_label_set else "  (not in the label set)"
        lines.append(
            f"  {c.label.ljust(width)}  {c.confirmed:>9}  {c.suggested:>9}  "
            f"{bar(c.confirmed, biggest)}{note}"
        )
    return "\n".join(lines)


def format_ingest(report) -> str:
    lines = [
        f"Added {counted(report.added, 'new image')}"
        + (f", {report.duplicates} already here" if report.duplicates else "")
        + (f", {report.labelled} with labels" if report.labelled else "")
        + "."
    ]
    if report.unpacked:
        lines.append(unpacked_text(report.unpacked).capitalize() + ".")
    if report.labels_added:
        lines.append("New labels: " + ", ".join(report.labels_added))
    if report.near_duplicates:
        lines.append(
            f"{len(report.near_duplicates)} {plural(len(report.near_duplicates), 'looks', 'look')} like near-duplicates of earlier images (kept; "
            f"e.g. item {report.near_duplicates[0].item_id} resembles item "
            f"{report.near_duplicates[0].resembles})."
        )
    if report.ignored:
        lines.append(f"Ignored {counted(report.ignored, 'file')}: hidden, or not images by their extension.")
    conflicts = [p for p in report.problems if p.reason.value == "label conflict"]
    if conflicts:
        lines.append(f"Kept the labels a person gave ({counted(len(conflicts), 'label conflict')}):")
        lines += [f"  - {p.source}: {p.message}" for p in conflicts[:20]]
    skipped = [p for p in report.problems if p.reason.value != "label conflict"]
    if skipped:
        summary = ", ".join(f"{reason} {n}" for reason, n in report.skipped_by_reason().items() if reason != "label conflict")
        lines.append(f"Skipped {len(skipped)}: {summary}")
        for problem in skipped[:20]:
            lines.append(f"  - {problem.source}: {problem.message}")
        if len(skipped) > 20:
            lines.append(f"  ... and {len(skipped) - 20} more (--json lists them all)")
    if report.cancelled:
        lines.append("Stopped early on request; everything reported above is saved.")
    return "\n".join(lines)


def format_nothing_added(report) -> str:
    """Why an ingest that added nothing at all failed, from the reasons of its skipped inputs."""
    reasons = ", ".join(f"{reason} {n}" for reason, n in report.skipped_by_reason().items())
    shown = "; ".join(f"{p.source}: {p.message}" for p in report.problems[:3])
    more = f"; and {report.skipped - 3} more" if report.skipped > 3 else ""
    return (f"Nothing was added: every input was skipped ({reasons}). {shown}{more}. "
            f"Check the paths and URLs: folders, image files, zips, URL lists (.txt, .csv) and URLs can be added.")


def format_export(report) -> str:
    per_label = ", ".join(f"{label} {n}" for label, n in report.per_label.items())
    where = f" (manifest {report.manifest})" if report.manifest else ""
    return f"Exported {counted(report.count, 'image')} as {report.format.value} to {report.folder}{where}: {per_label}"


def format_labels(label_set) -> str:
    if not len(label_set):
        return "No labels yet. Set them with: labelchat labels set 'cat, dog, bird'"
    lines = [f"{len(label_set)} labels (version {label_set.version}):"]
    for i, label in enumerate(label_set.labels, start=1):
        text = f"  {i}. {label.name}"
        if label.description:
            text += f" = {label.description}"
        lines.append(text)
    return "\n".join(lines)


def format_decision(decision) -> str:
    """A decision just made (an undo is worded by tools/workbench.py's UndoReport)."""
    return f"Item {decision.item_id}: {decision.action.value} {decision.label or ''}".rstrip()


def format_suggest(report, counts: StatusCounts, remaining: int | None = None) -> str:
    """`remaining`: given when the run was stopped early, how many images still wait."""
    embed = report.embed
    lines = [f"Suggested labels for {counted(report.suggested, 'image')} with {report.model} ({counted(report.labels, 'label')})."]
    if remaining is not None:
        lines[0] = (f"Stopped early: suggested labels for {report.suggested} images with {report.model} "
                    f"({report.labels} labels); {remaining} images remain. Run 'labelchat suggest' again "
                    f"to go on where it stopped.")
    if report.up_to_date:
        lines.append(f"{report.up_to_date} images already had current suggestions.")
    if report.examples:
        lines.append(f"The suggestions of the {report.refreshed} undecided images also learned from "
                     f"{report.examples} confirmed images, as in the review panel and the chat.")
        if report.blend:
            lines.append(f"Blend: {report.blend}.")
    if embed and embed.embedded:
        lines.append(
            f"Encoded {embed.embedded} images at {embed.images_per_second:.1f} images/s "
            f"(batch {embed.batch_size}, {embed.precision}, decoded by {embed.workers} "
            f"{ {'processes': 'worker processes', 'ray': 'Ray actors'}.get(embed.loader, 'threads')}"
            f"{', small ones resized on the GPU' if embed.resized_on_device else ''}); "
            f"{embed.cached} were cached."
        )
    if embed and embed.problems:
        lines.append(f"Skipped {len(embed.problems)} images that could not be decoded:")
        lines += [f"  - {p.source}: {p.message}" for p in embed.problems[:20]]
    if counts.by_label:
        biggest = max(c.suggested for c in counts.by_label) or 1
        width = max(len(c.label) for c in counts.by_label)
        lines.append("")
        lines += [f"  {c.label.ljust(width)}  {c.suggested:>6}  {bar(c.suggested, biggest)}" for c in counts.by_label]
    return "\n".join(lines)


def format_prelabel(report, out: str) -> str:
    where = "stdout" if out == "-" else out
    lines = [f"Wrote {len(report.predictions)} predictions to {where}."]
    if report.ingest and report.ingest.problems:
        lines.append(f"Skipped {report.ingest.skipped} inputs: " + ", ".join(
            f"{reason} {n}" for reason, n in report.ingest.skipped_by_reason().items()))
        lines += [f"  - {p.source}: {p.message}" for p in report.ingest.problems[:20]]
    if not report.predictions:
        lines.append("Nothing could be labelled: no usable image was found.")
    return "\n".join(lines)


def format_item_row(item, state, suggestion) -> str:
    guess = f"{suggestion.label} {suggestion.score:.2f}" if suggestion else "-"
    return f"{item.id:>6}  {state.status.value:<9}  {state.label or '-':<14}  {guess:<20}  {item.source}"


def format_cards(cards, labels: list[str]) -> str:
    keys = "  ".join(f"{i}={name}" for i, name in enumerate(labels, start=1))
    lines = []
    for card in cards:
        best = card.suggestions[0] if card.suggestions else None
        head = f"#{card.item.id}  {card.item.source}"
        if best:
            head += f"\n    suggested: {best.label} {best.score:.2f}"
            if best.examples is not None:
                head += f"  (zero-shot {best.zero_shot:.2f}, examples {best.examples:.2f})"
            others = ", ".join(f"{s.label} {s.score:.2f}" for s in card.suggestions[1:3])
            if others:
                head += f"  | next: {others}"
        if card.neighbors:
            head += "\n    like: " + ", ".join(
                f"#{n.item_id} {n.label} ({n.similarity:.2f})" for n in card.neighbors[:5])
        lines.append(head)
    if not cards:
        return "Nothing left to review."
    return "\n".join(lines) + f"\n  keys: Enter or y accept, n reject, s skip, u undo, q quit, {keys}"


ANSWER_PROMPT = "answer [Enter or y accept, n reject, s skip, u undo, q quit, or a label's name or number]: "


def parse_answer(answer: str, labels: list[str]) -> tuple[str, str | None] | None:
    """('accept'|'reject'|'skip'|'correct'|'undo'|'quit', label or None) from a typed answer.

    An empty answer (Enter) accepts, as Enter does in the review panel. A label's exact name
    wins over a position: with labels 1, 3, 7, '3' is the label 3, not the third label."""
    text = answer.strip()
    simple = {"y": "accept", "": "accept", "n": "reject", "s": "skip", "u": "undo", "q": "quit"}
    if text.lower() in simple:
        return simple[text.lower()], None
    if text in labels:
        return "correct", text
    lowered = {name.lower(): name for name in labels}
    if text.lower() in lowered:
        return "correct", lowered[text.lower()]
    if text.isdigit() and 1 <= int(text) <= len(labels):
        return "correct", labels[int(text) - 1]
    return None


def format_auto_accept(report) -> str:
    audit = "" if report.precision is None else (
        f" Audit: {report.audit_correct} of {report.audited} right: estimated precision "
        f"{report.precision:.0%} (95% interval {report.precision_low:.0%} to {report.precision_high:.0%}).")
    if report.refused:
        return f"Accepted nothing more: {report.refused}. The audit's own decisions are saved.{audit}"
    if not report.candidates:
        return "Accepted nothing: no pending item has a suggestion that reaches that probability."
    text = f"Accepted {counted(report.accepted, 'item')} automatically (marked 'auto-accept' in the log)."
    if report.precision is None:
        return text + " There was no audit (--audit 0), so their precision is unknown."
    return text + (
        f" Audit: {report.audit_correct} of {report.audited} right: estimated precision "
        f"{report.precision:.0%} (95% interval {report.precision_low:.0%} to {report.precision_high:.0%})."
    )


def format_step(step, said: list[str] | None = None, source_of=None) -> str:
    """One agent step as terminal text ('' for steps not worth a line). `said` collects what this
    turn has printed, so an answer that only repeats it (a tool's error, a shown set's list)
    is not printed twice; `source_of(item_id)` gives an image's path for the shown-set table."""
    said = [] if said is None else said
    kind = type(step).__name__
    if kind == "ToolCallStarted":
        args = ", ".join(f"{k}={v!r}" for k, v in step.args.items())
        return f"  -> {step.name}({args})"
    if kind == "ToolResult":
        if not step.ok:
            said.append(step.text)
            return f"labelchat> Problem: {step.text}"
        rows = shown_rows(step)
        if rows:
            said.append(step.text)
            return format_shown_table(rows, source_of)
        return ""  # success is told by the answer
    if kind == "NeedsConfirmation":
        return f"labelchat> {step.question}"
    if kind == "ErrorStep":
        said.append(step.message)
        return f"labelchat> Problem: {step.message}"
    if kind in ("FinalAnswer", "AssistantText"):
        lines = [line for line in step.text.splitlines() if _strip_error(line) not in said]
        return "labelchat> " + "\n".join(lines) if lines else ""
    return ""


def _strip_error(text: str) -> str:
    return text[len("Error: "):] if text.startswith("Error: ") else text


def shown_rows(step) -> list[tuple[int, str, float | None]]:
    """(id, label, probability or similarity) of the images a tool result shows, in order."""
    if step.name == "review_batch" and step.artifact:
        return [(c.item.id, c.suggestions[0].label if c.suggestions else "-",
                 c.suggestions[0].score if c.suggestions else None) for c in step.artifact]
    if step.name == "similar" and step.artifact:
        return [(n.item_id, n.label or "?", n.similarity) for n in step.artifact]
    return []


def format_shown_table(rows, source_of=None) -> str:
    """The shown images as a table: position, id, label, probability, path."""
    lines = [f"  {'':>3}  {'id':>6}  {'label':<16}  {'p':>5}  path"]
    for position, (item_id, label, score) in enumerate(rows, start=1):
        path = source_of(item_id) if source_of else ""
        value = f"{score:.2f}" if score is not None else "-"
        lines.append(f"  {position:>3}  {'#' + str(item_id):>6}  {label[:16]:<16}  {value:>5}  {path}")
    return "\n".join(lines)


def format_crawl(report) -> str:
    lines = [f"Crawl {report.job_id} {report.stopped}: saved {report.saved} images "
             f"({report.fetched} URLs fetched, {report.bytes / 1e6:.1f} MB, {report.elapsed_s:.1f} s)."]
    if report.counts:
        lines.append("By outcome: " + ", ".join(f"{outcome} {n}" for outcome, n in report.counts.items()))
    if report.near_duplicates:
        lines.append(f"{len(report.near_duplicates)} saved images look like near-duplicates of earlier ones.")
    if report.off_site_links:
        lines.append(f"{report.off_site_links} links to other sites were not followed (--any-site follows them).")
    if report.queued:
        lines.append(f"{report.queued} URLs are still queued: labelchat crawl --resume continues.")
    for problem in report.problems[:10]:
        lines.append(f"  - {problem.source}: {problem.message}")
    return "\n".join(lines)


CRAWL_HINTS = {
    "refused address": "Addresses on this machine or network are refused: pass --allow-private, "
                       "or --allow-host HOST for one host.",
    "blocked by robots": "The site's robots.txt or X-Robots-Tag does not allow it; crawl another site.",
    "HTTP error": "Check that the URLs open in a browser.",
    "timeout": "The server did not answer in time; try again later or raise --timeout.",
    "download failed": "Check the URLs and the network.",
}


def format_crawl_failure(report) -> str:
    """Why a crawl that saved nothing and read no page failed, and what to do."""
    parts = [f"{p.source}: {p.message}" for p in report.problems[:3]]
    if report.counts:
        parts.append("by outcome, " + ", ".join(f"{outcome} {n}" for outcome, n in report.counts.items()))
    hints = [CRAWL_HINTS[outcome] for outcome in report.counts if outcome in CRAWL_HINTS]
    if report.problems:
        hints.append("Give http(s) URLs of pages or sitemaps, or files listing URLs.")
    return "Nothing was saved: " + "; ".join(parts) + ". " + " ".join(hints)
