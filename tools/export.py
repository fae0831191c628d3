"""Exporting the current labels as a dataset in the common formats.

Every format writes the images next to its manifest (copies, or hard links
with `link=True`) and a `.labelchat-export.json` marker, so `import_dataset`
can read any export back and reproduce the same labels.

    imagefolder  <out>/<label>/<file>
    csv          <out>/labels.csv      + <out>/images/<file>
    jsonl        <out>/labels.jsonl    + <out>/images/<file>
    coco         <out>/annotations.json + <out>/images/<file>  (COCO-style classification)
    hf           <out>/train/metadata.jsonl + <out>/train/<file>  (Hugging Face imagefolder)
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

from index.errors import ExportError
from index.project import Project
from index.store import now
from index.types import Status

MARKER = ".labelchat-export.json"


class ExportFormat(str, Enum):
    IMAGEFOLDER = "imagefolder"
    CSV = "csv"
    JSONL = "jsonl"
    COCO = "coco"
    HF = "hf"


class Include(str, Enum):
    CONFIRMED = "confirmed"  # labels a person confirmed (the default)
    SUGGESTED = "suggested"  # confirmed, plus the best suggestion of every other item


@dataclass(frozen=True)
class ExportRow:
    file: str  # relative to the export folder, '/'-separated
    label: str
    status: str  # "confirmed" or "suggested"
    score: float | None
    sha256: str
    source: str
    width: int
    height: int


@dataclass(frozen=True)
class ExportReport:
    folder: str
    format: ExportFormat
    count: int
    per_label: dict[str, int]
    manifest: str | None  # the manifest file, relative to the folder


def export_dataset(
    project: Project,
    out_dir: str | Path,
    fmt: ExportFormat | str = ExportFormat.IMAGEFOLDER,
    *,
    include: Include | str = Include.CONFIRMED,
    link: bool = False,
    overwrite: bool = False,
) -> ExportReport:
    fmt, include = _parse_format(fmt), Include(include)
    out = Path(out_dir).expanduser()
    labelled = _labelled_items(project, include)
    if not labelled:
        raise ExportError(
            f"Nothing to export: the project has no {include.value} labels yet. "
            f"Label some items first, or use --include suggested."
        )
    _refuse_missing_media(project, [item for item, *_ in labelled])
    _prepare_folder(out, overwrite)
    marker = {"format": fmt.value, "include": include.value, "created_at": now()}
    # Written first, so an interrupted export can still be replaced with --overwrite.
    (out / MARKER).write_text(json.dumps({**marker, "complete": False}))
    rows = [_place(project, out, fmt, *entry, link) for entry in labelled]
    manifest = _WRITERS[fmt](out, rows)
    per_label = dict(sorted(Counter(row.label for row in rows).items()))
    if fmt is ExportFormat.IMAGEFOLDER and include is Include.SUGGESTED:
        # the layout cannot tell a suggestion from a confirmed label: the marker does, for import
        marker["suggested"] = {row.file: row.score for row in rows if row.status == "suggested"}
    (out / MARKER).write_text(json.dumps({**marker, "count": len(rows), "complete": True}))
    return ExportReport(str(out), fmt, len(rows), per_label, manifest)


def _refuse_missing_media(project: Project, items: list) -> None:
    """Before anything is written: every image to export must still be in the project's media folder."""
    missing = [item for item in items if not project.media.path(item.media_path).is_file()]
    if missing:
        listed = ", ".join(f"item {item.id} ({item.source})" for item in missing[:5])
        raise ExportError(
            f"{len(missing)} images to export are missing from {project.media.root}: {listed}"
            f"{', ...' if len(missing) > 5 else ''}. Nothing was exported. Add those files again "
            f"(labelchat add PATH: the same bytes find their item), then export."
        )


