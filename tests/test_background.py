"""The writer thread behind the embedding loop: order kept, nothing lost, failures surface."""

from __future__ import annotations

import threading
import time

import pytest

from tools.background import OrderedWriter


def test_jobs_run_in_order_on_another_thread_and_all_are_done_at_close():
    done, threads = [], set()

    def job(n):
        time.sleep(0.01 if n % 2 else 0)
        done.append(n)
        threads.add(threading.current_thread().name)

    with OrderedWriter(depth=2) as writer:
        for n in range(10):
            writer.submit(job, n)
    assert done == list(range(10))
    assert threading.current_thread().name not in threads


def test_a_failing_job_stops_the_rest_and_its_error_reaches_the_caller():
    done = []

    def job(n):
        if n == 3:
            raise ValueError("disk full")
        done.append(n)

    writer = OrderedWriter(depth=1)
    with pytest.raises(ValueError, match="disk full"):
        for n in range(100):
            writer.submit(job, n)
        writer.close()
    assert done == [0, 1, 2]


def test_the_callers_own_error_wins_and_what_was_submitted_is_still_written():
    done = []
    with pytest.raises(KeyError):
        with OrderedWriter() as writer:
            writer.submit(done.append, 1)
            writer.submit(done.append, 2)
            raise KeyError("cancelled by the caller")
    assert done == [1, 2]
