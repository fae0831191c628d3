"""Jobs run in order on a thread of their own, a bounded distance behind the caller.

The embedding loop hands each batch's writes (features, then suggestions) to
an `OrderedWriter` and goes on to the next batch: on a GPU the model then
encodes while SQLite writes, instead of one waiting for the other. The
caller blocks once `depth` jobs are waiting, so memory stays bounded; the
first job that fails stops the rest, and its error is raised in the caller,
at its next `submit` or at `close`.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

_DONE = object()


class OrderedWriter:
    def __init__(self, depth: int = 2, name: str = "labelchat-writer"):
        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        # Started by the first job, not before: the embedding loop's worker processes
        # are forked when its first batch is asked for, and then no thread of ours runs.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def submit(self, job: Callable, *args) -> None:
        self._raise_failure()
        if not self._thread.is_alive():
            self._thread.start()
        self._jobs.put((job, args))

    def close(self) -> None:
        """Wait for every job submitted so far; raise the first failure."""
        if self._thread.is_alive():
            self._jobs.put(_DONE)
            self._thread.join()
        self._raise_failure()

    def __enter__(self) -> "OrderedWriter":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.close()
        else:  # the caller's error wins; what was submitted still gets written
            try:
                self.close()
            except Exception:
                pass

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (entry := self._jobs.get()) is not _DONE:
            job, args = entry
            if self._error is None:
                try:
                    job(*args)
                except BaseException as exc:  # handed to the caller
                    self._error = exc
