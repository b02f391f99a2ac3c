"""Process pools that are safe after PyAV (or torch) has run in the parent.

A worker forked from a parent that has decoded video can deadlock: PyAV's frames hold a colour
converter with its own threads, and a garbage collection in the child waits for threads that were
not copied. The forkserver start method forks workers from a clean server process instead, at the
cost of importing the worker's module once per worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm


def process_pool(workers: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)


def map_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, bar: tqdm | None = None,
             max_chunk: int = 32, initializer: Callable[[], None] | None = None) -> list[Any]:
    """`[fn(job) for job in jobs]`, in a process pool when more than one worker and job, advancing `bar` per job.

    One worker (or one job) runs in this process: no pool start-up, and exceptions keep their traceback. Chunks
    stay small (at most `max_chunk`, about four per worker) so the bar moves and the last chunks balance.
    """
    if workers <= 1 or len(jobs) <= 1:
        return _collected(map(fn, jobs), bar)
    workers = min(workers, len(jobs))
    with process_pool(workers, initializer=initializer) as pool:
        return _collected(pool.map(fn, jobs, chunksize=max(1, min(max_chunk, len(jobs) // (4 * workers)))), bar)


def threads_per_worker(workers: int) -> int:
    """The intra-op threads each of `workers` processes gets so that together they fill the machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def starmap_closure(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], workers: int,
                    threads: int | None = None, bar: tqdm | None = None) -> list[Any]:
    """`[fn(*job) for job in jobs]` in `workers` processes, where `fn` may be a closure (a chapter's `run_one`).

    Why: small models on a few cores train faster as several single-threaded runs side by side than one after the
    other on all threads (their steps are too small to keep two threads busy). `fn` travels by value (cloudpickle),
    once per worker with everything it captures, and each worker runs with `threads` intra-op threads (None:
    `threads_per_worker(workers)`); results come back in job order, one job per task so the slow ones balance. One
    worker runs here, under `threads` when given; so does a single job, under the threads a worker would have had,
    since a run's numbers depend on its thread count. `fn` must not rely on state its earlier calls left in this
    process, since each call may run in another one.
    """
    if threads is None and workers > 1:
        threads = threads_per_worker(workers)
    if workers <= 1 or len(jobs) <= 1:
        with torch_threads(threads):
            return _collected((fn(*job) for job in jobs), bar)
    import cloudpickle

    with process_pool(min(workers, len(jobs)), initializer=_install_closure,
                      initargs=(cloudpickle.dumps(fn), threads)) as pool:
        return _collected(pool.map(_call_closure, jobs, chunksize=1), bar)


def _collected(results: Iterable[Any], bar: tqdm | None) -> list[Any]:
    """The results as a list, `bar` advanced as each one arrives."""
    out = []
    for result in results:
        out.append(result)
        if bar is not None:
            bar.update()
    return out


_closure: Callable[..., Any] | None = None


def _install_closure(blob: bytes, threads: int) -> None:
    """Worker initialiser of `starmap_closure`: its function, and its thread count for every call."""
    global _closure
    import cloudpickle
    import torch

    torch.set_num_threads(threads)
    _closure = cloudpickle.loads(blob)


def _call_closure(job: tuple[Any, ...]) -> Any:
    if _closure is None:
        raise RuntimeError("starmap_closure: the worker was not initialised with its function")
    return _closure(*job)


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
