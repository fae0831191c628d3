"""One project's workbench: the one way the CLI, the browser app and the agent's tools change it.

A `Workbench` opens the project's review loop (and keeps it while it is current),
records decisions, undoes them, changes the label set and the project's settings, and
chooses who scores the project: the active trained version, else zero-shot with the
project's model. Every front end calls it, so a change is made, refreshed and worded the
same way whether it came from a key press, a command or a sentence; none of them writes to
the store itself (tests/test_architecture.py checks `ui/`).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from index.errors import LabelchatError
from index.project import Project
from index.types import Action, Decision, ItemState, Label, LabelSet, ModelVersion, Status

from .wording import counted

if TYPE_CHECKING:
    from .review import BulkReport, Reviewer
    from .training.activation import Activation

ZERO_SHOT_NAMES = ("zeroshot", "base", "none")  # what 'use zero-shot' may be spelt as


@dataclass(frozen=True)
class UndoReport:
    """What one undo took back: a decision, or every decision of a bulk action, and the
    states those items are in now."""

    undone: tuple[Decision, ...]
    states: tuple[ItemState, ...]

    @property
    def back_to_pending(self) -> bool:
        """One item that waits for a decision again (the review panel shows it again)."""
        return len(self.states) == 1 and self.states[0].status is Status.PENDING

    @property
    def text(self) -> str:
        if len(self.undone) == 1:
            state = self.states[0]
            return f"Undid the decision on #{self.undone[0].item_id}; it is now {state.label or state.status.value}."
        now_as = Counter(state.label or state.status.value for state in self.states)
        ids = ", ".join(f"#{d.item_id}" for d in self.undone[:8]) + (", ..." if len(self.undone) > 8 else "")
        return (f"Undid the bulk action's {counted(len(self.undone), 'decision')} ({ids}); they are now "
                + ", ".join(f"{what} {n}" for what, n in now_as.most_common()) + ".")


@dataclass(frozen=True)
class Scoring:
    """Who scores the project's items now."""

    version: ModelVersion | None  # the active trained version in use, or None: zero-shot
    model: str  # the model spec whose features are used (the version's base model, or the project's)

    @property
    def name(self) -> str:
        return self.version.name if self.version is not None else "zero-shot"


