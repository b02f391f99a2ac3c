"""The thread count a live stream runs fastest with, measured rather than assumed.

torch's default (one thread per core) suits large batches; streaming encodes one small frame at a time, where
threads mostly wait on each other, and on a machine shared with other work the default collapsed a stream from
about 150 to 3-8 FPS while one thread kept its rate. So the stream times a few frames at 1, 2 and all cores,
taking turns round by round so that a load burst hits every candidate alike, and keeps the fastest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def thread_candidates() -> list[int]:
    """1, 2 and every core, without repeats or more than the machine has."""
    cores = os.cpu_count() or 1
    return sorted({n for n in (1, 2, cores) if n <= cores})


def pick_threads(recognizer: Any, candidates: Sequence[int] | None = None, rounds: int = 3) -> dict[str, Any]:
    """Set torch's thread count to the fastest of `candidates` at `recognizer.encode_frame` and return
    {"threads", "chosen_by", "frame_ms": {threads: best ms per frame}}; the recognizer's state is untouched."""
    candidates = list(candidates or thread_candidates())
    from actiondistill.realtime.streaming import model_image_size

    height, width = model_image_size(recognizer.model)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    best = {n: float("inf") for n in candidates}
    for turn in range(rounds + 1):  # the first turn warms every setting up and is not counted
        for n in candidates:
            torch.set_num_threads(n)
            start = time.perf_counter()
            recognizer.encode_frame(image)
            if turn:
                best[n] = min(best[n], (time.perf_counter() - start) * 1e3)
    fastest = min(candidates, key=best.__getitem__)
    torch.set_num_threads(fastest)
    return {"threads": fastest, "chosen_by": "start-up test", "frame_ms": {n: round(ms, 3) for n, ms in best.items()}}
