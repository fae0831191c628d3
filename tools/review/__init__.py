"""The review loop: batches to look at, decisions, and suggestions that improve with each one.

A package, one module per concern; every name below stays importable as `from tools.review import X`.
"""

from .loop import (
    CHANGED,
    DEFAULT_MIN_PRECISION,
    WRITE_CHUNK,
    AuditPlan,
    AutoAcceptReport,
    BulkReport,
    Card,
    Neighbor,
    RefreshReport,
    Reviewer,
    _audit_refusal,
    _rows_of,
    finish_auto_accept,
    plan_auto_accept,
    suggest_with_examples,
    wilson_interval,
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
