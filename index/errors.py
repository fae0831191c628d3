"""Domain exceptions. Each message says what was wrong, with the value, and what to do.

The edges (CLI, chat, UI) catch `LabelchatError` and show `str(error)`;
anything else is a bug and is allowed to raise.
"""

from __future__ import annotations


class LabelchatError(Exception):
    """An error a person can act on."""


class ProjectError(LabelchatError):
    """The project folder or its database cannot be used as it is."""


class SchemaTooNewError(ProjectError):
    def __init__(self, path: str, found: int, known: int):
        super().__init__(
            f"{path} was written by a newer labelchat (schema version {found}, this one knows "
            f"up to {known}). Nothing was changed. Upgrade labelchat "
            f"(pip install -U labelchat) or open a copy of the project with the newer version."
        )
        self.found = found
        self.known = known


class InvalidLabelError(LabelchatError):
    """A label name that cannot be used (it must be usable as a folder name)."""


class LabelNotInSetError(LabelchatError):
    def __init__(self, label: str, known: list[str], *, removing: bool = False):
        import difflib

        shown = ", ".join(known) if known else "(the label set is empty)"
        close = [k for k in known if k.casefold() == label.casefold()] or \
            difflib.get_close_matches(label, known, n=1, cutoff=0.75)
        if close:
            hint = f" Did you mean '{close[0]}'?"
        else:
            hint = "" if removing else f" Add it first: labelchat labels add '{label}'"
        gone = ", so there is nothing to remove." if removing else "."
        super().__init__(f"'{label}' is not in the label set ({shown}){gone}{hint}")
        self.label = label


class UnknownItemError(LabelchatError):
    def __init__(self, item_id: object):
        super().__init__(
            f"There is no item with id {item_id!r} in this project. "
            f"'labelchat status' shows how many items there are."
        )
        self.item_id = item_id


class NothingToUndoError(LabelchatError):
    pass


class ExportError(LabelchatError):
    pass


class ImportFormatError(LabelchatError):
    pass
