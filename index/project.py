"""A labelling project: one folder holding the database, media, vectors and models.

    <project>/project.db   SQLite (WAL), the source of truth
    <project>/media/       image files named by sha256
    <project>/features/    feature vectors, float16, memory-mapped (a cache: index/features.py)
    <project>/vectors/     vector indexes (caches, rebuildable from the features)
    <project>/models/      fine-tuned model versions
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ProjectError
from .media import MediaStore
from .store import Store

PROJECT_ENV = "LABELCHAT_PROJECT"
DEFAULT_PROJECT = Path("labelchat-data") / "default"
DB_NAME = "project.db"


def default_project_dir() -> Path:
    """--project wins over $LABELCHAT_PROJECT, which wins over ./labelchat-data/default."""
    return Path(os.environ.get(PROJECT_ENV) or DEFAULT_PROJECT)


class Project:
    def __init__(self, folder: str | Path, *, create: bool = True):
        self.folder = Path(folder).expanduser()
        db_path = self.folder / DB_NAME
        if self.folder.exists() and not self.folder.is_dir():
            raise ProjectError(
                f"--project {self.folder} is a file, not a folder. Give a folder for the project."
            )
        if not db_path.exists():
            if not create:
                raise ProjectError(
                    f"No labelchat project at {self.folder}. Create one with "
                    f"'labelchat add IMAGES --project {self.folder}', or check the path."
                )
            if self.folder.exists() and any(self.folder.iterdir()):
                raise ProjectError(
                    f"{self.folder} is a folder with other files and no {DB_NAME}. "
                    f"Choose an empty or new folder for a project."
                )
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ProjectError(f"Cannot create the project folder {self.folder}: {exc}") from exc
        self.store = Store(db_path)
        self.media = MediaStore(self.folder)

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    @property
    def vectors_dir(self) -> Path:
        return self.folder / "vectors"

    @property
    def models_dir(self) -> Path:
        return self.folder / "models"

    def check(self) -> list[str]:
        """Problems found in the database and the media folder; empty when all is consistent."""
        missing = [item for item in self.store.items() if not self.media.path(item.media_path).is_file()]
        return self.store.check() + [
            f"item {item.id}: its image {item.media_path} is missing (it came from {item.source}; "
            f"adding that file again restores it)" for item in missing]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
