"""Pure functions that turn typed results into what the browser app shows.

No Gradio here: chat messages are plain dicts in Gradio's messages format,
cards are HTML strings, charts are small tables. Each is unit-tested.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Callable, Sequence

from index.errors import LabelchatError

from tools.wording import plural

from .format import percent, shown_rows

STEP_TITLES = {
    "add_images": "Adding images", "crawl": "Crawling", "set_labels": "Setting labels",
    "add_labels": "Adding labels", "suggest_labels": "Suggesting labels", "review_batch": "Review batch",
    "decide": "Recording decisions", "correct": "Correcting", "accept_above": "Bulk accept",
    "similar": "Finding similar images", "export_dataset": "Exporting", "undo": "Undo", "status": "Status",
    "train_model": "Training", "use_model": "Choosing the model", "model_versions": "Model versions",
}


def step_to_messages(step, messages: list[dict], url_of: Callable[[int], str] | None = None) -> list[dict]:
    """Fold one agent step into the chat's message list (a new list; tool calls are collapsible).
    A result that shows images adds a gallery message (with `url_of(item_id)` for the image); an
    answer that only repeats a failure already shown is not added again."""
    kind = type(step).__name__
    messages = list(messages)
    if kind == "ToolCallStarted":
        args = ", ".join(f"{k}={v!r}" for k, v in step.args.items())
        messages.append({"role": "assistant", "content": f"`{step.name}({args})`",
                         "metadata": {"title": STEP_TITLES.get(step.name, step.name), "id": step.call_id,
                                      "status": "pending"}})
    elif kind == "Progress":
        index = _find(messages, step.call_id)
        if index is not None:
            done = f"{step.done}/{step.total}" if step.total else str(step.done)
            messages[index] = {**messages[index], "metadata": {**messages[index]["metadata"],
                                                               "log": f"{done} {step.what}".strip()}}
    elif kind == "ToolResult":
        index = _find(messages, step.call_id)
        if index is not None:
            mark = "" if step.ok else "Failed: "
            body = messages[index]["content"].split("\n\n")[0] + f"\n\n{mark}{step.text}"
            metadata = {k: v for k, v in messages[index]["metadata"].items() if k != "log"}
            messages[index] = {**messages[index], "content": body, "metadata": {**metadata, "status": "done"}}
        rows = shown_rows(step) if step.ok and url_of is not None else []
        if rows:
            messages.append({"role": "assistant", "content": gallery_html(step, rows, url_of)})
    elif kind in ("FinalAnswer", "AssistantText"):
        text = step.text[len("Error: "):] if step.text.startswith("Error: ") else step.text
        told = [str(m.get("content", "")) for m in messages[-3:] if m.get("role") == "assistant"]
        if not any(f"Problem: {text}" in c or f"Failed: {text}" in c for c in told):
            messages.append({"role": "assistant", "content": step.text})
    elif kind == "NeedsConfirmation":
        messages.append({"role": "assistant", "content": f"**{step.question}**"})
    elif kind == "ErrorStep":
        messages.append({"role": "assistant", "content": f"Problem: {step.message}"})
    return messages


def gallery_html(step, rows, url_of: Callable[[int], str]) -> str:
    """The images a tool result shows, as thumbnails with id, label and probability (or
    similarity), in the order shown, and a link that opens the same set in the Review panel."""
    cards = {c.item.id: c for c in step.artifact} if step.name == "review_batch" else {}
    figures = []
    for position, (item_id, label, score) in enumerate(rows, start=1):
        value = f" {score:.2f}" if score is not None else ""
        near = ""
        card = cards.get(item_id)
        if card is not None and card.neighbors:
            near = "<br><small>like " + ", ".join(
                f"#{n.item_id} {html.escape(n.label or '?')}" for n in card.neighbors[:2]) + "</small>"
        figures.append(
            f'<figure class="lc-shown"><img src="{url_of(item_id)}" alt="#{item_id}">'
            f'<figcaption>{position}. <b>#{item_id}</b> {html.escape(label)}{value}{near}</figcaption></figure>')
    ids = ",".join(str(item_id) for item_id, _, _ in rows)
    # the ids ride in the link's address: the chat's sanitiser drops data- attributes
    link = f'<a class="lc-open-review" href="#lc-open={ids}">Open these {len(rows)} in the Review panel</a>'
    return f'<div class="lc-gallery">{"".join(figures)}</div>\n\n{link}'


def _find(messages: list[dict], call_id: str) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if (messages[index].get("metadata") or {}).get("id") == call_id:
            return index
    return None


KEYS_HELP = ("<b>Keys</b>: ←/→ move &nbsp; <b>A</b> or Enter approve &nbsp; <b>R</b> reject &nbsp; "
             "<b>1-9</b> choose a label &nbsp; <b>S</b> skip &nbsp; <b>U</b> undo")


def render_cards(cards: Sequence, labels: Sequence[str], url_of: Callable[[int], str], focus: int = 0,
                 notice: str = "", filtered: str = "") -> str:
    """The review batch as HTML cards; buttons call labelchatAct(action, item, label). `filtered`
    says which filter is on (e.g. "suggested as tool, probability 0.01-0.05"), for an empty batch."""
    numbered = " ".join(f"<b>{i}</b> {html.escape(label)}" for i, label in enumerate(labels[:9], start=1))
    parts = [f'<div class="lc-help">{KEYS_HELP} &nbsp;·&nbsp; {numbered}</div>']
    if notice:
        parts.append(f'<div class="lc-notice">{html.escape(notice)}</div>')
    if not cards and filtered:
        parts.append(f'<div class="lc-empty">No pending images {html.escape(filtered)}. Widen the probability '
                     f'range or clear the label filter.</div>')
        return "\n".join(parts)
    if not cards:
        parts.append('<div class="lc-empty">Nothing to review here. Press "Next batch" or ask in the chat.</div>')
        return "\n".join(parts)
    options = "".join(f'<option value="{html.escape(l)}">{i}. {html.escape(l)}</option>'
                      for i, l in enumerate(labels, start=1))
    parts.append('<div class="lc-grid">')
    for index, card in enumerate(cards):
        parts.append(_card(card, index == focus, options, url_of))
    parts.append("</div>")
    return "\n".join(parts)


def _card(card, focused: bool, options: str, url_of: Callable[[int], str]) -> str:
    item = card.item
    best = card.suggestions[0] if card.suggestions else None
    others = ", ".join(f"{html.escape(s.label)} {s.score:.2f}" for s in card.suggestions[1:3])
    why = ""
    if best is not None and best.examples is not None:
        why = f'<div class="lc-why">zero-shot {best.zero_shot:.2f} · examples {best.examples:.2f}</div>'
    strip = "".join(
        f'<figure><img src="{url_of(n.item_id)}" alt="#{n.item_id}" loading="lazy">'
        f'<figcaption>{html.escape(n.label or "?")} {n.similarity:.2f}</figcaption></figure>'
        for n in card.neighbors
    )
    label = html.escape(best.label) if best else ""
    suggestion = (f'<div class="lc-suggestion"><b>{label}</b> {best.score:.2f}</div>'
                  f'<div class="lc-next">{others}</div>') if best else '<div class="lc-suggestion">no suggestion</div>'
    return (
        f'<div class="lc-card{" focused" if focused else ""}" data-item="{item.id}" data-label="{label}" tabindex="0">'
        f'<img class="lc-image" src="{url_of(item.id)}" alt="item {item.id}">'
        f'<div class="lc-id">#{item.id}</div>{suggestion}{why}'
        f'<div class="lc-actions">'
        f'<button class="lc-accept" onclick="labelchatClick(event, \'accept\', {item.id})">Approve (A)</button>'
        f'<button class="lc-reject" onclick="labelchatClick(event, \'reject\', {item.id})">Reject (R)</button>'
        f'<button class="lc-skip" onclick="labelchatClick(event, \'skip\', {item.id})">Skip (S)</button>'
        f'<select class="lc-label" onchange="labelchatAct(\'correct\', {item.id}, this.value)">'
        f'<option value="">another label…</option>{options}</select></div>'
        f'<div class="lc-strip">{strip}</div></div>'
    )


def label_counts_table(counts) -> tuple[list[str], list[list]]:
    """Columns and rows for a bar chart of confirmed and suggested items per label."""
    rows = []
    for c in counts.by_label:
        rows.append([c.label, "confirmed", c.confirmed])
        rows.append([c.label, "suggested", c.suggested])
    return ["label", "kind", "items"], rows


def probability_histogram(scores: Sequence[float], bins: int = 10) -> tuple[list[str], list[list]]:
    """Counts of best-suggestion probabilities in equal bins over [0, 1]."""
    counter = Counter(min(int(score * bins), bins - 1) for score in scores)
    rows = [[f"{b / bins:.1f}-{(b + 1) / bins:.1f}", counter.get(b, 0)] for b in range(bins)]
    return ["probability", "items"], rows


def progress_table(decisions: Sequence, local=None) -> tuple[list[str], list[list]]:
    """Confirmed items over time, net of undos and later rejections: the log replayed in order
    (as the store derives an item's state), one row per second with a change, or per minute or
    hour on a longer log. The time is a 24-hour clock in the server's (or `local`) time zone, as
    text: a time axis drew 14:36 as "02:36", and a log within one minute as one point, no line.
    A first row at 0 just before the first decision starts the line."""
    from datetime import datetime, timedelta

    from index.store import derive_state

    rows_of: dict[int, list[tuple]] = {}
    confirmed: set[int] = set()
    points: list[tuple[datetime, int]] = []
    for d in decisions:
        rows = rows_of.setdefault(d.item_id, [])
        rows.append((d.id, d.action.value, d.label, d.undoes))
        (confirmed.add if derive_state(d.item_id, rows).status.value == "confirmed" else confirmed.discard)(d.item_id)
        at = datetime.fromisoformat(d.created_at).astimezone(local)
        points.append((at, len(confirmed)))
    if not points:
        return ["time", "confirmed"], []
    span = points[-1][0] - points[0][0]
    step, shape = ((timedelta(seconds=1), "%H:%M:%S") if span <= timedelta(minutes=10) else
                   (timedelta(minutes=1), "%H:%M") if span <= timedelta(hours=12) else (timedelta(hours=1), "%H:00"))
    if points[-1][0].date() != points[0][0].date():
        shape = "%m-%d " + shape
    start = points[0][0] - step
    by_bucket: dict[str, int] = {start.strftime(shape): 0}
    for at, count in points:  # the count at the end of each bucket
        by_bucket[at.strftime(shape)] = count
    return ["time", "confirmed"], [[bucket, count] for bucket, count in by_bucket.items()]


def parse_range(text: str) -> tuple[float, float]:
    """'0.2-0.6' (or '20-60%', '0.2 to 0.6'), '>0.8', '<0.3', or nothing / 'all' for the whole
    range -> (low, high). Anything else raises a LabelchatError that shows how to write it."""
    import re

    text = (text or "").strip().lower()
    if text in ("", "all", "any", "*"):
        return 0.0, 1.0
    number = r"(\d*\.?\d+)\s*(%?)"
    scale = lambda value, percent: float(value) / (100 if percent or float(value) > 1 else 1)  # noqa: E731
    if match := re.fullmatch(rf"{number}\s*(?:-|–|to|\.\.)\s*{number}", text):
        percent = bool(match[2] or match[4]) or max(float(match[1]), float(match[3])) > 1
        low, high = sorted((scale(match[1], percent), scale(match[3], percent)))
    elif match := re.fullmatch(rf"(>=?|<=?)\s*{number}", text):
        bound = scale(match[2], match[3])
        low, high = (bound, 1.0) if match[1].startswith(">") else (0.0, bound)
    else:
        raise LabelchatError(f"Write the probability range as two numbers, e.g. 0.4-0.7, 40-70% or >0.9; "
                             f"got {text!r}.")
    if high > 1.0:
        raise LabelchatError(f"Probabilities go up to 1 (or 100%); got {text!r}.")
    return low, high


# -- training -------------------------------------------------------------------------------


def filter_text(label: str | None, low: float, high: float) -> str:
    """The review filters that are on, in words ('' when none is)."""
    parts = [f"suggested as {label}"] if label else []
    if (low, high) != (0.0, 1.0):
        parts.append(f"with probability {low:g}-{high:g}")
    return ", ".join(parts)


def training_curve_table(history: Sequence[dict]) -> tuple[list[str], list[list]]:
    """The curves of a training run as rows of a line chart: per epoch (fine-tuning) the training
    loss and the validation accuracy, per L-BFGS step (a probe) the loss and the training accuracy."""
    rows = []
    for record in history:
        x = record["epoch"] if "epoch" in record else record["step"]
        rows.append([x, "training loss", round(float(record["train_loss"]), 4)])
        for key, series in (("val_accuracy", "validation accuracy"), ("train_accuracy", "training accuracy")):
            if record.get(key) is not None:
                rows.append([x, series, round(float(record[key]), 4)])
    return ["step", "series", "value"], rows


def curve_axis(history: Sequence[dict]) -> str:
    """What the training curves' x axis counts."""
    return "L-BFGS step (probe)" if history and "step" in history[0] else "epoch"


def confusion_html(metrics: dict | None, caption: str = "held-out items: rows are the true label, columns the "
                   "prediction") -> str:
    """A confusion matrix ({"per_class": [{"label": ...}], "confusion": rows}; by default the held-out
    one of a model) as an HTML table, cells shaded by their share of the row."""
    if not metrics or not metrics.get("confusion"):
        return '<div class="lc-empty">No held-out items to show a confusion matrix for.</div>'
    labels = [c["label"] for c in metrics["per_class"]]
    head = "".join(f"<th>{html.escape(l)}</th>" for l in labels)
    rows = []
    for label, row in zip(labels, metrics["confusion"]):
        total = sum(row) or 1
        cells = "".join(
            f'<td style="background: rgba(37, 99, 235, {0.85 * n / total:.2f})" title="{n} of {total}">{n}</td>'
            for n in row
        )
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return (f'<table class="lc-confusion"><caption>{html.escape(caption)}</caption><tr><th></th>{head}</tr>'
            f'{"".join(rows)}</table>')


def versions_table(versions: Sequence) -> tuple[list[str], list[list]]:
    rows = [[("● " if v.active else "") + v.name, v.kind, percent(v.metrics.get("accuracy"), ""),
             percent(v.metrics.get("zero_shot_accuracy"), ""), v.metrics.get("train_items"), v.base_model,
             v.created_at[:16].replace("T", " ")] for v in versions]
    return ["version", "kind", "held-out accuracy", "zero-shot", "trained on", "base model", "created"], rows


def training_status(events: Sequence, running: bool, error: str | None, version_name: str | None,
                    note: str = "") -> str:
    """One line about the current or last training run, for the Models tab. Once it is done, what it
    made, not the last progress message ("fitting a probe on 38 items" read as if still going)."""
    if error:
        return f"**Training stopped:** {html.escape(error)}"
    if running:
        messages = [e.message for e in events if e.message]
        last = messages[-1] if messages else ""
        steps = [e for e in events if e.phase == "step"]
        where = f" · epoch {steps[-1].epoch}/{steps[-1].epochs}, step {steps[-1].step}/{steps[-1].steps}" if steps else ""
        return f"**Training…**{where} {html.escape(last)}"
    if version_name:
        warning = f" **{html.escape(note)}**" if note else ""
        return f"**Done:** created {html.escape(version_name)}.{warning}"
    return "No training run in this session yet."


# -- the page's frame -----------------------------------------------------------------------


def header_html(project_name: str, counts) -> str:
    """The header: the project's name and its counts (items, confirmed, pending), updated after decisions."""
    by_status = counts.by_status
    figures = [(counts.items, "item"), (by_status.get("confirmed", 0), "confirmed"),
               (by_status.get("pending", 0) + by_status.get("skipped", 0), "pending")]
    cells = "".join(f'<span class="lc-count" data-kind="{noun}"><b>{n}</b> '
                    f'{plural(n, noun) if noun == "item" else noun}</span>' for n, noun in figures)
    return (f'<div class="lc-header"><span class="lc-brand">labelchat</span>'
            f'<span class="lc-project">{html.escape(project_name)}</span>'
            f'<span class="lc-counts">{cells}</span></div>')


PLACEHOLDERS = {
    "per_label": "Items per label appear here once there are labels: confirmed and suggested, side by side.",
    "histogram": "The probabilities of the pending items' best suggestions appear here once labels are "
                 "suggested (say 'label them' in the chat).",
    "progress": "Labelling progress appears here after the first decision: items confirmed over time, "
                "net of undos.",
    "curves": "Training curves appear here after a training run: loss and accuracy per step (probe) or "
              "per epoch (fine-tune).",
}


def placeholder_html(kind: str) -> str:
    return f'<div class="lc-placeholder">{html.escape(PLACEHOLDERS[kind])}</div>'


def curves_placeholder_html(metrics: dict | None) -> str:
    """What stands in for the training curves: a probe that kept zero-shot fitted nothing to draw."""
    if metrics and "strength" in metrics and metrics["strength"] is None:
        losses = ", ".join(f"{name} {loss:.3f}" for name, loss in (metrics.get("validation_loss") or {}).items())
        return ('<div class="lc-placeholder">This probe kept zero-shot: no fit beat it in cross-validation, so '
                f'there is no curve to draw (validation loss per strength: {html.escape(losses)}). '
                'Confirm more items, then train again.</div>')
    return placeholder_html("curves")


def label_choices(counts) -> list[tuple[str, str]]:
    """(shown, value) for the label browser's dropdown: each label with its confirmed count."""
    return [(f"{c.label} · {c.confirmed} confirmed", c.label) for c in counts.by_label]


def label_gallery(item_ids: Sequence[int], path_of: Callable[[int], str]) -> list[tuple[str, str]]:
    """(image path, caption) per confirmed item of a label, for a gr.Gallery."""
    return [(path_of(i), f"#{i}") for i in item_ids]
