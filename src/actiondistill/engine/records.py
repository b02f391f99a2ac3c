"""Results records: one JSON file per run (training, evaluation, profiling), which the chapters read.

A record carries everything needed to trust and reproduce a number: the metrics, the full config, the seed,
parameter counts, and the environment (torch, python, platform, device, git commit) and timing.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def git_commit() -> str | None:
    """HEAD of the project's repository, or None outside a git checkout (e.g. an installed package)."""
    from actiondistill.paths import project_root

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def environment(device: Any = None) -> dict[str, Any]:
    """The machine and software a result was produced on, to store beside the numbers: the one description every
    record, profile and benchmark carries. The 1/5/15-minute load average says whether other processes competed
    for the CPU while it was measured."""
    import torch

    from actiondistill import __version__
    from actiondistill.openmp import spin_settings

    cuda = torch.cuda.is_available()
    cpu = cpu_model()
    env = {
        "actiondistill": __version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cuda_available": cuda,
        "device": str(device) if device is not None else None,
        "device_name": torch.cuda.get_device_name() if cuda else cpu,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "openmp": spin_settings(),
    }
    if device is not None and str(device).startswith("cuda") and cuda:
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return env


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def count_parameters(module: Any, trainable: bool = False) -> int:
    """Number of parameters (only those that train, with `trainable`); a parameter shared by several sub-modules
    counts once. A module whose weights live outside torch (an onnxruntime session) declares them as an
    `external_parameters` attribute; they never train."""
    params = [p for p in module.parameters() if p.requires_grad or not trainable]
    external = 0 if trainable else int(getattr(module, "external_parameters", 0))
    return sum(p.numel() for p in params) + external


def build_record(kind: str, run_name: str, metrics: dict[str, Any], *, config: dict[str, Any] | None = None,
                 seed: int | None = None, model: Any = None, device: Any = None, started: float | None = None,
                 **extra: Any) -> dict[str, Any]:
    """Assemble a record; `started` is a `time.time()` stamp for the duration, `extra` adds kind-specific fields."""
    now = time.time()
    record: dict[str, Any] = {
        "kind": kind,
        "run_name": run_name,
        "seed": seed,
        "metrics": metrics,
        "config": config,
        "params": ({"total": count_parameters(model), "trainable": count_parameters(model, trainable=True)}
                   if model is not None else None),
        "environment": environment(device),
        "finished_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "duration_s": round(now - started, 3) if started is not None else None,
    }
    record.update(extra)
    return record


def write_record(record: dict[str, Any], directory: str | os.PathLike | None = None) -> Path:
    """Write `<directory>/<run_name>.json` atomically; the directory defaults to data/results/."""
    from actiondistill.io import atomic_write_json
    from actiondistill.paths import results_dir

    name = record["run_name"]
    if not _SAFE_NAME.match(name):
        raise ValueError(f"run name {name!r}: expected letters, digits and . _ + - (it becomes a file name)")
    return atomic_write_json(Path(directory or results_dir()) / f"{name}.json", record)
