"""The review loop: batches to look at, decisions, and suggestions that improve with each one.

One module per concern: `loop` (the `Reviewer`: refresh, batches, cards, decisions), `ordering`
(which open items a batch shows, in what order), `search` (similarity search, a mixin of the
`Reviewer`) and `audit` (auto-accept after a person checks a sample). Every name below stays
importable as `from tools.review import X`.
"""

from .audit import (
    DEFAULT_MIN_PRECISION,
    AuditPlan,
    AutoAcceptReport,
    finish_auto_accept,
    plan_auto_accept,
    wilson_interval,
)
from .loop import CHANGED, WRITE_CHUNK, BulkReport, Card, RefreshReport, Reviewer, suggest_with_examples
from .ordering import NEAR_DUPLICATE_COSINE, ORDER_LIMIT, Strategy, without_near_duplicates
from .search import Neighbor, SimilaritySearch

# private names of the old tools/review.py, still importable here (bench/learner_ideas.py uses two)
from .audit import _audit_refusal  # noqa: F401
from .loop import _rows_of  # noqa: F401
from .ordering import _capped, _order, _spread_over_labels  # noqa: F401

__all__ = [
    "CHANGED", "DEFAULT_MIN_PRECISION", "NEAR_DUPLICATE_COSINE", "ORDER_LIMIT", "WRITE_CHUNK",
    "AuditPlan", "AutoAcceptReport", "BulkReport", "Card", "Neighbor", "RefreshReport", "Reviewer",
    "SimilaritySearch", "Strategy", "finish_auto_accept", "plan_auto_accept", "suggest_with_examples",
    "wilson_interval", "without_near_duplicates",
]
