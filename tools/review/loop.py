"""The review loop: batches to look at, decisions, and suggestions that improve with each one.

A `Reviewer` holds, for one project and model, every item's features and
zero-shot probabilities in memory, plus each item's nearest confirmed
examples (`ExampleVotes`). After decisions, `refresh()` recomputes every
undecided item's suggestions from those arrays (matrix products, nothing is
re-encoded) and stores the ones that changed, with the reasons.

Which items a batch holds, in what order, is tools/review/ordering.py; the searches by
similarity the reviewer inherits are tools/review/search.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from index.errors import LabelchatError, LabelNotInSetError
from index.project import Project
from index.types import Action, Decision, Item, ItemState, Status, Suggestion
from index.vectors import VectorIndex

from ..learn import BlendConfig, Blended, LiveLearner
from ..ranked_rows import ranked_rows
from ..models.base import head_from_bytes, probabilities_in_parts
from ..writebehind import SuggestionWriter
from ..zeroshot import DEFAULT_TEMPLATES, SuggestReport, check_label_set, head_key, suggest, templates
from .ordering import ORDER_LIMIT, Strategy, _order, without_near_duplicates
from .search import Neighbor, SimilaritySearch

CHANGED = 1e-3  # a suggestion whose probabilities moved less than this is not rewritten
WRITE_CHUNK = 20_000  # suggestions stored per transaction by a refresh without a writer thread


@dataclass(frozen=True)
class Card:
    """One item to review: what is suggested, and the confirmed examples that explain it."""

    item: Item
    state: ItemState
    suggestions: tuple[Suggestion, ...]
    neighbors: tuple[Neighbor, ...]


@dataclass(frozen=True)
class RefreshReport:
    items: int  # undecided items whose suggestions were recomputed
    written: int  # of those, how many changed enough to be stored
    examples: int  # confirmed items that voted
    blend: str = ""  # which blend the examples chose, when it is not the default (tools/learn.py)
    temperature: float = 1.0  # the calibration the examples fitted


@dataclass(frozen=True)
class BulkReport:
    accepted: int
    label: str | None
    min_prob: float


class Reviewer(SimilaritySearch):
    def __init__(
        self,
        project: Project,
        *,
        model: str | None = None,
        device: str | None = None,
        template_set: str = DEFAULT_TEMPLATES,
        config: BlendConfig = BlendConfig(),
        on_notice: Callable[[str], None] | None = None,
        on_progress: Callable[[int, int, str], None] | None = None,
    ):
        self.project = project
        self.store = project.store
        label_set = self.store.label_set()
        check_label_set(label_set.labels)
        report = suggest(project, model=model, device=device, template_set=template_set,
                         on_notice=on_notice, on_progress=on_progress)
        self.model = report.features_model or report.model  # whose features: the base model's or a version's
        self.source = report.model  # what suggests: a model spec, or a trained version's name
        self.method = report.method  # "zero-shot", "probe" or "finetune"
        self.device = device
        self.labels = list(label_set.names)
        self.column = {name: i for i, name in enumerate(self.labels)}
        self.head_key = report.head_key or head_key(self.model, label_set.labels, templates(template_set))
        head = head_from_bytes(self.store.get_head(self.head_key))
        item_ids, features = self.store.embeddings(self.model, dtype=None)  # float16, memory-mapped
        self.learner = LiveLearner(item_ids, features, probabilities_in_parts(head, features), config)
        del features  # the learner keeps them centred and normalised
        self.votes = self.learner.votes
        self.config = config
        self.zero_shot = self.learner.zero_shot
        self.item_ids = self.votes.item_ids
        self.current: Blended | None = None
        self.current_ids = np.zeros(0, dtype=np.int64)
        self.example_labels: dict[int, str] = {}
        self._index: VectorIndex | None = None
        self._floor: float | None = None  # see similarity_floor()
        self.writer: SuggestionWriter | None = None  # set by write_behind(): rows stored from a thread
        self.suspects: set[int] = set()  # confirmed items shown as suspects: accepting one keeps its label

    @property
    def features(self) -> np.ndarray:
        """Every item's features, centred and normalised, sorted like `item_ids` (made on first use)."""
        return self.votes.features

    def write_behind(self) -> None:
        """Store refreshed suggestions from a background thread (the browser app: a key press
        must not wait for thousands of rows); `flush()` waits for them."""
        if self.writer is None:
            self.writer = SuggestionWriter(self.store)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def suggestions_of(self, item_id: int) -> list[Suggestion]:
        """An item's current suggestions: the newest computed, even if not yet stored."""
        pending = self.writer.get(item_id) if self.writer is not None else None
        return pending if pending is not None else self.store.suggestions(item_id)

    # -- suggestions ------------------------------------------------------------------

    def refresh(self) -> RefreshReport:
        """Recompute the suggestions of every undecided item from the current decisions."""
        confirmed = self.store.confirmed_labels()
        examples = {item_id: self.column[label] for item_id, label in confirmed.items() if label in self.column}
        self.example_labels = {i: self.labels[c] for i, c in examples.items()}
        undecided = self.item_ids[~np.isin(self.item_ids, np.fromiter(confirmed, dtype=np.int64))]
        rejected = {
            item_id: [self.column[l] for l in labels if l in self.column]
            for item_id, labels in self.store.rejected_labels().items()
        }
        blended = self.learner.blend(undecided, examples, rejected)
        written = self._store_changed(undecided, blended)
        self.current, self.current_ids = blended, undecided
        choice = blended.choice
        blend = choice.describe() if choice is not None and not choice.is_default else ""
        return RefreshReport(len(undecided), written, len(examples), blend,
                             choice.temperature if choice is not None else 1.0)

    def _store_changed(self, item_ids: np.ndarray, blended: Blended) -> int:
        """Store the suggestions that moved: a new best label, or a probability off by CHANGED.

        Compared with the last refresh; at the first one, before any confirmed example,
        with what `suggest` stored from the same head (so opening a fresh project of
        100,000 items stores nothing, where it rewrote every row: 6 s)."""
        changed = self._moved(item_ids, blended)
        rows = np.flatnonzero(changed)
        examples = self.example_labels  # replaced, never changed, by the next refresh: a snapshot
        if not len(rows):
            return 0
        if self.writer is not None:
            row_of = dict(zip(item_ids[rows].tolist(), rows.tolist()))
            self.writer.put(
                row_of, lambda item_id: self._suggestions(item_id, blended, row_of[item_id], examples),
                lambda ids: self.store_rows(item_ids, blended, np.array([row_of[i] for i in ids]), examples))
            return len(rows)
        self.store_rows(item_ids, blended, rows, examples)
        return len(rows)

    def store_rows(self, item_ids: np.ndarray, blended: Blended, rows: np.ndarray,
                   examples: dict[int, str]) -> None:
        """Store the suggestions of blended `rows` (of items item_ids[rows]), as arrays."""
        method = f"{self.method}+examples" if examples else self.method
        for start in range(0, len(rows), WRITE_CHUNK):
            chunk = rows[start : start + WRITE_CHUNK]
            ranked = ranked_rows(item_ids[chunk], blended, chunk, examples, self.column)
            self.store.put_ranked_suggestions(
                ranked.item_ids, self.labels, ranked.order, ranked.scores, model=self.source, method=method,
                head_key=self.head_key, zero_shot=ranked.zero_shot, examples=ranked.examples, voters=ranked.voters)

    def _moved(self, item_ids: np.ndarray, blended: Blended) -> np.ndarray:
        """Which rows' suggestions differ from what was last written (True: write them)."""
        changed = np.ones(len(item_ids), dtype=bool)
        new = blended.probabilities
        if self.current is not None and len(self.current_ids):  # the last refresh's probabilities
            where, known = _rows_of(self.current_ids, item_ids)
            old = self.current.probabilities[where[known]]
            changed[known] = (np.abs(old - new[known]).max(axis=1) > CHANGED) | (
                old.argmax(axis=1) != new[known].argmax(axis=1))
        elif not self.example_labels:
            # first refresh, no example yet: suggest stored this head's zero-shot for (nearly) every
            # item, and that is what the blend gives, except where a person rejected a label
            if self.store.count_suggested_by(self.head_key, self.method) == len(item_ids) == self.store.item_count():
                changed = np.zeros(len(item_ids), dtype=bool)  # every item, as suggest stored it: no list needed
            else:
                plain = self.store.item_ids_suggested_by(self.head_key, self.method)
                changed = ~np.isin(item_ids, plain, assume_unique=True)
            changed |= np.isin(item_ids, np.fromiter(self.store.rejected_labels(), dtype=np.int64))
        return changed  # (first refresh with examples: every suggestion blends them in)

    def _suggestions(self, item_id: int, blended: Blended, row: int, example_labels: dict[int, str]) -> list[Suggestion]:
        """One item's suggestions (a card, the writer's `get`), from the rows a refresh stores."""
        ranked = ranked_rows(np.array([item_id]), blended, np.array([row]), example_labels, self.column)
        method = f"{self.method}+examples" if example_labels else self.method
        return [
            Suggestion(item_id, self.labels[column], float(ranked.scores[0, rank]), rank, self.source, method,
                       zero_shot=float(ranked.zero_shot[0, rank]),
                       examples=float(ranked.examples[0, rank]) if ranked.examples is not None else None,
                       voters=tuple(ranked.voters.get((0, rank), ())))
            for rank, column in enumerate(ranked.order[0].tolist())
        ]

    # -- batches --------------------------------------------------------------------

    def batch(self, strategy: Strategy | str = Strategy.UNCERTAIN, size: int = 20, *,
              label: str | None = None, seed: int | None = None,
              min_prob: float = 0.0, max_prob: float = 1.0, exclude: Iterable[int] = ()) -> list[Card]:
        """The next items to review: pending (and skipped) ones, ordered by `strategy`,
        optionally only those whose best suggestion is `label` with a probability in range,
        never those in `exclude` (cards still on screen)."""
        strategy = Strategy(strategy)
        if strategy is Strategy.SUSPECT:
            return self._suspect_cards(size, label, set(exclude))
        if self.current is None:
            self.refresh()
        open_ids = self.store.open_item_ids()
        if exclude:
            open_ids = open_ids[~np.isin(open_ids, np.fromiter(exclude, dtype=np.int64))]
        if np.array_equal(open_ids, self.current_ids):  # nothing skipped or set aside: every row, no copy
            open_rows = slice(None)
        else:
            open_rows = np.flatnonzero(np.isin(self.current_ids, open_ids, assume_unique=True))
        probabilities = self.current.probabilities[open_rows]
        ranked = self.current.uncalibrated if self.current.uncalibrated is not None else self.current.probabilities
        ranked = ranked[open_rows]
        ids = self.current_ids[open_rows]
        if label is not None:
            if label not in self.column:
                raise LabelNotInSetError(label, self.labels)
            keep = probabilities.argmax(axis=1) == self.column[label]
            probabilities, ranked, ids = probabilities[keep], ranked[keep], ids[keep]
        if min_prob > 0 or max_prob < 1:  # (a million rows copied for no filter took a tenth of a second)
            best = probabilities.max(axis=1)
            in_range = (best >= min_prob) & (best <= max_prob)
            ranked, ids = ranked[in_range], ids[in_range]
        # uncertain: spreading the 40 x size least certain over labels gives the same first
        # `size` as spreading thousands, in a fraction of the time (a key press waits for it)
        limit = max(400, 40 * size) if strategy is Strategy.UNCERTAIN else ORDER_LIMIT
        order = _order(strategy, ranked, seed, limit)
        chosen = without_near_duplicates(ids[order], size, self.item_ids, self.votes.rows_features)
        return [self.card(int(i)) for i in chosen]

    def _suspect_cards(self, size: int, label: str | None, shown: set[int]) -> list[Card]:
        """Confirmed items flagged as likely wrong, most suspicious first: accept keeps the label."""
        from ..quality.suspects import find_suspects

        found = [s for s in find_suspects(self.project, self.model).suspects
                 if s.item_id not in shown and (label is None or s.label == label)][:size]
        self.suspects.update(s.item_id for s in found)
        return [self.card(s.item_id) for s in found]

    def card(self, item_id: int, k: int = 5) -> Card:
        return Card(
            self.store.get_item(item_id),
            self.store.state(item_id),
            tuple(self.suggestions_of(item_id)),
            tuple(self._nearest_examples(item_id, k)),
        )

    def search_cards(self, text: str, k: int = 12) -> list[Card]:
        """Undecided items that match a text (CLIP models), as cards to review."""
        found = self.similar_to_text(text, k, status=Status.PENDING)
        return [self.card(n.item_id) for n in found]

    # -- decisions --------------------------------------------------------------------

    def decide(self, item_id: int, action: Action | str, label: str | None = None, *,
               actor: str = "user") -> Decision:
        """One decision. accept without a label takes the current best suggestion, and reject
        without a label rejects it; of a confirmed item, reject rejects its label and accept
        is refused (a person's label is never replaced by a suggestion unasked)."""
        action = Action(action)
        if action is Action.UNDO:
            return self.store.undo(item_id, actor=actor)
        if action is Action.ACCEPT and item_id in self.suspects and label in (None, self.store.state(item_id).label):
            return self.store.keep_label(item_id, actor=actor)
        if action in (Action.ACCEPT, Action.REJECT) and label is None:
            label = self._label_to_decide(item_id, action)
        if action is Action.CORRECT and not label:
            raise LabelchatError("A correction needs the right label, e.g. 'correct 42 windmill'.")
        return self.store.decide(item_id, action, label, actor=actor)

    def _label_to_decide(self, item_id: int, action: Action) -> str:
        """The label an accept or reject without one is about."""
        state = self.store.state(item_id)
        if state.status is not Status.CONFIRMED:
            return self._best_label(item_id)
        if action is Action.REJECT:
            return state.label
        raise LabelchatError(f"Item {item_id} is already confirmed as {state.label!r}; nothing was changed. "
                             f"To give it another label: correct {item_id} LABEL.")

    def _best_label(self, item_id: int) -> str:
        top = self.suggestions_of(item_id)
        if not top:
            self.store.get_item(item_id)
            raise LabelchatError(f"Item {item_id} has no suggestion yet; give the label: accept {item_id} LABEL.")
        return top[0].label

    def decide_many(self, item_ids: Sequence[int], action: Action | str, label: str | None = None, *,
                    actor: str = "user") -> list[Decision]:
        """Accept, reject or skip each listed item as `decide` would, all or none, as one action
        (one undo takes it back). Returns the decisions."""
        action = Action(action)
        if action not in (Action.ACCEPT, Action.REJECT, Action.SKIP):
            raise LabelchatError("Lists of items can be accepted, rejected or skipped; correct them one by one.")
        needs_label = action is not Action.SKIP and label is None
        rows = [(int(i), action, self._label_to_decide(int(i), action) if needs_label else label) for i in item_ids]
        mark = self.store.decision_mark()
        self.store.decide_many(rows, actor=actor, auto=False)
        listed = {item_id for item_id, _, _ in rows}
        return [d for d in self.store.decisions(since=mark) if d.actor == actor and d.item_id in listed]

    def candidates(self, min_prob: float, label: str | None = None) -> list[tuple[int, str, float]]:
        """Pending items whose best suggestion is `label` (any label) with probability >= min_prob."""
        if not 0 < min_prob <= 1:
            raise LabelchatError(f"A probability threshold must be in (0, 1]; got {min_prob}.")
        if label is not None and label not in self.column:
            raise LabelNotInSetError(label, self.labels)
        if self.current is None:
            self.refresh()
        pending = set(self.store.item_ids_where(status=Status.PENDING))
        best = self.current.probabilities.argmax(axis=1)
        result = []
        for r, item_id in enumerate(self.current_ids):
            column, p = int(best[r]), float(self.current.probabilities[r, best[r]])
            if int(item_id) in pending and p >= min_prob and (label is None or self.labels[column] == label):
                result.append((int(item_id), self.labels[column], p))
        return result

    def accept_above(self, min_prob: float, label: str | None = None, *, actor: str = "bulk") -> BulkReport:
        """Accept every pending item whose best suggestion reaches `min_prob` (one transaction)."""
        rows = [(i, Action.ACCEPT, l) for i, l, _ in self.candidates(min_prob, label)]
        self.store.decide_many(rows, actor=f"{actor}:p>={min_prob}", auto=True)
        return BulkReport(len(rows), label, min_prob)


def suggest_with_examples(project: Project, *, model: str | None = None, device: str | None = None,
                          template_set: str = DEFAULT_TEMPLATES, **options) -> SuggestReport:
    """`suggest`, then, when people have confirmed labels, the same suggestions the review panel and
    the chat show: the model's scores blended with the confirmed examples (`Reviewer.refresh`).
    Without this a scripted `labelchat suggest` would store plain model scores beside a review
    panel that shows better ones."""
    report = suggest(project, model=model, device=device, template_set=template_set, **options)
    stopped = report.embed is not None and report.embed.cancelled
    if stopped or not project.store.confirmed_labels():
        return report
    reviewer = Reviewer(project, model=model, device=device, template_set=template_set)
    refreshed = reviewer.refresh()
    report.examples, report.refreshed, report.blend = refreshed.examples, refreshed.items, refreshed.blend
    return report


def _rows_of(known_ids: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of item_ids (sorted), its row in known_ids (sorted) and whether it is there."""
    if not len(known_ids):
        return np.zeros(len(item_ids), dtype=np.int64), np.zeros(len(item_ids), dtype=bool)
    where = np.minimum(np.searchsorted(known_ids, item_ids), len(known_ids) - 1)
    return where, known_ids[where] == item_ids
