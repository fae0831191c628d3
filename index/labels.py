"""Rules for label names and parsing of label lists typed by people.

A label must work as a folder name on every common file system, because
ImageFolder exports and `--labels-from-folders` imports use it as one.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from .errors import InvalidLabelError, LabelchatError
from .types import Label

MAX_LABEL_LENGTH = 100
_FORBIDDEN = set('/\\<>:"|?*')
_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | {
    f"lpt{i}" for i in range(1, 10)
}


def validate_label_name(name: str) -> str:
    """Return `name` if it is a usable label, else raise InvalidLabelError saying why."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidLabelError("A label name is empty. Give every label a name, e.g. 'cat'.")
    problem = _problem(name)
    if problem:
        suggestion = suggest_label_name(name)
        hint = f" Try '{suggestion}'." if suggestion and suggestion != name else ""
        raise InvalidLabelError(
            f"The label {name!r} cannot be used: {problem}. Labels become folder names on "
            f"export, so they must be valid folder names.{hint}"
        )
    return name


def _problem(name: str) -> str | None:
    if name != name.strip():
        return "it starts or ends with a space"
    if name in (".", "..") or name.startswith("."):
        return "it starts with a dot"
    bad = sorted({c for c in name if c in _FORBIDDEN})
    if bad:
        return "it contains " + " ".join(repr(c) for c in bad)
    if any(unicodedata.category(c).startswith("C") for c in name):
        return "it contains a control or invisible character"
    if name.endswith("."):
        return "it ends with a dot"
    if name.split(".")[0].lower() in _RESERVED:
        return "it is a reserved device name on Windows"
    if not any(c.isalnum() for c in name):
        return "it has no letter or digit"
    if len(name) > MAX_LABEL_LENGTH:
        return f"it is {len(name)} characters long (at most {MAX_LABEL_LENGTH})"
    return None


def suggest_label_name(name: str) -> str:
    """A usable name close to `name` (for error messages), or '' if none comes to mind."""
    cleaned = "".join(
        "-" if c in _FORBIDDEN else c
        for c in name
        if not unicodedata.category(c).startswith("C")
    )
    cleaned = re.sub(r"\s+", " ", cleaned).strip().strip(".").strip()
    cleaned = cleaned[:MAX_LABEL_LENGTH].strip()
    if not cleaned or _problem(cleaned):
        return ""
    return cleaned


def parse_label_list(text: str) -> list[Label]:
    """Labels from 'cat, dog, bird', 'cat; dog' or one per line; each validated.

    A label may carry a description after '=': 'tabby = a striped domestic cat'.
    """
    separators = "\n" if "\n" in text.strip() else (";" if ";" in text else ",")
    labels: list[Label] = []
    for part in text.split(separators):
        if not part.strip(" ,;\t"):
            continue
        name, _, description = part.partition("=")
        name = name.strip()
        validate_label_name(name)
        labels.append(Label(name, description.strip() or None))
    if not labels:
        raise InvalidLabelError(f"No labels found in {text!r}. Give them like 'cat, dog, bird'.")
    refuse_duplicates([label.name for label in labels])
    return labels


def spelled_otherwise(name: str, names: list[str]) -> str | None:
    """The label among `names` that differs from `name` only in case, if there is one."""
    return next((other for other in names if other != name and other.casefold() == name.casefold()), None)


def refuse_duplicates(names: list[str]) -> None:
    """Each label once, and no two that differ only in case: on macOS and Windows their
    export folders would be one folder."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.get(name.casefold())
        if other == name:
            raise InvalidLabelError(f"The label '{name}' is given twice; give each label once.")
        if other is not None:
            raise InvalidLabelError(
                f"The labels '{other}' and '{name}' differ only in case: on macOS and Windows their "
                f"export folders would be one folder. Keep one of them.")
        seen[name.casefold()] = name


def read_label_file(path: str) -> list[Label]:
    """Labels from a file: one a line ('name = description' keeps its description, commas and
    all), or several on a line separated by commas or semicolons; '#' lines and blank lines are
    skipped."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelchatError(f"The label file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    entries = [line.strip() for line in text.splitlines()]
    entries = [entry for entry in entries if entry and not entry.startswith("#")]
    labels = []
    for entry in entries:
        if "=" in entry:
            name, _, description = entry.partition("=")
            labels.append(Label(validate_label_name(name.strip()), description.strip() or None))
        else:
            labels += parse_label_list(entry)
    if not labels:
        raise LabelchatError(f"No labels in {path}: write one a line, e.g. 'cat' or 'tabby = a striped cat'.")
    refuse_duplicates([label.name for label in labels])
    return labels
