"""Adding images: folders, files, zips, URL lists; and every kind of bad input."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections import Counter

import imagefiles
import numpy as np
import pytest
from PIL import Image

from index.types import Status
from tools.images import Reason, inspect_image, ImageRejected
from tools.ingest import IngestOptions, ingest


def test_photos_folder_with_labels_from_folders(project, photos_dir):
    report = ingest(project, [str(photos_dir)], IngestOptions(labels_from_folders=True))
    assert (report.added, report.labelled, report.skipped) == (94, 94, 0)
    assert report.ignored == 1  # manifest.csv
    assert report.labels_added == ["fish", "mammal", "monument", "tool", "windmill"]
    confirmed = {c.label: c.confirmed for c in project.store.status().by_label}
    expected = Counter(p.parent.name for p in photos_dir.rglob("*.jpg"))
    assert confirmed == dict(expected)
    item = project.store.items()[0]
    stored = project.media.path(item.media_path).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == item.sha256
    assert item.source.startswith(str(photos_dir)) and item.width > 0 and item.format == "JPEG"


def test_fashion_dev_folder_keeps_every_class(project, fashion_dir):
    report = ingest(project, [str(fashion_dir)], IngestOptions(labels_from_folders=True))
    assert report.added + report.duplicates == 1000 and report.skipped == 0
    counts = {c.label: c.confirmed for c in project.store.status().by_label}
    assert counts == {d.name: len(list(d.iterdir())) for d in fashion_dir.iterdir() if d.is_dir()} or (
        report.duplicates and sum(counts.values()) == 1000 - report.duplicates
    )
    assert project.store.check() == []


def test_adding_the_same_folder_twice_adds_nothing_new(project, photos_dir):
    ingest(project, [str(photos_dir)])
    again = ingest(project, [str(photos_dir)])
    assert (again.added, again.duplicates) == (0, 94)
    assert project.store.item_count() == 94


def _bad_folder(root, photos_dir):
    """A folder with one good image of each kind and one of every kind of bad input."""
    good = root / "good"
    good.mkdir(parents=True)
    (good / "a.jpg").write_bytes(imagefiles.jpeg(1))
    (good / "b.png").write_bytes(imagefiles.png(2))
    (good / "copy-of-a.jpg").write_bytes(imagefiles.jpeg(1))  # exact duplicate
    original = next(photos_dir.glob("windmill/*.jpg"))
    shutil.copy(original, good / "windmill.jpg")
    with Image.open(original) as image:  # the same photo, smaller: a near-duplicate
        image.resize((image.width // 2, image.height // 2)).save(good / "windmill-small.jpg", quality=80)
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_bytes(b"these are my notes, not a picture")
    (bad / "truncated.jpg").write_bytes(imagefiles.truncated_jpeg(3))
    (bad / "scan.tif").write_bytes(b"II*\x00" + b"x" * 40)  # a TIFF header, nothing behind it
    (bad / "bomb.png").write_bytes(imagefiles.bomb_png())
    (bad / "dangling.jpg").symlink_to(root / "does-not-exist.jpg")
    (bad / "loop").symlink_to(root, target_is_directory=True)
    (bad / "readme.txt").write_text("ignored: not an image extension")
    (bad / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: ignored and counted too
    return root


def test_bad_inputs_are_skipped_counted_and_named_while_the_rest_goes_on(project, tmp_path, photos_dir):
    folder = _bad_folder(tmp_path / "mixed", photos_dir)
    report = ingest(project, [str(folder)])
    assert report.added == 4  # a, b, windmill, windmill-small
    assert report.duplicates == 1
    assert len(report.near_duplicates) == 1
    assert report.ignored == 2
    assert report.skipped_by_reason() == {
        Reason.EMPTY.value: 1,
        Reason.NOT_AN_IMAGE.value: 1,
        Reason.CORRUPT.value: 2,
        Reason.TOO_MANY_PIXELS.value: 1,
        Reason.UNREADABLE.value: 1,
        Reason.SYMLINK_LOOP.value: 1,
    }
    messages = {p.reason: (p.source, p.message) for p in report.problems}
    assert not [p for p in report.problems if "BytesIO" in p.message]  # Pillow's words about our buffer
    assert messages[Reason.EMPTY][0].endswith("empty.jpg") and "0 bytes" in messages[Reason.EMPTY][1]
    assert "100000000 pixels" in messages[Reason.TOO_MANY_PIXELS][1]
    assert "--max-pixels" in messages[Reason.TOO_MANY_PIXELS][1]
    assert "symlink loop" in messages[Reason.SYMLINK_LOOP][1]
    near = report.near_duplicates[0]
    assert {project.store.get_item(near.item_id).source.rsplit("/", 1)[-1],
            project.store.get_item(near.resembles).source.rsplit("/", 1)[-1]} == {"windmill.jpg", "windmill-small.jpg"}
    assert project.store.near_duplicates(near.item_id)
    assert project.store.check() == []


def test_a_folder_label_spelled_otherwise_only_in_case_is_refused_and_the_rest_goes_on(project, tmp_path):
    from index.types import Label

    project.store.set_labels([Label("cat")])
    for folder, seed in (("Cat", 1), ("dog", 2)):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / f"{seed}.jpg").write_bytes(imagefiles.jpeg(seed))
    report = ingest(project, [str(tmp_path / "in")], IngestOptions(labels_from_folders=True))
    assert report.added == 1 and project.store.label_set().names == ["cat", "dog"]
    (problem,) = report.problems
    assert problem.reason is Reason.INVALID_LABEL and "'Cat' differs from the label 'cat' only in case" in problem.message


def test_adding_an_image_again_restores_its_file_gone_from_the_project(project, tmp_path):
    (tmp_path / "a.jpg").write_bytes(imagefiles.jpeg(1))
    ingest(project, [str(tmp_path / "a.jpg")])
    item = project.store.items()[0]
    project.media.path(item.media_path).unlink()
    assert project.check()
    assert ingest(project, [str(tmp_path / "a.jpg")]).duplicates == 1
    assert project.check() == [] and project.media.path(item.media_path).read_bytes() == imagefiles.jpeg(1)


def test_a_missing_path_is_a_problem_not_a_crash(project, tmp_path):
    (tmp_path / "ok.jpg").write_bytes(imagefiles.jpeg(5))
    report = ingest(project, [str(tmp_path / "nope"), str(tmp_path / "ok.jpg")])
    assert report.added == 1
    assert [p.reason for p in report.problems] == [Reason.NOT_FOUND]


def test_a_file_whose_extension_lies_is_sniffed_by_content(project, tmp_path):
    (tmp_path / "really-a-png.jpg").write_bytes(imagefiles.png(7))
    report = ingest(project, [str(tmp_path)])
    assert report.added == 1
    item = project.store.items()[0]
    assert item.format == "PNG" and item.media_path.endswith(".png")


def test_labels_from_folders_skips_folders_that_are_not_valid_labels(project, tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "1.jpg").write_bytes(imagefiles.jpeg(1))
    (tmp_path / "bad label.").mkdir()
    (tmp_path / "bad label." / "2.jpg").write_bytes(imagefiles.jpeg(2))
    (tmp_path / "loose.jpg").write_bytes(imagefiles.jpeg(3))
    report = ingest(project, [str(tmp_path)], IngestOptions(labels_from_folders=True))
    assert report.added == 2 and report.labelled == 1
    (problem,) = report.problems
    assert problem.reason is Reason.INVALID_LABEL and "'bad label.'" in problem.message
    assert project.store.label_set().names == ["cat"]
    loose = [i for i in project.store.items() if i.source.endswith("loose.jpg")][0]
    assert project.store.state(loose.id).status is Status.PENDING


def test_zip_archives_with_labels_unsafe_entries_and_a_bomb(project, tmp_path):
    archive = tmp_path / "dataset.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("dataset/cat/1.jpg", imagefiles.jpeg(1))
        z.writestr("dataset/dog/2.jpg", imagefiles.jpeg(2))
        z.writestr("dataset/dog/3.png", imagefiles.png(3))
        z.writestr("dataset/../../evil.jpg", imagefiles.jpeg(4))
        z.writestr("dataset/cat/zeros.jpg", b"\xff\xd8\xff" + bytes(60 * 1024 * 1024))  # 60 MB of zeros
        z.writestr("dataset/README.md", "ignored")
    report = ingest(project, [str(archive)], IngestOptions(labels_from_folders=True))
    assert (report.added, report.labelled) == (3, 3)
    assert report.skipped_by_reason() == {Reason.UNSAFE_PATH.value: 1, Reason.TOO_LARGE.value: 1}
    assert {c.label: c.confirmed for c in project.store.status().by_label} == {"cat": 1, "dog": 2}
    assert not (tmp_path / "evil.jpg").exists()
    assert project.store.items()[0].source == f"{archive}!dataset/cat/1.jpg"


def test_a_zip_inside_an_added_folder_is_unpacked_with_the_same_bounds_and_said(project, tmp_path):
    from ui.format import format_ingest

    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    (folder / "loose.jpg").write_bytes(imagefiles.jpeg(1))
    with zipfile.ZipFile(folder / "more" / "batch.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("cat/2.jpg", imagefiles.jpeg(2))
        z.writestr("dog/3.png", imagefiles.png(3))
        z.writestr("../evil.jpg", imagefiles.jpeg(4))
        z.writestr("cat/zeros.jpg", b"\xff\xd8\xff" + bytes(60 * 1024 * 1024))  # a bomb, as in a top-level zip
    report = ingest(project, [str(folder)], IngestOptions(labels_from_folders=True))
    assert (report.added, report.ignored) == (3, 0)  # not counted as one ignored file
    assert report.skipped_by_reason() == {Reason.UNSAFE_PATH.value: 1, Reason.TOO_LARGE.value: 1}
    assert {c.label: c.confirmed for c in project.store.status().by_label} == {"cat": 1, "dog": 1}
    assert report.unpacked == [str(folder / "more" / "batch.zip")]
    assert "Unpacked 1 zip found inside the folders (batch.zip)." in format_ingest(report)
    assert not (tmp_path / "evil.jpg").exists()


def test_a_corrupt_zip_is_reported(project, tmp_path):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    report = ingest(project, [str(tmp_path / "broken.zip")])
    assert report.added == 0
    assert report.problems[0].reason is Reason.BAD_ARCHIVE
    (tmp_path / "notazip.zip").write_bytes(b"hello, not a zip at all")
    (problem,) = ingest(project, [str(tmp_path / "notazip.zip")]).problems
    assert problem.reason is Reason.BAD_ARCHIVE and "cannot open the zip" in problem.message


def test_a_text_file_without_urls_is_named_as_such_not_as_a_failed_download(project, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping: milk, eggs\ncall Ana\n")
    report = ingest(project, [str(notes)])
    (problem,) = report.problems
    assert (problem.source, problem.reason) == (str(notes), Reason.NOT_A_URL)
    assert "has no http(s) URL in 2 lines" in problem.message and "read as URL lists" in problem.message


def test_url_list_from_a_real_local_server(project, tmp_path, http_server):
    good = [http_server.add(f"{i}.jpg", imagefiles.jpeg(i)) for i in range(3)]
    http_server.add("flaky.jpg", imagefiles.jpeg(10))
    urls = good + [
        http_server.url("/flaky/flaky.jpg"),  # 503 once, then fine: retried
        http_server.url("/status/404"),
        http_server.add("page.jpg", b"<html>not an image</html>"),
        http_server.url("/liar/999999999"),  # declares 1 GB
        http_server.url("/stream/3000000"),  # 3 MB with no Content-Length
        http_server.url("/redirect?to=" + good[0]),  # same bytes as the first: a duplicate
        http_server.url("/redirect?to=ftp://example.invalid/x.jpg"),
        "not a url at all",
    ]
    url_list = tmp_path / "urls.txt"
    url_list.write_text("# my images\n" + "\n".join(urls) + "\n\n")
    options = IngestOptions(allow_private=True, max_bytes=2_000_000)
    report = ingest(project, [str(url_list)], options)
    assert report.added == 4 and report.duplicates == 1
    reasons = Counter(p.reason for p in report.problems)
    assert reasons == {
        Reason.DOWNLOAD_FAILED: 2,  # 404, ftp redirect
        Reason.NOT_A_URL: 1,  # "not a url at all"
        Reason.NOT_AN_IMAGE: 1,
        Reason.TOO_LARGE: 2,
    }
    assert http_server.hits["/flaky/flaky.jpg"] == 2
    by_source = {p.source: p.message for p in report.problems}
    assert "HTTP 404" in by_source[http_server.url("/status/404")]
    assert any(source.endswith("urls.txt:12") for source in by_source)  # the line is named
    assert project.store.origins(project.store.items()[0].id)[-1].source == urls[-3]


def test_urls_to_private_addresses_are_refused_unless_allowed(project, tmp_path, http_server):
    url = http_server.add("x.jpg", imagefiles.jpeg(1))
    report = ingest(project, [url])
    assert report.added == 0
    assert report.problems[0].reason is Reason.REFUSED_ADDRESS
    assert "--allow-private" in report.problems[0].message
    assert http_server.hits == {}  # refused before any request was sent


def test_csv_url_list_uses_the_url_column(project, tmp_path, http_server):
    urls = [http_server.add(f"{i}.png", imagefiles.png(i)) for i in range(2)]
    (tmp_path / "list.csv").write_text("name,url\n" + "\n".join(f"n{i},{u}" for i, u in enumerate(urls)))
    report = ingest(project, [str(tmp_path / "list.csv")], IngestOptions(allow_private=True))
    assert report.added == 2 and report.skipped == 0


def test_a_url_list_that_is_not_utf8_is_reported(project, tmp_path):
    (tmp_path / "urls.txt").write_bytes(b"\xff\xfe\x00bad")
    report = ingest(project, [str(tmp_path / "urls.txt")])
    assert report.problems[0].reason is Reason.UNREADABLE and "UTF-8" in report.problems[0].message


def test_stopping_early_keeps_what_was_added(project, fashion_dir):
    seen = []
    report = ingest(
        project, [str(fashion_dir)], IngestOptions(workers=2),
        on_progress=lambda done, total, name: seen.append(done),
        should_stop=lambda: len(seen) >= 25,
    )
    assert report.cancelled and report.added + report.duplicates == 25
    assert project.store.item_count() == report.added
    assert project.store.jobs()[0].status.value == "cancelled"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", Reason.EMPTY),
        (b"%PDF-1.4 not an image", Reason.NOT_AN_IMAGE),
        (imagefiles.truncated_jpeg(1), Reason.CORRUPT),
        (imagefiles.truncated_jpeg(2, side=2048), Reason.CORRUPT),  # decoded at 1/8 scale, still checked
        (imagefiles.bomb_png(), Reason.TOO_MANY_PIXELS),
    ],
)
def test_inspect_image_rejects_with_a_reason(data, reason):
    with pytest.raises(ImageRejected) as rejected:
        inspect_image(data)
    assert rejected.value.reason is reason


def test_animated_gif_is_accepted(tmp_path):
    frames = [imagefiles.noise_image(i) for i in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    info = inspect_image(path.read_bytes())
    assert (info.format, info.width, info.height) == ("GIF", 64, 48)


def test_a_sideways_camera_jpeg_is_the_same_picture_as_its_upright_png():
    upright = imagefiles.noise_image(3, (480, 640))
    camera = inspect_image(imagefiles.sideways_jpeg(upright))
    png = inspect_image(imagefiles.encode(upright, "PNG"))
    assert (camera.width, camera.height) == (png.width, png.height) == (480, 640)
    distance = bin(int(camera.phash, 16) ^ int(png.phash, 16)).count("1")
    assert distance <= 4  # near duplicates: found as the same picture across formats
    other = inspect_image(imagefiles.jpeg(4, (480, 640)))
    assert bin(int(other.phash, 16) ^ int(png.phash, 16)).count("1") > 10


def test_perceptual_hash_is_stable_under_resizing_and_differs_between_pictures():
    from tools.images import perceptual_hash

    a = imagefiles.noise_image(1, (256, 192))
    distance = lambda x, y: bin(int(x, 16) ^ int(y, 16)).count("1")
    assert distance(perceptual_hash(a), perceptual_hash(a.resize((64, 48)))) <= 4
    assert distance(perceptual_hash(a), perceptual_hash(imagefiles.noise_image(2, (256, 192)))) > 10


@pytest.mark.parametrize("max_distance", [0, 4, 9, 20])
def test_the_near_duplicate_index_finds_exactly_what_a_full_scan_finds(monkeypatch, max_distance):
    """Multi-index lookup (tools/near_duplicates.py) against comparing with every hash, with
    planted copies 0-12 bits away, hashes added after the tables were sorted (the tail) and
    enough adds to re-sort them; same items, same distances, same order."""
    import tools.near_duplicates as near_duplicates

    monkeypatch.setattr(near_duplicates, "TAIL", 50)
    rng = np.random.default_rng(max_distance)
    hashes = [int(h) for h in rng.integers(0, 2**63, 3000, dtype=np.int64)]
    for i in range(0, 600, 3):  # near copies of earlier hashes
        flips = rng.choice(64, int(rng.integers(0, 13)), replace=False)
        hashes.append(hashes[i] ^ int(sum(1 << int(b) for b in flips)))
    hashes += hashes[:20]  # exact copies
    as_hex = [f"{h:016x}" for h in hashes]
    index = near_duplicates.NearDuplicateIndex(list(enumerate(as_hex[:2000])), max_distance)
    for item_id in range(2000, len(as_hex)):
        index.add(item_id, as_hex[item_id])
    every = np.array(hashes, dtype=np.uint64)
    for query in rng.choice(len(hashes), 300, replace=False):
        distances = np.bitwise_count(every ^ np.uint64(hashes[query]))
        close = np.flatnonzero(distances <= max_distance)
        expected = [(int(i), int(distances[i])) for i in close[np.argsort(distances[close], kind="stable")]]
        assert index.matches(as_hex[query]) == expected


def test_a_near_duplicate_index_that_is_off_or_empty_finds_nothing():
    from tools.near_duplicates import NearDuplicateIndex

    assert NearDuplicateIndex([(1, "ffffffffffffffff")], -1).matches("ffffffffffffffff") == []
    empty = NearDuplicateIndex([], 4)
    assert empty.matches("0000000000000000") == []
    empty.add(7, "0000000000000001")
    assert empty.matches("0000000000000000") == [(7, 1)]
