"""Turning what a person points at (folders, files, zips, URL lists, URLs) into candidates.

Nothing is read here but directory listings, zip directories and URL list
files: each `Candidate` carries a `read()` that fetches its bytes later, in a
worker thread. Inputs that cannot become candidates come back as `Problem`
values, so one bad path never stops the rest.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from index.types import Origin

from .download import fetch, is_http_url
from .images import Reason

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
URL_LIST_EXTENSIONS = {".txt", ".csv", ".tsv", ".urls"}


@dataclass(frozen=True)
class Candidate:
    origin: Origin
    read: Callable[[], bytes]
    label: str | None = None  # a label that comes with the image (folder name, manifest)
    name: str = ""  # a short human name, e.g. the file name


@dataclass(frozen=True)
class Problem:
    source: str
    reason: Reason
    message: str


@dataclass
class Collected:
    candidates: list[Candidate]
    problems: list[Problem]
    ignored: int = 0  # files in folders/archives without an image extension
    unpacked: list[str] = field(default_factory=list)  # zips found inside added folders, read like added ones


@dataclass(frozen=True)
class FetchOptions:
    max_bytes: int
    allow_private: bool = False


def collect(
    sources: list[str],
    *,
    labels_from_folders: bool,
    fetch_options: FetchOptions,
    session_factory: Callable[[], object] | None = None,
) -> Collected:
    result = Collected([], [])
    session = None
    for source in sources:
        if is_http_url(source):
            session = session or _session(session_factory, fetch_options)
            result.candidates.append(_url_candidate(source, session, fetch_options, None))
            continue
        path = Path(source).expanduser()
        if not path.exists():
            kind = "broken symlink" if path.is_symlink() else "no such file or folder"
            result.problems.append(Problem(source, Reason.NOT_FOUND, f"{kind}: {source}"))
        elif path.is_dir():
            _walk_folder(path, labels_from_folders, fetch_options.max_bytes, result)
        elif zipfile.is_zipfile(path) or path.suffix.lower() == ".zip":  # a broken .zip is a bad archive
            _read_zip(path, labels_from_folders, fetch_options.max_bytes, result)
        elif path.suffix.lower() in URL_LIST_EXTENSIONS:
            session = session or _session(session_factory, fetch_options)
            _read_url_list(path, session, fetch_options, result)
        else:
            result.candidates.append(file_candidate(path, None, fetch_options.max_bytes))
    return result


def _session(factory: Callable[[], object] | None, options: FetchOptions):
    from .download import new_session

    return factory() if factory else new_session(options.allow_private)


# -- local files and folders ------------------------------------------------------


def _read_file(path: Path, max_bytes: int) -> bytes:
    from .images import ImageRejected

    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageRejected(
                Reason.TOO_LARGE, f"{size:,} bytes is over the limit of {max_bytes:,} (--max-bytes)"
            )
        return path.read_bytes()
    except OSError as exc:
        raise ImageRejected(Reason.UNREADABLE, f"cannot read the file: {exc.strerror or exc}") from exc


def file_candidate(path: Path, label: str | None, max_bytes: int) -> Candidate:
    return Candidate(
        origin=Origin(str(path)),
        read=lambda: _read_file(path, max_bytes),
        label=label,
        name=path.name,
    )


def _walk_folder(root: Path, labels_from_folders: bool, max_bytes: int, out: Collected) -> None:
    """Recursive walk that follows symlinks but never loops."""
    seen: set[tuple[int, int]] = set()

    def on_error(exc: OSError) -> None:
        out.problems.append(
            Problem(str(exc.filename), Reason.UNREADABLE, f"cannot list the folder: {exc.strerror}")
        )

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        stat = os.stat(dirpath)
        if (stat.st_dev, stat.st_ino) in seen:
            dirnames[:] = []
            out.problems.append(
                Problem(
                    dirpath,
                    Reason.SYMLINK_LOOP,
                    f"{dirpath} leads back to a folder already read (a symlink loop); skipped it",
                )
            )
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        relative = Path(dirpath).relative_to(root)
        label = relative.parts[0] if labels_from_folders and relative.parts else None
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            if not filename.startswith(".") and path.suffix.lower() == ".zip":
                # unpacked as if it were added by itself: same bounds, its own class folders
                out.unpacked.append(str(path))
                _read_zip(path, labels_from_folders, max_bytes, out)
                continue
            if filename.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                out.ignored += 1
                continue
            out.candidates.append(file_candidate(path, label, max_bytes))


# -- zip archives -------------------------------------------------------------------


def _read_zip(path: Path, labels_from_folders: bool, max_bytes: int, out: Collected) -> None:
    try:
        archive = zipfile.ZipFile(path)
        infos = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        out.problems.append(Problem(str(path), Reason.BAD_ARCHIVE, f"cannot open the zip: {exc}"))
        return
    safe = []
    for info in infos:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in info.filename:
            out.problems.append(
                Problem(
                    f"{path}!{info.filename}",
                    Reason.UNSAFE_PATH,
                    f"the archive entry {info.filename!r} points outside the archive; skipped it",
                )
            )
        elif parts[-1].startswith(".") or "__MACOSX" in parts:
            continue
        elif PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
            out.ignored += 1
        else:
            safe.append((info, parts))
    strip = _common_top_folder([parts for _, parts in safe])
    for info, parts in safe:
        folders = parts[strip:-1]
        label = folders[0] if labels_from_folders and folders else None
        out.candidates.append(
            Candidate(
                origin=Origin(f"{path}!{info.filename}"),
                read=_zip_reader(path, info, max_bytes),
                label=label,
                name=parts[-1],
            )
        )


def _common_top_folder(all_parts: list[tuple[str, ...]]) -> int:
    """1 if every entry sits in one top folder with class folders inside (dataset/cat/x.jpg)."""
    tops = {parts[0] for parts in all_parts if len(parts) > 1}
    deep = all(len(parts) >= 3 for parts in all_parts)
    return 1 if all_parts and len(tops) == 1 and deep else 0


def _zip_reader(path: Path, info: zipfile.ZipInfo, max_bytes: int) -> Callable[[], bytes]:
    def read() -> bytes:
        from .images import ImageRejected

        if info.file_size > max_bytes:
            raise ImageRejected(
                Reason.TOO_LARGE,
                f"unpacks to {info.file_size:,} bytes, over the limit of {max_bytes:,}",
            )
        try:
            with zipfile.ZipFile(path) as archive, archive.open(info) as member:
                data = member.read(max_bytes + 1)  # the declared size can lie (zip bombs)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
            raise ImageRejected(Reason.BAD_ARCHIVE, f"cannot unpack: {exc}") from exc
        if len(data) > max_bytes:
            raise ImageRejected(Reason.TOO_LARGE, f"unpacks to more than {max_bytes:,} bytes")
        return data

    return read


# -- URL lists ------------------------------------------------------------------------


def _url_candidate(url: str, session, options: FetchOptions, page: str | None) -> Candidate:
    return Candidate(
        origin=Origin(url, page_url=page),
        read=lambda: fetch(url, session, max_bytes=options.max_bytes),
        name=url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "image",
    )


def _read_url_list(path: Path, session, options: FetchOptions, out: Collected) -> None:
    """One URL a line (.txt), or a CSV/TSV with a `url` column (or URLs in the first column)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        out.problems.append(
            Problem(str(path), Reason.UNREADABLE, f"cannot read the URL list as UTF-8 text: {exc}")
        )
        return
    lines = _urls_in(text, path.suffix.lower())
    if lines and not any(is_http_url(url) for _, url in lines):  # a text file, not a list of URLs
        out.problems.append(Problem(str(path), Reason.NOT_A_URL, (
            f"has no http(s) URL in {len(lines)} lines: {path.suffix} files are read as URL lists "
            f"(one URL a line, or a CSV with a url column), and images are added from folders, zips or image files")))
        return
    for line_number, url in lines:
        if is_http_url(url):
            out.candidates.append(_url_candidate(url.strip(), session, options, None))
        else:
            out.problems.append(Problem(f"{path}:{line_number}", Reason.NOT_A_URL, f"{url!r} is not an http(s) URL"))


def _urls_in(text: str, suffix: str) -> list[tuple[int, str]]:
    if suffix not in (".csv", ".tsv"):
        return [
            (n, line.strip())
            for n, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    rows = list(csv.reader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ","))
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    for name in ("url", "image_url", "image", "src"):
        if name in header:
            column = header.index(name)
            return [(n, row[column]) for n, row in enumerate(rows[1:], start=2) if len(row) > column and row[column].strip()]
    return [(n, row[0]) for n, row in enumerate(rows, start=1) if row and row[0].strip()]
