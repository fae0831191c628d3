"""What the person is asked before a tool call that is expensive or hard to take back."""

from __future__ import annotations

from index.errors import LabelchatError
from index.labels import parse_label_list
from tools.wording import counted

from .context import AgentContext

# Actions that are expensive or hard to take back wait for a yes (unless --yes).
NEEDS_CONFIRMATION = {"accept_above", "crawl", "train_model", "set_labels"}


def confirmation_question(ctx: AgentContext, name: str, args: dict) -> str | None:
    """What the person is asked before an expensive or destructive call (None: nothing to ask)."""
    if name == "accept_above":
        count = len(ctx.reviewer().candidates(float(args["min_prob"]), args.get("label")))
        if count == 0:
            return None
        which = f" suggested as {args['label']}" if args.get("label") else ""
        return (f"This will accept {counted(count, 'image')}{which} with probability >= {args['min_prob']}. "
                f"Go ahead? (yes / no)")
    if name == "set_labels":
        return _labels_question(ctx, args.get("labels", []))
    if name == "train_model":
        if args.get("kind", "probe") != "finetune":
            return None  # a probe takes seconds
        from tools.models.device import pick_device

        where = pick_device(ctx.device)
        slow = "" if where.startswith("cuda") else " There is no GPU here, so this will be slow (minutes per epoch)."
        return (f"This will fine-tune the image model on the confirmed labels for up to "
                f"{args.get('epochs', 10)} epochs on {where}.{slow} Go ahead? (yes / no)")
    if name == "crawl":
        limits = f"up to {args.get('max_pages', 50)} pages and {args.get('max_images', 200)} images, " \
                 f"{args.get('depth', 1)} link(s) deep"
        return f"This will crawl {', '.join(args.get('urls', []))} ({limits}). Go ahead? (yes / no)"
    return f"Run {name}? (yes / no)"


def _labels_question(ctx: AgentContext, labels: list[str]) -> str | None:
    """Asked before a new label set drops labels that confirmed images have (None: none would,
    or the labels are unusable, which the tool itself then says)."""
    try:
        names = {label.name for label in parse_label_list("\n".join(labels))}
    except LabelchatError:
        return None
    counts = ctx.project.store.status().by_label
    dropped = [(c.label, c.confirmed) for c in counts if c.confirmed and c.label not in names]
    if not dropped:
        return None
    listed = ", ".join(f"{label} ({n})" for label, n in dropped)
    return (f"The new labels leave out {listed}: {sum(n for _, n in dropped)} confirmed images would have a "
            f"label that is no longer in the set. Replace the labels anyway? (yes / no; to keep them, say "
            f"'add the labels {', '.join(labels)}')")