def _parse_format(fmt: ExportFormat | str) -> ExportFormat:
    try:
        return ExportFormat(fmt)
    except ValueError:
        choices = ", ".join(f.value for f in ExportFormat)
        raise ExportError(f"Unknown export format {fmt!r}; choose one of: {choices}.") from None


def _prepare_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; give a folder to export into.")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(
                f"{out} is not empty. Export into a new or empty folder, or pass --overwrite "
                f"to replace an earlier labelchat export there."
            )
        if not (out / MARKER).exists():
            raise ExportError(
                f"{out} is not empty and is not an earlier labelchat export, so --overwrite "
                f"will not delete it. Choose another folder."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _labelled_items(project: Project, include: Include):
    store = project.store
    top = store.top_suggestions() if include is Include.SUGGESTED else {}
    states = {s.item_id: s for s in store.states()}
    result = []
    for item in store.items():
        state = states[item.id]
        if state.status is Status.CONFIRMED:
            result.append((item, state.label, "confirmed", None))
        elif item.id in top and top[item.id].label not in state.rejected:
            result.append((item, top[item.id].label, "suggested", top[item.id].score))
    return result


def _file_name(item) -> str:
    """A readable, unique name: the original stem plus the start of the content hash."""
    stem = PurePosixPath(item.source.replace("\\", "/").split("!")[-1].split("?")[0]).stem
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._")[:60] or "image"  # letters of any script stay
    return f"{stem}-{item.sha256[:8]}.{item.media_path.rsplit('.', 1)[-1]}"


def _place(project, out: Path, fmt: ExportFormat, item, label, status, score, link) -> ExportRow:
    name = _file_name(item)
    folder = {
        ExportFormat.IMAGEFOLDER: label,
        ExportFormat.HF: "train",
    }.get(fmt, "images")
    relative = f"{folder}/{name}"
    target = out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    source = project.media.path(item.media_path)
    if link:
        try:
            os.link(source, target)
        except OSError:  # another file system, or links not allowed: copy instead
            shutil.copyfile(source, target)
    else:
        shutil.copyfile(source, target)
    return ExportRow(relative, label, status, score, item.sha256, item.source, item.width, item.height)


def _write_imagefolder(out: Path, rows: list[ExportRow]) -> None:
    return None


def _write_csv(out: Path, rows: list[ExportRow]) -> str:
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ExportRow.__dataclass_fields__))
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
    return "labels.csv"


def _write_jsonl(out: Path, rows: list[ExportRow]) -> str:
    with open(out / "labels.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
    return "labels.jsonl"


def _write_coco(out: Path, rows: list[ExportRow]) -> str:
    categories = sorted({row.label for row in rows})
    category_id = {name: i + 1 for i, name in enumerate(categories)}
    document = {
        "info": {"description": "labelchat export", "date_created": now()},
        "categories": [{"id": category_id[n], "name": n} for n in categories],
        "images": [
            {"id": i + 1, "file_name": r.file, "width": r.width, "height": r.height, "sha256": r.sha256}
            for i, r in enumerate(rows)
        ],
        "annotations": [
            {
                "id": i + 1,
                "image_id": i + 1,
                "category_id": category_id[r.label],
                "status": r.status,
                **({"score": r.score} if r.score is not None else {}),
            }
            for i, r in enumerate(rows)
        ],
    }
    (out / "annotations.json").write_text(json.dumps(document, ensure_ascii=False, indent=1))
    return "annotations.json"


def _write_hf(out: Path, rows: list[ExportRow]) -> str:
    with open(out / "train" / "metadata.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            record = {"file_name": row.file.split("/", 1)[1], "label": row.label, "status": row.status}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return "train/metadata.jsonl"


_WRITERS = {
    ExportFormat.IMAGEFOLDER: _write_imagefolder,
    ExportFormat.CSV: _write_csv,
    ExportFormat.JSONL: _write_jsonl,
    ExportFormat.COCO: _write_coco,
    ExportFormat.HF: _write_hf,
}
