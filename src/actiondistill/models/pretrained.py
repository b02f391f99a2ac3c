"""Where backbone weights come from: a local file, a placed file for a tag, or (online only) a download.

The project's machines have no network, so a pretrained tag must never hang: before any download the
network is probed with a short timeout (or skipped outright under HF_HUB_OFFLINE=1 /
ACTIONDISTILL_OFFLINE=1), and the error says which file to place where. A placed file
`data/checkpoints/<name>-<tag>.pt` (or `.safetensors`) is used without touching the network at all.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from actiondistill.paths import data_dir

# TinyCLIP release weights (open_clip-compatible state dicts wrapped as {"state_dict": ...}, "module." prefixed).
PROJECT_TAGS: dict[str, dict[str, str]] = {
    "TinyCLIP-ViT-8M-16-Text-3M": {
        "yfcc15m": "https://github.com/wkcn/TinyCLIP-model-zoo/releases/download/checkpoints/"
        "TinyCLIP-ViT-8M-16-Text-3M-YFCC15M.pt",
    },
    "TinyCLIP-ViT-39M-16-Text-19M": {
        "yfcc15m": "https://github.com/wkcn/TinyCLIP-model-zoo/releases/download/checkpoints/"
        "TinyCLIP-ViT-39M-16-Text-19M-YFCC15M.pt",
    },
    "TinyCLIP-ViT-40M-32-Text-19M": {
        "laion400m": "https://github.com/wkcn/TinyCLIP-model-zoo/releases/download/checkpoints/"
        "TinyCLIP-ViT-40M-32-Text-19M-LAION400M.pt",
    },
    "TinyCLIP-ViT-61M-32-Text-29M": {
        "laion400m": "https://github.com/wkcn/TinyCLIP-model-zoo/releases/download/checkpoints/"
        "TinyCLIP-ViT-61M-32-Text-29M-LAION400M.pt",
    },
}

PLACED_SUFFIXES = (".pt", ".safetensors", ".bin", ".pth")
_PROBE_TIMEOUT_S = 3.0


def checkpoints_dir() -> Path:
    """Placed and downloaded backbone weights live here (under ACTIONDISTILL_DATA when set)."""
    return data_dir() / "checkpoints"


def placed_path(name: str, tag: str) -> Path:
    """The file a user places to satisfy `pretrained=tag` without a network."""
    return checkpoints_dir() / f"{name}-{tag}.pt"


def known_tags(name: str) -> list[str]:
    import open_clip

    return sorted(set(open_clip.list_pretrained_tags_by_model(name)) | set(PROJECT_TAGS.get(name, {})))


def tag_source(name: str, tag: str) -> dict | None:
    """Download description of a tag ({'url': ...} or open_clip's pretrained cfg), None when unknown."""
    import open_clip

    if tag in PROJECT_TAGS.get(name, {}):
        return {"url": PROJECT_TAGS[name][tag]}
    return open_clip.get_pretrained_cfg(name, tag) or None


def resolve_pretrained(name: str, pretrained: str | os.PathLike) -> tuple[Path, dict]:
    """Turn `pretrained` (a file path or a tag of model `name`) into a local file.

    Returns (path, tag cfg) where the cfg is empty for plain files and carries e.g. `quick_gelu` for tags.
    Raises FileNotFoundError for a missing path, ValueError for an unknown tag, RuntimeError (fast) when a
    tag needs a download and the network is unreachable.
    """
    candidate = Path(pretrained)
    if candidate.is_file():
        return candidate, {}
    tag = str(pretrained)
    source = tag_source(name, tag)
    if source is None:
        if _looks_like_path(tag):
            raise FileNotFoundError(f"{candidate}: no such checkpoint file (pretrained={tag!r} for {name!r})")
        raise ValueError(
            f"pretrained={tag!r}: neither an existing file nor a known tag of {name!r} "
            f"(known tags: {known_tags(name) or 'none'})"
        )
    for suffix in PLACED_SUFFIXES:
        placed = placed_path(name, tag).with_suffix(suffix)
        if placed.is_file():
            return placed, source
    host = _download_host(source)
    if not network_available(host):
        raise RuntimeError(
            f"pretrained tag {tag!r} of {name!r} needs a download from {host}, which is unreachable (offline). "
            f"Place the weights at {placed_path(name, tag)} (an open_clip state dict, a TinyCLIP checkpoint, an "
            f"OpenAI JIT archive, or the same name with .safetensors) or pass pretrained=<path to the file>."
        )
    return Path(_download(source)), source


def network_available(host: str, port: int = 443, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Probe a TCP connection, bounded in time even when DNS itself hangs (the probe runs in a daemon thread)."""
    if _env_flag("HF_HUB_OFFLINE") or _env_flag("ACTIONDISTILL_OFFLINE"):
        return False
    result = [False]

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result[0] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0]


def _download(source: dict) -> str:
    """Download through open_clip (its own progress bar), caching under data/checkpoints/cache."""
    import open_clip

    return open_clip.download_pretrained(source, cache_dir=str(checkpoints_dir() / "cache"))


def _download_host(source: dict) -> str:
    if source.get("hf_hub"):
        return urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    return urlparse(source.get("url", "")).hostname or "huggingface.co"


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or Path(text).suffix.lower() in (*PLACED_SUFFIXES, ".ckpt")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
