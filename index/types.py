"""Typed records that flow between the layers (store -> tools -> agent -> ui).

They are plain frozen dataclasses: no SQL, no I/O. The store builds them
from rows; everything above reads their fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Action(str, Enum):
    """What a person (or a rule acting for one) did to an item."""

    ACCEPT = "accept"  # the suggested / given label is right
    REJECT = "reject"  # the suggested label is wrong (evidence against it)
    CORRECT = "correct"  # the right label is another one
    SKIP = "skip"  # looked at it, no answer now
    UNDO = "undo"  # cancels the newest not-yet-undone decision of the item


class Status(str, Enum):
    """An item's state, derived from its decision log."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    SKIPPED = "skipped"


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Item:
    id: int
    sha256: str
    phash: str  # 16 hex digits, a 64-bit DCT perceptual hash
    media_path: str  # relative to the project folder
    source: str  # where it first came from: a path or a URL
    page_url: str | None
    width: int
    height: int
    format: str  # Pillow's format name, e.g. "JPEG"
    bytes: int
    added_at: str


@dataclass(frozen=True)
class Origin:
    """One place an image was found. An image seen twice keeps both origins."""

    source: str  # a file path, "archive.zip!member" or a URL
    page_url: str | None = None
    alt_text: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class Label:
    name: str
    description: str | None = None
    prompts: tuple[str, ...] = ()  # texts that describe the label to a model


@dataclass(frozen=True)
class LabelSet:
    labels: tuple[Label, ...]
    version: int  # increases on every change; caches key on it

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Suggestion:
    item_id: int
    label: str
    score: float  # calibrated probability in [0, 1]
    rank: int  # 0 is the best guess
    model: str  # the model spec or version that produced it
    method: str  # "zero-shot", "zero-shot+examples", "fine-tuned", ...
    created_at: str = ""
    zero_shot: float | None = None  # why: this label's zero-shot probability
    examples: float | None = None  # why: the confirmed examples' vote for it (0..1)
    voters: tuple[int, ...] = ()  # why: the examples that voted for it


@dataclass(frozen=True)
class Decision:
    id: int
    item_id: int
    action: Action
    label: str | None
    actor: str  # "user", "import", "auto-accept", ...
    auto: bool  # made by a rule rather than a person looking at the item
    created_at: str
    undoes: int | None = None  # for UNDO: the decision it cancels
    batch: int | None = None  # the first decision of the bulk action this one was part of


@dataclass(frozen=True)
class ItemState:
    """An item's current status and label, derived from its decisions."""

    item_id: int
    status: Status
    label: str | None
    rejected: tuple[str, ...] = ()  # labels a person said it is not
    last_decision_id: int | None = None


@dataclass(frozen=True)
class ModelVersion:
    id: int
    name: str
    kind: str  # "probe", "finetune", ...
    base_model: str  # the model spec it starts from
    labels: tuple[str, ...]
    path: str | None  # weights, relative to the project folder
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    active: bool = False
    created_at: str = ""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str  # "ingest", "crawl", "embed", "suggest", "train", "export"
    status: JobStatus
    done: int
    total: int | None
    message: str
    params: dict = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""


@dataclass(frozen=True)
class LabelCount:
    label: str
    confirmed: int  # items a person (or a rule) confirmed as this label
    suggested: int  # undecided items whose best suggestion is this label
    in_label_set: bool = True  # False for labels left over from an old label set


@dataclass(frozen=True)
class StatusCounts:
    """How the project is doing: totals per status and per label."""

    items: int
    by_status: dict[str, int]  # every Status value, zero included
    by_label: tuple[LabelCount, ...]
    decisions: int


@dataclass(frozen=True)
class CrawlUrl:
    """A URL a crawl found: a page to read, a sitemap or URL list, or an image to fetch."""

    url: str  # normalised
    kind: str  # "page", "image", "sitemap", "list"
    depth: int  # link hops from a start URL
    page_url: str | None = None  # the page it was found on
    alt_text: str | None = None
    title: str | None = None
    status: str = "queued"  # "queued", or its outcome: "saved", "duplicate", "blocked by robots", ...
    detail: str | None = None  # what went wrong, for people
    item_id: int | None = None  # the item it became
