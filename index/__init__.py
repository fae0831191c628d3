"""The state of one labelling project: SQLite store, media store, (later) vector indexes.

Imports nothing of ours and nothing heavy.
"""

from .errors import LabelchatError
from .project import Project, default_project_dir
from .types import Action, Decision, Item, ItemState, Label, LabelSet, Status, Suggestion

__all__ = [
    "Action",
    "Decision",
    "Item",
    "ItemState",
    "Label",
    "LabelSet",
    "LabelchatError",
    "Project",
    "Status",
    "Suggestion",
    "default_project_dir",
]
