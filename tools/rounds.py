"""Review rounds: a second person labels a sample of confirmed items blind, an adjudicator settles
the disagreements, and the report gives agreement, Cohen's kappa and each person's accuracy.

The sample is stratified by label (each label gets its share, at least one item where the size
allows). Its size is asked for, or follows from a stated confidence and margin of error (Cochran's
formula for a proportion at p = 0.5, corrected for the finite number of confirmed items). The
reviewer never sees the first label; nobody reviews an item they labelled themselves.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Sequence

from index.errors import LabelchatError
from index.store import Store
from index.store.rounds import ADJUDICATE, REVIEW, AlreadyAnsweredError, Round, RoundAnswer, RoundItem

__all__ = ["AlreadyAnsweredError", "Round", "RoundAnswer", "RoundItem", "RoundReport", "Disagreement",
           "sample_size", "stratified_sample", "start_round", "record_audit", "NOT_THIS_LABEL", "current_round", "next_to_review", "review_item",
           "disagreements", "adjudicate", "undo_answer", "close_round", "round_report", "cohen_kappa", "truths"]


@dataclass(frozen=True)
class Disagreement:
    item_id: int
    first_label: str
    first_actor: str
    review_label: str
    reviewer: str


@dataclass(frozen=True)
class ClassAgreement:
    label: str
    reviewed: int  # items of this (first) label that the second person answered
    agreed: int

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.reviewed if self.reviewed else None


@dataclass(frozen=True)
class AnnotatorScore:
    name: str
    judged: int  # items of theirs whose right answer is known (agreed, or adjudicated)
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.judged if self.judged else None


@dataclass(frozen=True)
class RoundReport:
    round: Round
    items: int
    reviewed: int
    agreed: int
    disagreed: int
    adjudicated: int
    to_adjudicate: int
    kappa: float | None  # Cohen's kappa of the first and the second label (None: undefined, e.g. nothing reviewed)
    per_class: tuple[ClassAgreement, ...]
    per_annotator: tuple[AnnotatorScore, ...]
    changed: int = 0  # labels an adjudication changed
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.reviewed if self.reviewed else None


# -- the sample -------------------------------------------------------------------------------


def sample_size(population: int, confidence: float = 0.95, margin: float = 0.05) -> tuple[int, str]:
    """How many of `population` items to check to estimate their error rate within `margin` at
    `confidence` (worst case p = 0.5), and that reasoning in words."""
    if not 0 < confidence < 1:
        raise LabelchatError(f"A confidence must be between 0 and 1, e.g. 0.95; got {confidence}.")
    if not 0 < margin < 0.5:
        raise LabelchatError(f"A margin of error must be between 0 and 0.5, e.g. 0.05; got {margin}.")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    infinite = z * z * 0.25 / (margin * margin)
    size = min(population, math.ceil(infinite / (1 + (infinite - 1) / population))) if population else 0
    why = (f"{size} of {population} confirmed items: enough to know the share of wrong labels within "
           f"±{margin:.0%} at {confidence:.0%} confidence (z = {z:.2f}, worst case p = 0.5: {infinite:.0f} "
           f"items, fewer for a finite set of {population})")
    return size, why


def stratified_sample(labels: dict[int, str], size: int, seed: int | None = None) -> list[int]:
    """`size` item ids, each label's share of them proportional to its count (largest remainder),
    at least one per label where the size allows; drawn at random within a label."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for item_id in sorted(labels):
        by_label[labels[item_id]].append(item_id)
    size = min(size, len(labels))
    total = len(labels)
    quota = {label: size * len(ids) / total for label, ids in by_label.items()}
    take = {label: int(q) for label, q in quota.items()}
    if size >= len(by_label):
        for label in take:
            take[label] = max(take[label], 1)
    while sum(take.values()) > size:  # the minimum of one pushed it over: trim the largest
        floor = 1 if size >= len(by_label) else 0
        label = max((l for l in take if take[l] > floor), key=lambda l: (take[l] - quota[l], take[l]))
        take[label] -= 1
    for label in sorted(quota, key=lambda l: quota[l] - int(quota[l]), reverse=True):
        if sum(take.values()) >= size:
            break
        if take[label] < len(by_label[label]):
            take[label] += 1
    while sum(take.values()) < size:  # labels that ran out: fill from those with items left
        label = max((l for l in take if take[l] < len(by_label[l])), key=lambda l: len(by_label[l]) - take[l])
        take[label] += 1
    chosen = [item_id for label, ids in by_label.items() for item_id in rng.sample(ids, take[label])]
    rng.shuffle(chosen)
    return chosen


