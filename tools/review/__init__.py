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
    _audit_refusal,
    finish_auto_accept,
    plan_auto_accept,
    wilson_interval,
)
from .loop import (
    CHANGED,
    WRITE_CHUNK,
    BulkReport,
    Card,
    RefreshReport,
    Reviewer,
    _rows_of,
    suggest_with_examples,
)
from .ordering import (
    NEAR_DUPLICATE_COSINE,
    ORDER_LIMIT,
    Strategy,
    _capped,
    _order,
    _spread_over_labels,
    without_near_duplicates,
)
from .search import Neighbor, SimilaritySearch