@dataclass
class Workbench:
    """The review loop and every change to one project, for one front end's lifetime.

    `model`, `device` and `template_set` choose the zero-shot model as the CLI's options do
    (None: the project's setting). `write_behind`: refreshed suggestions are stored from a
    thread (the browser app: a key press never waits for thousands of rows)."""

    project: Project
    model: str | None = None
    device: str | None = None
    template_set: str | None = None
    write_behind: bool = False
    on_notice: Callable[[str], None] = lambda text: None
    on_progress: Callable[[int, int, str], None] = lambda done, total, what: None
    _reviewer: "Reviewer | None" = field(default=None, repr=False)
    _building: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def store(self):
        """The project's store, for reading (changes go through the methods below)."""
        return self.project.store

    # -- the review loop ------------------------------------------------------------------

    def reviewer(self) -> "Reviewer":
        """The review loop, built once (it scores what is not scored yet) and built again when
        the label set or the number of embedded items has changed."""
        with self._building:
            if self._reviewer is None or self._stale(self._reviewer):
                self.forget_reviewer()
                self._reviewer = self._build_reviewer()
            return self._reviewer

    def _stale(self, reviewer: "Reviewer") -> bool:
        return reviewer.labels != self.store.label_set().names or \
            len(reviewer.item_ids) != self.store.embedding_count(reviewer.model)

    def _build_reviewer(self) -> "Reviewer":
        from .review import Reviewer
        from .zeroshot import DEFAULT_TEMPLATES

        reviewer = Reviewer(self.project, model=self.model, device=self.device,
                            template_set=self.template_set or DEFAULT_TEMPLATES,
                            on_notice=self.on_notice, on_progress=self.on_progress)
        if self.write_behind:
            reviewer.write_behind()
        return reviewer

    def forget_reviewer(self) -> None:
        """Drop the review loop (after its unwritten suggestions are stored, so they cannot land
        on top of newer ones): the next `reviewer()` builds one on the project as it is now."""
        with self._building:
            if self._reviewer is not None:
                self._reviewer.flush()
            self._reviewer = None

    def images_changed(self) -> None:
        """Images were added (ingest, crawl): the next review loop scores them."""
        self.forget_reviewer()

    def refresh(self):
        """The live suggestions after decisions (tools/review.py `Reviewer.refresh`)."""
        return self.reviewer().refresh()

    # -- decisions ------------------------------------------------------------------------

    def decide(self, item_id: int, action: Action | str, label: str | None = None, *, actor: str) -> Decision:
        """One decision (accept without a label takes the best suggestion)."""
        return self.reviewer().decide(int(item_id), Action(action), label or None, actor=actor)

    def decide_many(self, item_ids: Sequence[int], action: Action | str, label: str | None = None, *,
                    actor: str) -> list[Decision]:
        """Accept, reject or skip several items, all or none, as one action (one undo)."""
        return self.reviewer().decide_many([int(i) for i in item_ids], Action(action), label, actor=actor)

    def correct_many(self, item_ids: Sequence[int], label: str, *, actor: str) -> list[Decision]:
        """Give several items the same right label, as one action (one undo takes it back)."""
        if not label:
            raise LabelchatError("A correction needs the right label, e.g. 'correct 12 13 windmill'.")
        store = self.store
        mark = store.decision_mark()
        store.decide_many([(int(i), Action.CORRECT, label) for i in item_ids], actor=actor, auto=False)
        return [d for d in store.decisions(since=mark) if d.actor == actor]

    def accept_above(self, min_prob: float, label: str | None = None, *, actor: str) -> "BulkReport":
        """Accept every pending item whose best suggestion reaches `min_prob` (one undo)."""
        return self.reviewer().accept_above(float(min_prob), label or None, actor=actor)

    def undo(self, item_id: int | None = None, *, actor: str, since: int | None = None,
             refresh: bool = False) -> UndoReport:
        """Undo an item's newest decision, or (no item) the newest decision or bulk action;
        `since`: only one made after this decision mark. `refresh`: recompute the open review
        loop's suggestions too (the chat; the review panel refreshes with its next batch)."""
        store = self.store
        undone = [store.undo(int(item_id), actor=actor)] if item_id is not None \
            else store.undo_last(actor=actor, since=since)
        if refresh and self._reviewer is not None:
            self._reviewer.refresh()
        return UndoReport(tuple(undone), tuple(store.state(d.item_id) for d in undone))

    # -- labels ---------------------------------------------------------------------------

    def set_labels(self, labels: Sequence[Label]) -> LabelSet:
        """Replace the label set (the review loop is built again on the new one)."""
        return self._labels_changed(self.store.set_labels(labels))

    def add_labels(self, labels: Sequence[Label]) -> LabelSet:
        return self._labels_changed(self.store.add_labels(labels))

    def remove_labels(self, names: Sequence[str]) -> LabelSet:
        return self._labels_changed(self.store.remove_labels(list(names)))

    def _labels_changed(self, label_set: LabelSet) -> LabelSet:
        self.forget_reviewer()
        return label_set

    # -- who scores -----------------------------------------------------------------------

    def set_model(self, spec: str) -> str:
        """Make `spec` the project's zero-shot model (checked first); returns it as stored."""
        from .models import MODEL_SETTING, parse_spec

        canonical = str(parse_spec(spec))
        self.store.set_setting(MODEL_SETTING, canonical)
        self.forget_reviewer()
        return canonical

    def scoring(self) -> Scoring:
        """Who scores the items now: the active trained version if it still fits the labels
        and features, else zero-shot with the project's model."""
        from .models import MODEL_SETTING, resolve_spec
        from .training.versions import active_version_if_usable

        version = None if self.model else active_version_if_usable(self.project)
        model = version.base_model if version is not None else \
            resolve_spec(self.model, self.store.get_setting(MODEL_SETTING))[0]
        return Scoring(version, model)

    def find_version(self, ref: str) -> ModelVersion:
        """A model version by id, name or number ('v2-probe', 'v2', '2', '#2')."""
        ref = str(ref).strip().lstrip("#")
        versions = self.store.model_versions()
        for version in versions:
            if ref in (str(version.id), version.name, version.name.split("-")[0], version.name.split("-")[0][1:]):
                return version
        names = ", ".join(v.name for v in versions) or "none yet (train one first)"
        raise LabelchatError(f"No model version {ref!r}; the versions are: {names}.")

    def use_version(self, ref: str | int | None, *, on_progress=None) -> "Activation":
        """Let a trained version score every item (None, 'zero-shot', 'base': zero-shot again)."""
        from .training import activate

        chosen = None
        if ref is not None and str(ref).lower().replace("-", "").replace(" ", "") not in ZERO_SHOT_NAMES:
            chosen = ref if isinstance(ref, int) else self.find_version(ref).id
        self.forget_reviewer()
        return activate(self.project, chosen, device=self.device, on_progress=on_progress)

    def train(self, config, *, activate: bool = False, resume: bool = False, on_progress=None, should_stop=None):
        """Train a model version on the confirmed labels (tools/training); with `activate`, it
        scores every item when it is done. Returns (TrainReport, Activation or None)."""
        from .training import train

        report = train(self.project, config, resume=resume, on_progress=on_progress, should_stop=should_stop)
        return report, (self.use_version(report.version.id) if activate else None)
