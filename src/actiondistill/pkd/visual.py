"""Pictures of the compressed modalities: motion vectors as colour (hue = direction, brightness = length) and
residuals around mid-grey, so that a figure shows what the MV and residual networks see."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import hsv_to_rgb

from actiondistill.data.compressed import CachedClip
from actiondistill.data.compressed_motion import reconstruct


def mv_to_rgb(mv: np.ndarray, max_length: float | None = None) -> np.ndarray:
    """(H, W, 2) displacements (x, y) in pixels -> float RGB (H, W, 3) in [0, 1]; no motion is black.

    Args:
        max_length: the length drawn at full brightness (default: the largest in `mv`, at least 1 px).
    """
    if mv.ndim != 3 or mv.shape[-1] != 2:
        raise ValueError(f"mv: expected (H, W, 2) displacements, got shape {mv.shape}")
    dx, dy = mv[..., 0].astype(np.float64), mv[..., 1].astype(np.float64)
    length = np.hypot(dx, dy)
    scale = max(float(length.max()), 1.0) if max_length is None else float(max_length)
    if scale <= 0:
        raise ValueError(f"max_length={max_length}: expected > 0")
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    hsv = np.stack([hue, np.ones_like(hue), np.clip(length / scale, 0.0, 1.0)], axis=-1)
    return hsv_to_rgb(hsv)


def residual_to_rgb(residual: np.ndarray, gain: float = 2.0) -> np.ndarray:
    """(H, W, 3) residual in pixel units (-255..255) -> float RGB in [0, 1], zero at mid-grey, amplified by `gain`."""
    if residual.ndim != 3 or residual.shape[-1] != 3:
        raise ValueError(f"residual: expected (H, W, 3), got shape {residual.shape}")
    return np.clip(0.5 + gain * residual.astype(np.float64) / 510.0, 0.0, 1.0)


def compressed_strips(clip: CachedClip, count: int = 6,
                      gain: float = 2.0) -> tuple[list[int], list[tuple[str, np.ndarray]]]:
    """Rows for `actiondistill.viz.frame_strips` at `count` P-frames spread over a cached clip.

    Rows: the decoded frame (rebuilt as I-frame at the traced sources + residual, exact by construction), its GOP's
    I-frame, the accumulated MV (one brightness scale for the whole row) and the residual (amplified by `gain`).

    Returns:
        (the frame indices shown, [(row title, (count, H, W, 3) images)]).
    """
    p_frames = clip.p_frames
    if len(p_frames) == 0:
        raise ValueError(f"{clip.path}: the clip has no P-frame, so no motion vectors or residuals to show")
    picks = sorted({int(p_frames[i]) for i in np.linspace(0, len(p_frames) - 1, count).round().astype(int)})
    loaded = [clip.load(t) for t in picks]
    longest = max(max(float(np.hypot(mv[..., 0], mv[..., 1]).max()) for _, mv, _ in loaded), 1.0)
    rows = [
        ("decoded frame", np.stack([np.clip(reconstruct(i, mv, r), 0, 255).astype(np.uint8) for i, mv, r in loaded])),
        ("its GOP's I-frame", np.stack([i for i, _, _ in loaded])),
        ("accumulated MV", np.stack([mv_to_rgb(mv, longest) for _, mv, _ in loaded])),
        (f"residual (x{gain:g})", np.stack([residual_to_rgb(r, gain) for _, _, r in loaded])),
    ]
    return picks, rows
