"""Export in every format, and import of each export back into a new project (round trip)."""

from __future__ import annotations

import json

import pytest

from index.errors import ExportError, ImportFormatError
from index.project import Project
from index.types import Action, Status, Suggestion
from tools.export import ExportFormat, export_dataset
from tools.importing import detect_format, import_dataset
from tools.ingest import IngestOptions, ingest


@pytest.fixture
def labelled(project, photos_dir):
    """The demo photos with folder labels, then a few human decisions on top."""
    ingest(project, [str(photos_dir)], IngestOptions(labels_from_folders=True))
    store = project.store
    items = store.items()
    store.decide(items[0].id, Action.CORRECT, "mammal")  # a fish the person relabelled
    store.decide(items[1].id, Action.REJECT, "fish")  # no longer confirmed
    store.decide(items[2].id, Action.CORRECT, "tool")
    store.undo(items[2].id)  # back to its folder label
    return project


def _labels_by_hash(project) -> dict[str, str]:
    states = {s.item_id: s for s in project.store.states(Status.CONFIRMED)}
    return {item.sha256: states[item.id].label for item in project.store.items() if item.id in states}


def test_labels_that_come_with_images_never_overwrite_what_a_person_decided(labelled, photos_dir, tmp_path):
    from tools.images import Reason

    store = labelled.store
    corrected, rejected = store.items()[0].id, store.items()[1].id
    again = ingest(labelled, [str(photos_dir)], IngestOptions(labels_from_folders=True))  # the folders once more
    assert (store.state(corrected).label, store.state(rejected).status) == ("mammal", Status.REJECTED)
    conflicts = {p.message.split()[1]: p for p in again.problems if p.reason is Reason.LABEL_CONFLICT}
    assert set(conflicts) == {str(corrected), str(rejected)} and again.labelled == 92
    assert "confirmed as 'mammal' by a person, which it keeps; this source says 'fish'" in conflicts[str(corrected)].message
    out = tmp_path / "other"
    with Project(tmp_path / "other-project") as other:  # an export that labels that photo otherwise
        ingest(other, [str(photos_dir)], IngestOptions(labels_from_folders=True))
        export_dataset(other, out, ExportFormat.CSV)
    report = import_dataset(labelled, out)
    assert store.state(corrected).label == "mammal"
    assert [p.reason for p in report.problems] == [Reason.LABEL_CONFLICT, Reason.LABEL_CONFLICT]


def test_a_corrected_import_replaces_an_earlier_imports_label_and_one_run_gives_an_image_one_label(
        project, tmp_path):
    import imagefiles
    from tools.images import Reason

    first = tmp_path / "first"
    for folder, seed in (("cat", 1), ("dog", 2)):
        (first / folder).mkdir(parents=True)
        (first / folder / f"{seed}.jpg").write_bytes(imagefiles.jpeg(seed))
    ingest(project, [str(first)], IngestOptions(labels_from_folders=True))
    fixed = tmp_path / "fixed"  # the same images, the first one now filed under dog
    (fixed / "dog").mkdir(parents=True)
    for seed in (1, 2):
        (fixed / "dog" / f"{seed}.jpg").write_bytes(imagefiles.jpeg(seed))
    report = ingest(project, [str(fixed)], IngestOptions(labels_from_folders=True))
    assert not report.problems and [s.label for s in project.store.states()] == ["dog", "dog"]
    twice = tmp_path / "twice"  # one image in two folders of one dataset: the first stays, the second is named
    for folder in ("bird", "fish"):
        (twice / folder).mkdir(parents=True)
        (twice / folder / "3.jpg").write_bytes(imagefiles.jpeg(3))
    (problem,) = ingest(project, [str(twice)], IngestOptions(labels_from_folders=True)).problems
    assert problem.reason is Reason.LABEL_CONFLICT and "given 'bird' earlier in this run" in problem.message
    assert project.store.states()[-1].label == "bird"


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_every_format_round_trips_to_the_same_labels(labelled, tmp_path, fmt):
    out = tmp_path / f"export-{fmt.value}"
    report = export_dataset(labelled, out, fmt)
    assert report.count == 93  # 94 photos, one rejected
    assert report.per_label["mammal"] == 21 and report.per_label["fish"] == 18
    assert detect_format(out) is fmt
    with Project(tmp_path / "again") as again:
        imported = import_dataset(again, out)
        assert imported.added == 93 and imported.skipped == 0
        assert _labels_by_hash(again) == _labels_by_hash(labelled)
        assert again.store.check() == []


def test_imagefolder_layout_and_hard_links(labelled, tmp_path):
    out = tmp_path / "out"
    export_dataset(labelled, out, "imagefolder", link=True)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["fish", "mammal", "monument", "tool", "windmill"]
    exported = next((out / "windmill").iterdir())
    assert exported.stat().st_nlink == 2  # linked to the media store, not copied
    sha = exported.stem.rsplit("-", 1)[-1]
    assert any(i.sha256.startswith(sha) for i in labelled.store.items())


