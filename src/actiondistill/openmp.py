"""How long torch's idle OpenMP threads spin before they sleep: short for streaming, set before torch loads.

Why: libgomp, the OpenMP runtime of torch's Linux wheels, keeps a thread that has finished its share of a parallel
region spinning for GOMP_SPINCOUNT iterations (300,000 by default) in case another region follows. Inside a model
that is what keeps back-to-back operators fast. Between a stream's frames it takes a core from the single-threaded
work in between: decoding, resizing and Python. Measured on this project's 2-core Xeon (TinyCLIP-ViT-8M/16
`bf16-compile` streamed at 2 threads, 3 rounds each): default spinning 54-59 FPS with decoding at 2.3-3.1 ms per
frame; GOMP_SPINCOUNT=30000 67-69 FPS, decoding 0.9-1.0 ms (the encoder itself 10.3-10.7 ms against 11.2-11.8);
3000 59-61 FPS (the encoder's own operators start waiting); OMP_WAIT_POLICY=PASSIVE (no spinning) 33-35 FPS.
libgomp reads the variable once, when torch loads it, so it must be set before `import torch`.
"""

from __future__ import annotations

import os
import sys

#: Spin iterations of an idle OpenMP thread for streaming commands (the measurement above).
STREAM_SPINCOUNT = 30000


def limit_spinning(spincount: int = STREAM_SPINCOUNT) -> bool:
    """Set GOMP_SPINCOUNT for this process (and its children) unless torch is already loaded or the user chose a
    spin setting (GOMP_SPINCOUNT or OMP_WAIT_POLICY); True when it was set."""
    if "torch" in sys.modules or "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = str(int(spincount))
    return True


def spin_settings() -> dict[str, str | None]:
    """The OpenMP waiting settings in force, for a result's record of its environment."""
    return {name: os.environ.get(name) for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
