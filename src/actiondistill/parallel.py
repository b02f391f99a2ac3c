"""Process pools that are safe after PyAV (or torch) has run in the parent.

A worker forked from a parent that has decoded video can deadlock: PyAV's frames hold a colour
converter with its own threads, and a garbage collection in the child waits for threads that were
not copied. The forkserver start method forks workers from a clean server process instead, at the
cost of importing the worker's module once per worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm


def process_pool(workers: int, initializer: Callable[[], None] | None = None) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=initializer)


def map_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, bar: tqdm | None = None,
             max_chunk: int = 32, initializer: Callable[[], None] | None = None) -> list[Any]:
    """`[fn(job) for job in jobs]`, in a process pool when more than one worker and job, advancing `bar` per job.

    One worker (or one job) runs in this process: no pool start-up, and exceptions keep their traceback. Chunks
    stay small (at most `max_chunk`, about four per worker) so the bar moves and the last chunks balance.
    """
    results = []
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            results.append(fn(job))
            if bar is not None:
                bar.update()
        return results
    workers = min(workers, len(jobs))
    with process_pool(workers, initializer=initializer) as pool:
        for result in pool.map(fn, jobs, chunksize=max(1, min(max_chunk, len(jobs) // (4 * workers)))):
            results.append(result)
            if bar is not None:
                bar.update()
    return results


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` intra-op threads (None: unchanged), restoring the setting afterwards.

    Tiny tensors gain nothing from a second thread, and on a machine whose cores are shared the OpenMP hand-offs
    cost more than the work: fitting WISE's weights took 25x longer with 2 threads than with 1 while other jobs ran,
    and a 2-thread latency beside `make test` measured the load more than the model.
    """
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads={threads}: expected >= 1 or None")
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
