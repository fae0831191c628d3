"""Reading a labelled dataset into a project: any labelchat export, or a plain ImageFolder.

Confirmed rows become confirmed decisions (actor "import"); rows that were
only suggestions come in as pending items with that label as a suggestion.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from index.errors import ImportFormatError
from index.project import Project
from index.errors import InvalidLabelError
from index.labels import spelled_otherwise, validate_label_name
from index.types import Label, Suggestion

from .export import MARKER, ExportFormat
from .ingest import IngestOptions, IngestReport, ProgressFn, ingest, ingest_candidates
from .sources import file_candidate


@dataclass(frozen=True)
class ManifestRow:
    path: Path
    label: str
    confirmed: bool
    score: float | None = None


def detect_format(path: Path) -> ExportFormat:
    if path.is_file():
        by_name = {
            ".csv": ExportFormat.CSV,
            ".jsonl": ExportFormat.JSONL,
            ".json": ExportFormat.COCO,
        }
        if path.name == "metadata.jsonl":
            return ExportFormat.HF
        if path.suffix.lower() in by_name:
            return by_name[path.suffix.lower()]
        raise ImportFormatError(
            f"Cannot tell the format of {path}: expected a .csv, .jsonl, .json (COCO) or "
            f"metadata.jsonl file, or a folder."
        )
    marker = path / MARKER
    if marker.exists():
        try:
            return ExportFormat(json.loads(marker.read_text())["format"])
        except (ValueError, KeyError, json.JSONDecodeError):
            pass
    for name, fmt in [
        ("labels.csv", ExportFormat.CSV),
        ("labels.jsonl", ExportFormat.JSONL),
        ("annotations.json", ExportFormat.COCO),
        ("train/metadata.jsonl", ExportFormat.HF),
        ("metadata.jsonl", ExportFormat.HF),
    ]:
        if (path / name).exists():
            return fmt
    return ExportFormat.IMAGEFOLDER


def import_dataset(
    project: Project,
    path: str | Path,
    options: IngestOptions = IngestOptions(),
    *,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> IngestReport:
    path = Path(path).expanduser()
    if not path.exists():
        raise ImportFormatError(f"{path} does not exist. Give an export folder or manifest file.")
    fmt = detect_format(path)
    suggested = _suggested_files(path) if fmt is ExportFormat.IMAGEFOLDER else None
    if fmt is ExportFormat.IMAGEFOLDER and suggested is None:
        folder_options = IngestOptions(**{**options.__dict__, "labels_from_folders": True})
        return ingest(project, [str(path)], folder_options, on_progress=on_progress, should_stop=should_stop)
    rows = _imagefolder_rows(path, suggested) if suggested is not None else _READERS[fmt](_manifest_path(path, fmt))
    candidates = [
        file_candidate(row.path, row.label if row.confirmed else None, options.max_bytes)
        for row in rows
    ]
    report = ingest_candidates(
        project,
        candidates,
        options,
        params={"import": str(path), "format": fmt.value},
        on_progress=on_progress,
        should_stop=should_stop,
    )
    _record_imported_suggestions(project, [r for r in rows if not r.confirmed])
    return report


def _suggested_files(folder: Path) -> dict[str, float | None] | None:
    """For a labelchat ImageFolder export that includes suggestions: file -> score of those that
    were only suggested (the layout alone cannot tell them apart). None for any other folder."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    suggested = marker.get("suggested") if isinstance(marker, dict) else None
    return suggested if isinstance(suggested, dict) else None


def _imagefolder_rows(folder: Path, suggested: dict[str, float | None]) -> list[ManifestRow]:
    return [
        ManifestRow(path, path.parent.name, f"{path.parent.name}/{path.name}" not in suggested,
                    suggested.get(f"{path.parent.name}/{path.name}"))
        for path in sorted(folder.glob("*/*"))
        if path.is_file() and not path.name.startswith(".")
    ]


def _manifest_path(path: Path, fmt: ExportFormat) -> Path:
    if path.is_file():
        return path
    name = {
        ExportFormat.CSV: "labels.csv",
        ExportFormat.JSONL: "labels.jsonl",
        ExportFormat.COCO: "annotations.json",
        ExportFormat.HF: "train/metadata.jsonl",
    }[fmt]
    if fmt is ExportFormat.HF and not (path / name).exists():
        name = "metadata.jsonl"
    return path / name


def _row(base: Path, record: dict, where: str, file_key: str = "file") -> ManifestRow:
    try:
        file, label = record[file_key], record["label"]
    except KeyError as exc:
        raise ImportFormatError(f"{where}: missing the field {exc.args[0]!r}.") from None
    score = record.get("score")
    return ManifestRow(
        base / file,
        str(label),
        record.get("status", "confirmed") == "confirmed",
        float(score) if score not in (None, "") else None,
    )


def _read_csv(manifest: Path) -> list[ManifestRow]:
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        return [
            _row(manifest.parent, record, f"{manifest}:{n}", "file" if "file" in record else "path")
            for n, record in enumerate(csv.DictReader(handle), start=2)
        ]


def _read_jsonl(manifest: Path, file_key: str = "file") -> list[ManifestRow]:
    rows = []
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(f"{manifest}:{n} is not valid JSON: {exc}") from None
        rows.append(_row(manifest.parent, record, f"{manifest}:{n}", file_key))
    return rows


def _read_hf(manifest: Path) -> list[ManifestRow]:
    return _read_jsonl(manifest, "file_name")


def _read_coco(manifest: Path) -> list[ManifestRow]:
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
        names = {c["id"]: c["name"] for c in document["categories"]}
        files = {i["id"]: i["file_name"] for i in document["images"]}
        annotations = document["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ImportFormatError(f"{manifest} is not a COCO classification file: {exc}") from None
    return [
        ManifestRow(
            manifest.parent / files[a["image_id"]],
            names[a["category_id"]],
            a.get("status", "confirmed") == "confirmed",
            a.get("score"),
        )
        for a in annotations
    ]


_READERS = {
    ExportFormat.CSV: _read_csv,
    ExportFormat.JSONL: _read_jsonl,
    ExportFormat.COCO: _read_coco,
    ExportFormat.HF: _read_hf,
}


def _record_imported_suggestions(project: Project, rows: list[ManifestRow]) -> None:
    import hashlib

    wanted, known = [], project.store.label_set().names
    for name in sorted({row.label for row in rows}):
        try:
            validate_label_name(name)
        except InvalidLabelError:
            continue
        if spelled_otherwise(name, known + [label.name for label in wanted]) is None:
            wanted.append(Label(name))
    labels = set(project.store.add_labels(wanted).names) if wanted else set()
    for row in rows:
        if row.label not in labels or not row.path.exists():
            continue
        item = project.store.item_by_sha256(hashlib.sha256(row.path.read_bytes()).hexdigest())
        if item is not None:
            suggestion = Suggestion(item.id, row.label, row.score or 0.0, 0, "import", "imported")
            project.store.put_suggestions(item.id, [suggestion])