def start_round(store: Store, *, actor: str, size: int | None = None, confidence: float | None = None,
                margin: float | None = None, reviewer: str | None = None, people: Sequence[str] | None = None,
                seed: int | None = None) -> Round:
    """Draw a new round from the confirmed items. `people`: everyone who may review (the auth
    file's users), to tell when nobody else could; `reviewer`: the one person to review it."""
    confirmed = store.confirmed_labels()
    if not confirmed:
        raise LabelchatError("There are no confirmed items to review yet: confirm some labels first "
                             "(labelchat review --answer), then start a round.")
    actors = store.decision_actors(list(confirmed))
    if reviewer is not None and people is not None and reviewer not in people:
        raise LabelchatError(f"The reviewer {reviewer!r} is not one of the users ({', '.join(sorted(people))}); "
                             f"name one of them.")
    if reviewer is not None:
        eligible = {i: l for i, l in confirmed.items() if actors.get(i) != reviewer}
        if not eligible:
            raise LabelchatError(f"Every confirmed item was labelled by {reviewer}, and nobody reviews their own "
                                 f"items: there is nobody else's work for {reviewer} to review. Ask another "
                                 f"person (--reviewer NAME), or have someone else label some items first.")
    else:
        eligible = confirmed
        if people is not None and not any(set(people) - {actors.get(i)} for i in confirmed):
            raise LabelchatError(f"Nobody else can review: every confirmed item was labelled by "
                                 f"{', '.join(sorted(set(people)))}, the only user(s) in the auth file. Add a "
                                 f"second person to the auth file, then start the round.")
    if size is not None:
        why = f"{min(size, len(eligible))} items, as asked" + (
            f" (only {len(eligible)} can be reviewed)" if size > len(eligible) else "")
    else:
        size, why = sample_size(len(eligible), confidence or 0.95, margin or 0.05)
    ids = stratified_sample(eligible, size, seed)
    rows = [(item_id, eligible[item_id], actors.get(item_id, "unknown")) for item_id in ids]
    return store.create_round(rows, reviewer=reviewer, size=len(rows), why=why, created_by=actor)


def current_round(store: Store, round_id: int | None = None, *, open_only: bool = True) -> Round:
    """The round asked for, or the newest open one (the newest of any with `open_only` False)."""
    if round_id is not None:
        return store.get_round(round_id)
    reviews = [r for r in store.rounds() if r.kind == "review"]
    rounds = [r for r in reviews if r.status == "open" or not open_only]
    if not rounds:
        which = "open review round" if open_only and reviews else "review round yet"
        raise LabelchatError(f"There is no {which}; start one: labelchat round start --size 30 (in the chat: "
                             f"'start a review round of 30').")
    return rounds[-1]


NOT_THIS_LABEL = "(another label)"  # an audit's rejected suggestion: wrong, the right label unknown


