"""One-shot batch pre-labelling: images + labels in, one prediction per image file out.

No project is needed: a temporary one holds the images while they are
labelled, unless a project folder is given (then features stay cached there).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from index.project import Project
from index.types import Label

from .ingest import IngestOptions, IngestReport, ingest
from .models import parse_spec
from .ray_engine import LOCAL, Engine
from .zeroshot import DEFAULT_TEMPLATES, SuggestReport, check_label_set, suggest


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class Prediction:
    path: str
    sha256: str
    label: str
    score: float
    top: tuple[LabelScore, ...]
    model: str


@dataclass
class PrelabelReport:
    predictions: list[Prediction] = field(default_factory=list)
    ingest: IngestReport | None = None
    suggest: SuggestReport | None = None


def prelabel(
    images: Sequence[str],
    labels: Sequence[Label],
    *,
    model: str | None = None,
    device: str | None = None,
    template_set: str = DEFAULT_TEMPLATES,
    project_dir: str | Path | None = None,
    ingest_options: IngestOptions = IngestOptions(near_duplicate_distance=-1),
    on_progress: Callable[[int, int, str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    engine: Engine = LOCAL,
) -> PrelabelReport:
    check_label_set(labels)
    if model:
        parse_spec(model)  # a typo in --model should fail before any work is done
    with tempfile.TemporaryDirectory(prefix="labelchat-prelabel-") as scratch:
        folder = Path(project_dir) if project_dir else Path(scratch) / "project"
        with Project(folder) as project:
            project.store.set_labels(labels)
            report = PrelabelReport()
            report.ingest = ingest(project, list(images), ingest_options, on_progress=on_progress, should_stop=should_stop)
            if not project.store.item_count():
                return report
            report.suggest = suggest(
                project, model=model, device=device, template_set=template_set,
                on_progress=on_progress, on_notice=on_notice, should_stop=should_stop, engine=engine,
            )
            report.predictions = _predictions(project)
    return report


def _predictions(project: Project) -> list[Prediction]:
    store = project.store
    predictions = []
    for item in store.items():
        top = store.suggestions(item.id)
        if not top:
            continue  # could not be decoded at embedding time: counted in the report
        scores = tuple(LabelScore(s.label, round(s.score, 6)) for s in top)
        for origin in store.origins(item.id):  # one row per file, also for duplicates
            predictions.append(
                Prediction(origin.source, item.sha256, top[0].label, round(top[0].score, 6), scores, top[0].model)
            )
    return predictions


def format_predictions(predictions: Sequence[Prediction], fmt: str = "jsonl") -> str:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "sha256", "label", "score", "top", "model"])
        for p in predictions:
            top = ";".join(f"{s.label}:{s.score:.4f}" for s in p.top)
            writer.writerow([p.path, p.sha256, p.label, f"{p.score:.6f}", top, p.model])
        return buffer.getvalue()
    lines = []
    for p in predictions:
        record = {
            "path": p.path,
            "sha256": p.sha256,
            "label": p.label,
            "score": p.score,
            "top": [{"label": s.label, "score": s.score} for s in p.top],
            "model": p.model,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")
