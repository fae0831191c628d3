"""Content-addressed media store: each image's bytes under media/ab/<sha256>.<ext>.

Files are written to a temporary name and renamed into place, so a file at
its final name is always complete. A file written by a process that was
killed before its database row committed is an orphan, harmless, and reused
when the same image is added again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class MediaStore:
    def __init__(self, project_dir: Path):
        self.project_dir = Path(project_dir)
        self.root = self.project_dir / "media"

    def relpath(self, sha256: str, ext: str) -> str:
        return f"media/{sha256[:2]}/{sha256}.{ext.lower().lstrip('.')}"

    def put(self, data: bytes, sha256: str, ext: str) -> str:
        """Store `data` (whose hash is `sha256`); returns its path relative to the project."""
        rel = self.relpath(sha256, ext)
        self.restore(rel, data)
        return rel

    def restore(self, rel: str, data: bytes) -> None:
        """Write `data` at `rel` (atomically) unless a file of its size is there already."""
        final = self.project_dir / rel
        if final.exists() and final.stat().st_size == len(data):
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def path(self, rel: str) -> Path:
        return self.project_dir / rel
