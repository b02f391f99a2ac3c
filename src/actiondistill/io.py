"""Atomic file writes: interrupted work must never leave a half-written file that looks complete."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on failure remove it.

    The rename is atomic on POSIX within one file system, hence the temporary file lives in the
    same directory as the target.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; published files get the usual mode
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON with sorted keys and a trailing newline, so equal content gives equal bytes."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def json_nulls(obj: Any) -> Any:
    """`obj` with NaN and infinities as None (null) and numpy scalars as Python numbers, so results tables (a single
    seed's std is NaN) write as strict JSON."""
    if isinstance(obj, Mapping):
        return {str(k): json_nulls(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_nulls(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def atomic_save(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Run `writer(tmp_path)` (e.g. `lambda p: torch.save(obj, p)`) and publish its file atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (weight files are tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, naming the file in the error when it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file (expected a JSON file)")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON ({err})") from err


def _json_default(obj: Any) -> Any:
    """Let numpy scalars/arrays and paths pass through json.dumps."""
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def cached_arrays(path: str | os.PathLike, stamp: Mapping[str, Any], make: Callable[[], dict[str, Any]],
                  what: str) -> dict[str, Any]:
    """Arrays from the .npz file `path` when it was made with this `stamp`, else `make()`'s, written atomically.

    `stamp` (JSON-able) records what the arrays were made from; a file made from something else is an error naming
    both (`what` describes the file, e.g. "frames cached"), never silently the wrong arrays.
    """
    import numpy as np

    path = Path(path)
    expected = json.loads(json.dumps(stamp))
    if path.is_file():
        with np.load(path) as stored:
            found = json.loads(str(stored["stamp"])) if "stamp" in stored.files else None
            if found != expected:
                raise ValueError(f"{path}: {what} for {found}, not {expected}; delete the file to make it again")
            return {key: stored[key] for key in stored.files if key != "stamp"}
    arrays = make()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to the temporary name
            np.savez(f, **arrays, stamp=np.array(json.dumps(expected, sort_keys=True)))

    atomic_save(path, write)
    return arrays
