"""The review loop: batches to look at, decisions, and suggestions that improve with each one.

A package, one module per concern; every name below stays importable as `from tools.review import X`.
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
    Neighbor,
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
