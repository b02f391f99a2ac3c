"""How long torch's idle OpenMP threads spin before they sleep: short for streaming, set before torch loads.

Why: libgomp, the OpenMP runtime of torch's Linux wheels, keeps a thread that has finished its share of a parallel
region spinning for GOMP_SPINCOUNT iterations (300,000 by default) in case another region follows. Inside a model
that is what keeps back-to-back operators fast. Between a stream's frames it competes with the single-threaded work
in between: decoding, resizing and Python. Measured on this project's 2-core Xeon (TinyCLIP-ViT-8M/16 `bf16-compile`
streamed at 2 threads, each setting a fresh process, the settings interleaved round by round:
`benchmarks/bench_openmp_spin.py`): the decode stage of the best round halves (3.2 -> 1.6 ms), but the FPS gain is
within the host's noise (per-round ratios to the default 1.15, 0.93, 0.96, 1.15, 0.99 in `openmp_spin.json`; 1.31,
0.88, 1.03 in `openmp_spin_4settings.json`), while no spinning at all (OMP_WAIT_POLICY=PASSIVE) costs 23-42% and 3,000
iterations gave 0.89-1.07. A first probe that ran the settings one after another (not interleaved) had suggested
55 -> 68 FPS; the interleaved benchmark does not confirm it. 30,000 is kept: it shortens the stage it aims at and
costs no measurable FPS.
libgomp reads the variable once, when torch loads it, so it must be set before `import torch`.
"""

from __future__ import annotations

import os
import sys

#: Spin iterations of an idle OpenMP thread for streaming commands (the measurement above).
STREAM_SPINCOUNT = 30000
#: The variables that decide how libgomp's idle threads wait; a user who sets either has chosen.
SPIN_VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def limit_spinning(spincount: int = STREAM_SPINCOUNT) -> bool:
    """Set GOMP_SPINCOUNT for this process (and its children) unless torch is already loaded or the user chose a
    spin setting (GOMP_SPINCOUNT or OMP_WAIT_POLICY); True when it was set."""
    if "torch" in sys.modules or any(name in os.environ for name in SPIN_VARIABLES):
        return False
    os.environ["GOMP_SPINCOUNT"] = str(int(spincount))
    return True


def spin_settings() -> dict[str, str | None]:
    """The OpenMP waiting settings in force, for a result's record of its environment."""
    return {name: os.environ.get(name) for name in SPIN_VARIABLES}
