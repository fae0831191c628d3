"""The agent's tools: thin adapters over the plain functions in `tools/`.

Each returns (short text for the model, typed artifact for the UI). A
LabelchatError becomes an error observation the model and the person see;
the store's transactions mean a failing tool leaves nothing half-written.
This is the only module that imports langchain_core.tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from langchain_core.tools import BaseTool, tool

from index.errors import LabelchatError
from index.labels import parse_label_list
from index.project import Project
from index.types import Action
from tools.wording import counted, plural, unpacked_text

ProgressFn = Callable[[int, int, str], None]


@dataclass
class AgentContext:
    """What the tools act on, and the hooks the loop sets for the running call."""

    project: Project
    model: str | None = None
    device: str | None = None
    progress: ProgressFn = lambda done, total, what: None
    should_stop: Callable[[], bool] = lambda: False
    notices: list[str] = field(default_factory=list)
    write_behind: bool = False  # the browser app: refreshed suggestions are stored from a thread
    conversation: Any = None  # agent.conversation.ConversationState: what was shown and given
    actor: str = "chat"  # who decides: the decision log's actor (--user, or the app's logged-in user)
    _reviewer: Any = None

    def reviewer(self):
        """The review loop for this project, built once and refreshed as decisions come."""
        from tools.review import Reviewer

        labels = self.project.store.label_set()
        stale = self._reviewer is None or self._reviewer.labels != labels.names or \
            len(self._reviewer.item_ids) != self.project.store.embedding_count(self._reviewer.model)
        if stale:
            self.forget_reviewer()
            self._reviewer = Reviewer(self.project, model=self.model, device=self.device,
                                      on_notice=self.notices.append, on_progress=self.progress)
            if self.write_behind:
                self._reviewer.write_behind()
        return self._reviewer

    def forget_reviewer(self) -> None:
        """Drop the review loop (after its unwritten suggestions are stored, so they cannot
        land on top of newer ones)."""
        if self._reviewer is not None:
            self._reviewer.flush()
        self._reviewer = None


# Actions that are expensive or hard to take back wait for a yes (unless --yes).
NEEDS_CONFIRMATION = {"accept_above", "crawl", "train_model", "set_labels"}


def build_tools(ctx: AgentContext) -> list[BaseTool]:
    store = ctx.project.store

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def add_images(sources: list[str], labels_from_folders: bool = False) -> tuple[str, Any]:
        """Add images to the project from folders, files, zip archives, URL lists or URLs.

        Args:
            sources: Paths, zip files, .txt/.csv URL lists or http(s) URLs, as the person wrote them.
            labels_from_folders: Treat a <label>/<image> folder layout as confirmed labels.
        """
        from tools.ingest import IngestOptions, ingest

        report = ingest(ctx.project, sources, IngestOptions(labels_from_folders=labels_from_folders),
                        on_progress=ctx.progress, should_stop=ctx.should_stop)
        ctx.forget_reviewer()
        text = f"Added {counted(report.added, 'image')} ({report.duplicates} already here)"
        if report.unpacked:
            text += f"; {unpacked_text(report.unpacked)}"
        if report.problems:
            reasons = ", ".join(f"{r} {n}" for r, n in report.skipped_by_reason().items())
            named = "; ".join(f"{_short(p.source)}: {p.message}" for p in report.problems[:5])
            more = f"; and {report.skipped - 5} more" if report.skipped > 5 else ""
            text += f"; skipped {report.skipped} ({reasons}): {named}{more}"
        return text + ".", report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def crawl(urls: list[str], depth: int = 1, max_images: int = 200, max_pages: int = 50) -> tuple[str, Any]:
        """Gather images from web pages, sitemaps or URL lists, politely (robots.txt, per-host limits).

        Args:
            urls: Start pages, sitemap.xml files or URL lists, as the person wrote them.
            depth: Link hops to follow from the start pages.
            max_images: Stop after saving this many images.
            max_pages: Stop after reading this many pages.
        """
        from tools.crawl import CrawlOptions, crawl as run_crawl, summary

        options = CrawlOptions(depth=depth, max_images=max_images, max_pages=max_pages)
        report = run_crawl(ctx.project, urls, options, should_stop=ctx.should_stop,
                           on_progress=lambda p: ctx.progress(p.images, max_images, f"{p.pages} pages"))
        ctx.forget_reviewer()
        return f"Saved {counted(report.saved, 'image')} from {', '.join(urls)} ({summary(report)}).", report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def set_labels(labels: list[str]) -> tuple[str, Any]:
        """Replace the label set.

        Args:
            labels: The label names, e.g. ["cat", "dog", "bird"].
        """
        label_set = store.set_labels(parse_label_list("\n".join(labels)))
        ctx.forget_reviewer()
        hint = " Say 'label them' to suggest these labels." if store.item_count() else ""
        return f"The labels are now: {', '.join(label_set.names)}.{hint}", label_set

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def add_labels(labels: list[str]) -> tuple[str, Any]:
        """Add labels to the label set, keeping the ones already there.

        Args:
            labels: The new label names.
        """
        label_set = store.add_labels(parse_label_list("\n".join(labels)))
        ctx.forget_reviewer()
        return f"The labels are now: {', '.join(label_set.names)}.", label_set

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def suggest_labels() -> tuple[str, Any]:
        """Suggest a label for every image (zero-shot, improved by confirmed examples)."""
        reviewer = ctx.reviewer()
        refresh = reviewer.refresh()
        counts = store.status()
        per_label = ", ".join(f"{c.label} {c.suggested}" for c in counts.by_label if c.suggested)
        text = f"Suggested labels for {counted(refresh.items, 'image')} with {reviewer.model}: {per_label}."
        if ctx.notices:
            text += " (No CLIP weights here, so the offline model was used; 'labelchat fetch-model' gets CLIP.)"
            ctx.notices.clear()
        return text, counts

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def review_batch(strategy: Literal["uncertain", "balanced", "confident", "random"] = "uncertain",
                     size: int = 10, label: str | None = None) -> tuple[str, Any]:
        """Show the next images to review, with their suggestions and similar confirmed examples.

        Args:
            strategy: uncertain (least sure first), balanced, confident (most sure first) or random.
            size: How many images to show.
            label: Only images whose best suggestion is this label.
        """
        if not 1 <= size <= 500:
            raise LabelchatError(f"Show between 1 and 500 images at a time, not {size}.")
        cards = ctx.reviewer().batch(strategy, size, label=label)
        lines = [
            f"#{c.item.id}: {c.suggestions[0].label} {c.suggestions[0].score:.2f}" if c.suggestions else f"#{c.item.id}"
            for c in cards
        ]
        return (f"{counted(len(cards), 'image')} to review: " + "; ".join(lines)) if cards else "Nothing left to review.", cards

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def suspect_labels(limit: int = 10) -> tuple[str, Any]:
        """Find confirmed labels that look wrong: the rest of the data says another label.

        Args:
            limit: How many to list at most.
        """
        from tools.quality.suspects import find_suspects

        report = find_suspects(ctx.project, ctx.reviewer().model, limit=max(1, min(limit, 500)))
        parts = [f"#{s.item_id} is {s.label} but looks like {s.likely_label} ({s.score:.2f})" for s in report.suspects]
        skipped = "".join(f" Not checked: {label} ({why})." for label, why in report.unscored.items())
        if not parts:
            return f"No label looks wrong among {counted(report.scored, 'confirmed image')}.{skipped}", report
        return (f"{counted(len(parts), 'label')} {plural(len(parts), 'looks', 'look')} wrong: " + "; ".join(parts) + ". In the Review tab the order 'suspect' "
                f"shows them to check: approve keeps a label, another label corrects it.{skipped}"), report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def decide(item_ids: list[int], action: Literal["accept", "reject", "skip"], label: str | None = None) -> tuple[str, Any]:
        """Accept, reject or skip images: accept takes each image's best suggestion unless a label is given.

        Args:
            item_ids: The image ids, e.g. [12, 13].
            action: accept, reject or skip.
            label: The label to accept or reject instead of the best suggestion.
        """
        reviewer = ctx.reviewer()
        decisions = reviewer.decide_many(item_ids, Action(action), label, actor=ctx.actor)  # all or none; one undo
        reviewer.refresh()
        done = ", ".join(f"#{d.item_id} {d.label or ''}".strip() for d in decisions)
        return f"{action.capitalize()}ed {done}. Suggestions updated.".replace("Skiped", "Skipped"), decisions

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def correct(item_id: int, label: str) -> tuple[str, Any]:
        """Give one image its right label.

        Args:
            item_id: The image id.
            label: The right label.
        """
        reviewer = ctx.reviewer()
        decision = reviewer.decide(item_id, Action.CORRECT, label, actor=ctx.actor)
        reviewer.refresh()
        return f"#{item_id} is now {label}. Suggestions updated.", decision

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def correct_many(item_ids: list[int], label: str) -> tuple[str, Any]:
        """Give several images the same right label, as one action (one undo takes it back).

        Args:
            item_ids: The image ids, e.g. [12, 13].
            label: The right label.
        """
        reviewer = ctx.reviewer()
        mark = store.decision_mark()
        store.decide_many([(int(i), Action.CORRECT, label) for i in item_ids], actor=ctx.actor, auto=False)
        reviewer.refresh()
        decisions = [d for d in store.decisions(since=mark) if d.actor == ctx.actor]
        return f"{', '.join(f'#{i}' for i in item_ids)} are now {label}. Suggestions updated.", decisions

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def accept_above(min_prob: float, label: str | None = None) -> tuple[str, Any]:
        """Accept every pending image whose best suggestion has at least this probability.

        Args:
            min_prob: The probability threshold, in (0, 1].
            label: Only images suggested as this label.
        """
        reviewer = ctx.reviewer()
        report = reviewer.accept_above(min_prob, label, actor=ctx.actor)
        reviewer.refresh()
        which = f" suggested as {label}" if label else ""
        return f"Accepted {counted(report.accepted, 'image')}{which} with probability >= {min_prob}.", report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def similar(item_id: int | None = None, text: str | None = None, k: int = 8) -> tuple[str, Any]:
        """Find the images most like an image, or matching a text.

        Args:
            item_id: An image id.
            text: A description, e.g. "red sneakers" (needs a CLIP model).
            k: How many to show.
        """
        reviewer = ctx.reviewer()
        if item_id is not None:
            found = reviewer.similar(item_id, k)
        elif text:
            found = reviewer.similar_to_text(text, k)
        else:
            raise LabelchatError("Say which image (an id) or what to look for (a text).")
        listed = ", ".join(f"#{n.item_id} {n.label or '?'} {n.similarity:.2f}" for n in found)
        return f"Most similar: {listed}." if found else "Nothing similar found.", found

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def export_dataset(out_dir: str, format: Literal["imagefolder", "csv", "jsonl", "coco", "hf"] = "imagefolder",
                       include: Literal["confirmed", "suggested"] = "confirmed",
                       replace: bool = False) -> tuple[str, Any]:
        """Export the labels as a dataset into an empty folder.

        Args:
            out_dir: The folder to export into.
            format: imagefolder, csv, jsonl, coco or hf (Hugging Face imagefolder).
            include: confirmed labels only, or also the best suggestion of the other images.
            replace: Replace an earlier labelchat export in that folder (never other files).
        """
        from tools.export import export_dataset as export

        report = export(ctx.project, out_dir, format, include=include, overwrite=replace)
        return f"Exported {counted(report.count, 'image')} as {report.format.value} to {report.folder}.", report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def undo() -> tuple[str, Any]:
        """Undo the newest decision, or every decision of the newest bulk action."""
        undone = store.undo_last(actor=ctx.actor)
        if ctx._reviewer is not None:
            ctx._reviewer.refresh()
        return undo_text(store, undone), undone

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def status() -> tuple[str, Any]:
        """How the project is doing: images, labels, decisions."""
        counts = store.status()
        per_label = ", ".join(f"{c.label} {c.confirmed}" for c in counts.by_label) or "no labels yet"
        states = ", ".join(f"{n} {k}" for k, n in counts.by_status.items())
        return f"{counted(counts.items, 'image')} ({states}). Confirmed per label: {per_label}.", counts

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def train_model(kind: Literal["probe", "finetune"] = "probe", epochs: int = 10,
                    activate: bool = True) -> tuple[str, Any]:
        """Train a model on the confirmed labels and (by default) use it for the suggestions.

        Args:
            kind: probe (a linear classifier on the image features: seconds) or finetune (the whole
                image model: best on a GPU, slow on a CPU).
            epochs: For finetune, the most passes over the confirmed images.
            activate: Use the new model for every suggestion when it is done.
        """
        from tools.training import TrainConfig, activate as activate_version, train

        def progress(event) -> None:
            if event.phase in ("epoch", "step") and event.epochs:
                ctx.progress(event.epoch - (event.phase == "step"), event.epochs, event.message or "training")

        report = train(ctx.project, TrainConfig(kind=kind, epochs=epochs, model=ctx.model),
                       on_progress=progress, should_stop=ctx.should_stop)
        version = report.version
        ctx.forget_reviewer()
        text = (f"Trained {version.name}: {_percent(version.metrics.get('accuracy'))} right on "
                f"{version.metrics.get('holdout_items')} held-out confirmed images (zero-shot: "
                f"{_percent(version.metrics.get('zero_shot_accuracy'))}).")
        if activate:
            done = activate_version(ctx.project, version.id, device=ctx.device)
            text += f" It now suggests the labels of all {counted(done.rescored, 'image')}."
            text += worse_than_zero_shot(version.metrics)
        else:
            text += f" Say 'use {version.name}' to let it suggest labels."
        return text, report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def use_model(version: str) -> tuple[str, Any]:
        """Choose which trained model version suggests labels, or go back to zero-shot.

        Args:
            version: A version name or number (e.g. "v2-probe" or "2"), or "zero-shot".
        """
        from tools.training import activate as activate_version

        chosen = None
        if version.lower().replace("-", "").replace(" ", "") not in ("zeroshot", "base", "none"):
            chosen = _find_version(store, version)
        ctx.forget_reviewer()
        done = activate_version(ctx.project, chosen.id if chosen else None, device=ctx.device)
        name = chosen.name if chosen else "zero-shot"
        return f"Suggestions now come from {name}; re-scored {counted(done.rescored, 'image')}.", done

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def model_versions() -> tuple[str, Any]:
        """List the trained model versions with their held-out accuracy, and which one is in use."""
        versions = store.model_versions()
        if not versions:
            return "No trained models yet. Confirm some labels, then say 'train a model'.", versions
        parts = [f"{v.name}{' (in use)' if v.active else ''}: {_percent(v.metrics.get('accuracy'))} "
                 f"vs zero-shot {_percent(v.metrics.get('zero_shot_accuracy'))}" for v in versions]
        return "Model versions: " + "; ".join(parts) + ".", versions

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def start_review_round(size: int | None = None, reviewer: str | None = None) -> tuple[str, Any]:
        """Start a review round: a sample of confirmed images, stratified by label, for a second person to label blind.

        Args:
            size: How many images to draw; without it, enough for 95% confidence within 5%.
            reviewer: The one person who should review this round.
        """
        from tools.rounds import start_round

        if size is not None and not 1 <= size <= 100_000:
            raise LabelchatError(f"Draw between 1 and 100000 images for a round, not {size}.")
        round_ = start_round(store, actor=ctx.actor, size=size, reviewer=reviewer)
        return (f"Started review round {round_.id}: {round_.why}. Someone other than the person who labelled "
                f"each image reviews it, without seeing that label: in the Rounds tab, or 'labelchat round "
                f"review --user NAME'."), round_

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def review_round_report() -> tuple[str, Any]:
        """How the newest review round went: agreement, Cohen's kappa, and each person's accuracy."""
        from tools.rounds import current_round, round_report

        report = round_report(store, current_round(store, open_only=False).id)
        kappa = "n/a" if report.kappa is None else f"{report.kappa:.2f}"
        people = "; ".join(f"{a.name} {a.correct}/{a.judged} right" for a in report.per_annotator)
        text = (f"Review round {report.round.id} ({report.round.status}): {report.reviewed} of {report.items} images "
                f"reviewed, {report.agreed} agreed ({_percent(report.agreement)}), Cohen's kappa {kappa}; "
                f"{report.disagreed} disagreements, {report.adjudicated} adjudicated.")
        if people:
            text += f" Against the settled answers: {people}."
        if report.notes:
            text += " Still to do: " + "; ".join(report.notes) + "."
        return text, report

    return [add_images, crawl, set_labels, add_labels, suggest_labels, review_batch, decide, correct,
            correct_many, accept_above, similar, export_dataset, undo, status, train_model, use_model, model_versions,
            suspect_labels, start_review_round, review_round_report]


def worse_than_zero_shot(metrics: dict) -> str:
    """A warning when a new version was less accurate than zero-shot on the held-out items ('' if not)."""
    accuracy, zero_shot = metrics.get("accuracy"), metrics.get("zero_shot_accuracy")
    if accuracy is None or zero_shot is None or accuracy >= zero_shot:
        return ""
    return (f" Note: on the held-out images it was less accurate than zero-shot ({_percent(accuracy)} against "
            f"{_percent(zero_shot)}); say 'go back to zero-shot' to stop using it, or confirm more images and "
            f"train again.")


def _short(source: str) -> str:
    """A file's name, or a URL, as a person recognises it (uploads sit in long temporary paths)."""
    from pathlib import PurePath

    return source if "://" in source else PurePath(source.split("!", 1)[0]).name + (
        f"!{source.split('!', 1)[1]}" if "!" in source else "")


def undo_text(store, undone: list) -> str:
    """What one undo took back, for the chat and the review panel."""
    if len(undone) == 1:
        state = store.state(undone[0].item_id)
        return f"Undid the decision on #{undone[0].item_id}; it is now {state.label or state.status.value}."
    ids = ", ".join(f"#{d.item_id}" for d in undone[:8]) + (", ..." if len(undone) > 8 else "")
    return f"Undid the bulk action's {counted(len(undone), 'decision')} ({ids}); those images are back to how they were."


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _find_version(store, ref: str):
    ref = ref.strip().lstrip("#")
    for version in store.model_versions():
        if ref in (str(version.id), version.name, version.name.split("-")[0], version.name.split("-")[0][1:]):
            return version
    names = ", ".join(v.name for v in store.model_versions()) or "none yet"
    raise LabelchatError(f"There is no model version {ref!r}; the versions are: {names}.")


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


__all__ = ["AgentContext", "NEEDS_CONFIRMATION", "build_tools", "confirmation_question"]