def test_manifests_carry_what_other_tools_expect(labelled, tmp_path):
    export_dataset(labelled, tmp_path / "coco", "coco")
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert {c["name"] for c in coco["categories"]} == {"fish", "mammal", "monument", "tool", "windmill"}
    assert len(coco["images"]) == len(coco["annotations"]) == 93
    assert (tmp_path / "coco" / coco["images"][0]["file_name"]).is_file()
    export_dataset(labelled, tmp_path / "hf", "hf")
    first = json.loads((tmp_path / "hf" / "train" / "metadata.jsonl").read_text().splitlines()[0])
    assert (tmp_path / "hf" / "train" / first["file_name"]).is_file() and first["label"]
    export_dataset(labelled, tmp_path / "csv", "csv")
    header = (tmp_path / "csv" / "labels.csv").read_text().splitlines()[0]
    assert header.startswith("file,label,status,score,sha256")


def test_export_refuses_a_non_empty_folder_and_overwrites_only_its_own(labelled, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("precious")
    with pytest.raises(ExportError, match="not empty"):
        export_dataset(labelled, mine, "csv")
    with pytest.raises(ExportError, match="will not delete it"):
        export_dataset(labelled, mine, "csv", overwrite=True)
    assert (mine / "thesis.docx").read_text() == "precious"
    out = tmp_path / "out"
    export_dataset(labelled, out, "csv")
    labelled.store.decide(labelled.store.items()[5].id, Action.REJECT, "fish")
    report = export_dataset(labelled, out, "jsonl", overwrite=True)
    assert report.count == 92 and not (out / "labels.csv").exists()


def test_export_with_nothing_confirmed_says_what_to_do(project, photos_dir, tmp_path):
    ingest(project, [str(photos_dir)])
    with pytest.raises(ExportError, match="--include suggested"):
        export_dataset(project, tmp_path / "out", "csv")
    with pytest.raises(ExportError, match="Unknown export format 'parquet'"):
        export_dataset(project, tmp_path / "out2", "parquet")


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_suggested_labels_export_and_come_back_as_suggestions(project, photos_dir, tmp_path, fmt):
    ingest(project, [str(photos_dir)], IngestOptions(labels_from_folders=True))
    store = project.store
    a, b = store.items()[:2]
    store.undo(a.id)
    store.undo(b.id)
    store.put_suggestions(a.id, [Suggestion(a.id, "tool", 0.8, 0, "m", "zero-shot")])
    store.put_suggestions(b.id, [Suggestion(b.id, "fish", 0.7, 0, "m", "zero-shot")])
    store.decide(b.id, Action.REJECT, "fish")  # a rejected suggestion is not exported
    report = export_dataset(project, tmp_path / "out", fmt, include="suggested")
    assert report.count == 93
    if fmt is ExportFormat.JSONL:
        rows = [json.loads(line) for line in (tmp_path / "out" / "labels.jsonl").read_text().splitlines()]
        suggested = [r for r in rows if r["status"] == "suggested"]
        assert [(r["label"], r["score"]) for r in suggested] == [("tool", 0.8)]
    with Project(tmp_path / "again") as again:
        import_dataset(again, tmp_path / "out")
        item = again.store.item_by_sha256(a.sha256)
        assert again.store.state(item.id).status is Status.PENDING  # a suggestion, never a confirmed label
        assert again.store.status().by_status["confirmed"] == 92
        assert [s.label for s in again.store.suggestions(item.id)] == ["tool"]
        if fmt is not ExportFormat.HF:  # metadata.jsonl carries no score
            assert [s.score for s in again.store.suggestions(item.id)] == [0.8]


def test_an_export_with_an_image_missing_from_the_project_writes_nothing(labelled, tmp_path):
    gone = labelled.store.items()[7]
    labelled.media.path(gone.media_path).unlink()
    with pytest.raises(ExportError, match=f"1 images to export are missing.*item {gone.id}.*Nothing was exported"):
        export_dataset(labelled, tmp_path / "out", "csv")
    assert not (tmp_path / "out").exists()


def test_import_names_a_broken_manifest_line(project, tmp_path):
    (tmp_path / "labels.jsonl").write_text('{"file": "a.jpg", "label": "cat"}\n{oops\n')
    with pytest.raises(ImportFormatError, match=r"labels.jsonl:2 is not valid JSON"):
        import_dataset(project, tmp_path)
    with pytest.raises(ImportFormatError, match="does not exist"):
        import_dataset(project, tmp_path / "nope")
    assert project.store.item_count() == 0


def test_fashion_dev_round_trip_through_imagefolder(project, fashion_dir, tmp_path):
    ingest(project, [str(fashion_dir)], IngestOptions(labels_from_folders=True))
    export_dataset(project, tmp_path / "out", "imagefolder", link=True)
    with Project(tmp_path / "again") as again:
        import_dataset(again, tmp_path / "out")
        assert _labels_by_hash(again) == _labels_by_hash(project)
        assert len(_labels_by_hash(again)) == project.store.item_count()