def record_audit(store: Store, audit: Sequence[int], suggested: dict[int, str], min_prob: float) -> Round | None:
    """Keep an auto-accept's audit as a closed round of kind 'audit': each audited item's suggested
    label against what the person made of it (their label, or NOT_THIS_LABEL when they rejected it;
    skipped and unanswered ones tell nothing). None when there was no audit."""
    from index.types import Status

    if not audit:
        return None
    states = {item_id: store.state(item_id) for item_id in audit}
    actors = store.decision_actors(list(audit))
    answers = []
    for item_id, state in states.items():
        if state.status is Status.CONFIRMED:
            answers.append((item_id, state.label, actors.get(item_id, "unknown")))
        elif state.status is Status.REJECTED:
            who = store.decisions(item_id)[-1].actor
            answers.append((item_id, NOT_THIS_LABEL, who))
    rows = [(item_id, suggested[item_id]) for item_id in audit if item_id in suggested]
    return store.record_audit(rows, [a for a in answers if a[0] in suggested],
                              why=f"the audit of an auto-accept at probability >= {min_prob}", created_by="auto-accept")


# -- answers ------------------------------------------------------------------------------------


def _answers(store: Store, round_id: int, kind: str) -> dict[int, RoundAnswer]:
    return {a.item_id: a for a in store.round_answers(round_id) if a.kind == kind}


def next_to_review(store: Store, round_id: int, user: str, exclude: Sequence[int] = ()) -> RoundItem | None:
    """The next item of the round for `user` to label blind (not one of `exclude`: skipped); None when
    none is left. Raises when what is left is not theirs to review (their own items, another's round)."""
    round_ = _open(store, round_id)
    if round_.reviewer is not None and round_.reviewer != user:
        raise LabelchatError(f"Review round {round_id} is for {round_.reviewer} to review, not {user}; "
                             f"pass --user {round_.reviewer}, or start a round for {user}.")
    answered = _answers(store, round_id, REVIEW)
    left = [item for item in store.round_items(round_id) if item.item_id not in answered and
            item.item_id not in set(exclude)]
    for item in left:
        if item.first_actor != user:
            return item
    if left:
        raise LabelchatError(f"The {len(left)} item(s) left in round {round_id} were labelled by {user}, and "
                             f"nobody reviews their own items: another person must review them.")
    return None


def review_item(store: Store, round_id: int, item_id: int, label: str, user: str) -> RoundAnswer:
    """The second person's blind label of one item."""
    item = _round_item(store, round_id, item_id)
    round_ = _open(store, round_id)
    if item.first_actor == user:
        raise LabelchatError(f"Item {item_id} was labelled by {user}: nobody reviews their own items, so your "
                             f"answer was not recorded.")
    if round_.reviewer is not None and round_.reviewer != user:
        raise LabelchatError(f"Review round {round_id} is for {round_.reviewer} to review, not {user}.")
    _known_label(store, label)
    return store.answer_round_item(round_id, item_id, REVIEW, label, user)


def disagreements(store: Store, round_id: int, *, settled: bool = False) -> list[Disagreement]:
    """Items whose second label differs from the first, not yet adjudicated (or, with `settled`, all)."""
    items = {item.item_id: item for item in store.round_items(round_id)}
    judged = _answers(store, round_id, ADJUDICATE)
    found = []
    for item_id, answer in _answers(store, round_id, REVIEW).items():
        item = items[item_id]
        if answer.label != item.first_label and (settled or item_id not in judged):
            found.append(Disagreement(item_id, item.first_label, item.first_actor, answer.label, answer.actor))
    return found


def adjudicate(store: Store, round_id: int, item_id: int, label: str, user: str) -> RoundAnswer:
    """The adjudicator's verdict on a disagreement; a label other than the item's own becomes a
    `correct` decision by the adjudicator in the log."""
    _open(store, round_id)
    if not any(d.item_id == item_id for d in disagreements(store, round_id, settled=True)):
        raise LabelchatError(f"Item {item_id} of round {round_id} is not a disagreement (not reviewed yet, or both "
                             f"labels agree): there is nothing to adjudicate.")
    _known_label(store, label)
    current = store.state(item_id).label
    return store.answer_round_item(round_id, item_id, ADJUDICATE, label, user, change_label=label != current)


def undo_answer(store: Store, round_id: int, user: str) -> RoundAnswer:
    """Take back `user`'s newest answer in this round (an adjudication's label change too)."""
    _open(store, round_id)
    return store.undo_round_answer(round_id, user)


