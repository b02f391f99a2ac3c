"""Process pools that are safe after PyAV (or torch) has run in the parent.

A worker forked from a parent that has decoded video can deadlock: PyAV's frames hold a colour
converter with its own threads, and a garbage collection in the child waits for threads that were
not copied. The forkserver start method forks workers from a clean server process instead, at the
cost of importing the worker's module once per worker.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int, initializer: Callable[[], None] | None = None) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=initializer)
