"""The auto-accept audit: accept every confident suggestion unseen, but only after a person has
checked a random sample of them and it was right often enough (`wilson_interval` bounds how sure).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from index.types import Action, Status

from ..rounds import record_audit
from .loop import Reviewer


@dataclass(frozen=True)
class AuditPlan:
    min_prob: float
    label: str | None
    candidates: tuple[int, ...]  # items that would be accepted
    audit: tuple[int, ...]  # a random sample of them for a person to check first


DEFAULT_MIN_PRECISION = 0.9  # what an audit must show before the rest is accepted unseen


@dataclass(frozen=True)
class AutoAcceptReport:
    accepted: int
    audited: int  # audit cards accepted, corrected or rejected (skips tell nothing)
    audit_correct: int
    precision: float | None  # estimated precision of the accepted labels
    precision_low: float | None  # 95% Wilson interval
    precision_high: float | None
    unanswered: int = 0  # audit cards left without a decision
    refused: str = ""  # why the rest was not accepted; "" when it was
    candidates: int = 0  # pending items that reached the probability when the audit was planned


def plan_auto_accept(reviewer: Reviewer, min_prob: float, *, label: str | None = None,
                     audit_size: int = 20, seed: int | None = None) -> AuditPlan:
    candidates = [item_id for item_id, _, _ in reviewer.candidates(min_prob, label)]
    rng = random.Random(seed)
    audit = rng.sample(candidates, min(audit_size, len(candidates)))
    return AuditPlan(min_prob, label, tuple(candidates), tuple(audit))


def finish_auto_accept(reviewer: Reviewer, plan: AuditPlan, suggested: dict[int, str], *,
                       min_precision: float = DEFAULT_MIN_PRECISION) -> AutoAcceptReport:
    """Score the audit from the decisions a person made on it, then accept the rest, but only
    if every audit card was answered and the audit was right at least `min_precision` of the
    time; else nothing more is accepted and `refused` says why (the audit's decisions stay).

    `suggested` holds the label each audit item was suggested when it was shown.
    Decisions made here are marked automatic (actor "auto-accept") so they can
    be told apart, and undone, later.
    """
    store = reviewer.store
    audited = correct = unanswered = 0
    for item_id in plan.audit:
        state = store.state(item_id)
        unanswered += state.status is Status.PENDING
        if state.status in (Status.CONFIRMED, Status.REJECTED):
            audited += 1
            correct += state.status is Status.CONFIRMED and state.label == suggested.get(item_id)
    low, high = wilson_interval(correct, audited)
    precision = correct / audited if audited else None
    record_audit(store, plan.audit, suggested, plan.min_prob)  # the measure of these labels, for the quality report
    refused = _audit_refusal(len(plan.audit), unanswered, audited, correct, min_precision)
    rest = []
    if not refused:
        still = {item_id: l for item_id, l, _ in reviewer.candidates(plan.min_prob, plan.label)}
        rest = [(i, Action.ACCEPT, still[i]) for i in plan.candidates if i in still and i not in plan.audit]
        store.decide_many(rest, actor="auto-accept", auto=True)
    return AutoAcceptReport(len(rest), audited, correct, precision, low, high, unanswered, refused,
                            len(plan.candidates))


def _audit_refusal(cards: int, unanswered: int, audited: int, correct: int, min_precision: float) -> str:
    """Why an audit does not let the rest be accepted unseen ('' when it does; none asked for: --audit 0)."""
    if not cards:
        return ""
    if unanswered:
        return (f"the audit was not finished ({unanswered} of {cards} cards unanswered); run auto-accept "
                f"again for a new audit")
    if not audited:
        return "every audit card was skipped, so the audit says nothing about the rest; run it again"
    if correct < min_precision * audited:
        return (f"the audit was right {correct} of {audited} times ({correct / audited:.1%}), below the "
                f"{min_precision:.0%} asked for (--min-precision); raise --min-prob, or review these by hand")
    return ""


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float | None, float | None]:
    if trials == 0:
        return None, None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - spread), min(1.0, centre + spread)