def close_round(store: Store, round_id: int, user: str) -> Round:
    return store.close_round(round_id, user)


def _open(store: Store, round_id: int) -> Round:
    round_ = store.get_round(round_id)
    if round_.status != "open":
        raise LabelchatError(f"Review round {round_id} was closed by {round_.closed_by}; nothing was changed. "
                             f"Start a new one: labelchat round start --size 30.")
    return round_


def _round_item(store: Store, round_id: int, item_id: int) -> RoundItem:
    for item in store.round_items(round_id):
        if item.item_id == item_id:
            return item
    raise LabelchatError(f"Item {item_id} is not in review round {round_id}; nothing was recorded.")


def _known_label(store: Store, label: str) -> None:
    from index.errors import LabelNotInSetError

    names = store.label_set().names
    if label not in names:
        raise LabelNotInSetError(label, names)


# -- the report ---------------------------------------------------------------------------------


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters' labels of the same items: (p_o - p_e) / (1 - p_e). None for no
    items; 1.0 when both gave one and the same label throughout (p_e = 1, perfect agreement)."""
    n = len(pairs)
    if not n:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[label] * second[label] for label in first) / (n * n)
    if expected >= 1:
        return 1.0 if observed >= 1 else None
    return (observed - expected) / (1 - expected)


def truths(store: Store, round_id: int) -> dict[int, str]:
    """item id -> its right label as the round found it: the agreed label, or the adjudicated one (of
    an audit: the person's answer)."""
    items = {item.item_id: item for item in store.round_items(round_id)}
    judged = _answers(store, round_id, ADJUDICATE)
    audit = store.get_round(round_id).kind == "audit"
    result = {}
    for item_id, answer in _answers(store, round_id, REVIEW).items():
        if audit or answer.label == items[item_id].first_label:
            result[item_id] = answer.label
        elif item_id in judged:
            result[item_id] = judged[item_id].label
    return result


def round_report(store: Store, round_id: int) -> RoundReport:
    round_ = store.get_round(round_id)
    items = {item.item_id: item for item in store.round_items(round_id)}
    reviews = _answers(store, round_id, REVIEW)
    judged = _answers(store, round_id, ADJUDICATE)
    right = truths(store, round_id)
    pairs = [(items[i].first_label, a.label) for i, a in reviews.items()]
    reviewed_by_label: Counter = Counter()
    agreed_by_label: Counter = Counter()
    for first, second in pairs:
        reviewed_by_label[first] += 1
        agreed_by_label[first] += first == second
    labels = sorted({item.first_label for item in items.values()})
    per_class = tuple(ClassAgreement(label, reviewed_by_label[label], agreed_by_label[label]) for label in labels)
    judged_count: Counter = Counter()
    correct: Counter = Counter()
    for item_id, truth in right.items():
        for person, given in ((items[item_id].first_actor, items[item_id].first_label),
                              (reviews[item_id].actor, reviews[item_id].label)):
            judged_count[person] += 1
            correct[person] += given == truth
    per_annotator = tuple(AnnotatorScore(name, judged_count[name], correct[name]) for name in sorted(judged_count))
    agreed = sum(a == b for a, b in pairs)
    disagreed = len(pairs) - agreed
    notes = []
    if len(reviews) < len(items):
        notes.append(f"{len(items) - len(reviews)} item(s) not reviewed yet")
    to_adjudicate = disagreed - sum(1 for i in judged if i in reviews)
    if to_adjudicate:
        notes.append(f"{to_adjudicate} disagreement(s) wait for adjudication (labelchat round adjudicate); "
                     f"accuracies count only settled items")
    changed = sum(1 for a in judged.values() if a.decision_id is not None)
    return RoundReport(round_, len(items), len(reviews), agreed, disagreed, len(judged), to_adjudicate,
                       cohen_kappa(pairs), per_class, per_annotator, changed, tuple(notes))
