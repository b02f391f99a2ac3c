"""Motion fields of the compressed domain: per-block vectors -> dense fields -> CoViAR's accumulation and residual.

Sign conventions (checked by tests on clips with known motion):
- FFmpeg exports, per block of a P-frame, `dst` (block centre in the current frame) and `src = dst + motion /
  motion_scale` (where the block's content was in the reference frame). An object moving by (+2, +1) px per
  frame has motion / motion_scale = (-2, -1).
- A *per-frame field* f (H, W, 2) holds, per pixel, that backward displacement src - dst (x then y), in pixels.
- The *source map* of frame k of a GOP, D_k = f_k(p) + D_{k-1}(round(p + f_k(p))), traces each pixel back frame
  by frame to its source in the GOP's I-frame: the lookup positions are rounded to whole pixels (and clamped to the
  frame) at each step, as CoViAR's integer accumulation does, while the exact half-pel vectors are summed.
- The *accumulated MV* (CoViAR's input, 2 channels x, y) is position - traced source = -D_k: the object above
  shows (+2k, +k) at GOP position k.
- The *residual* is frame_k - I(p + D_k(p)), the I-frame sampled bilinearly (border clamped) at the traced source,
  so I(source) + residual == frame_k by construction.
"""

from __future__ import annotations

import numpy as np

#: Fields of FFmpeg's AVMotionVector as PyAV's MotionVectors.to_ndarray() names them.
VECTOR_FIELDS = ("source", "w", "h", "src_x", "src_y", "dst_x", "dst_y", "motion_x", "motion_y", "motion_scale")


def rasterise_vectors(vectors: np.ndarray | None, height: int, width: int) -> np.ndarray:
    """Dense backward field (H, W, 2) float32 from one frame's block vectors; uncovered pixels stay 0.

    Only vectors with source < 0 (a past reference) count: in a P-frame those are all of them; intra blocks
    have no vector and read as no motion, as in CoViAR. A block covers [dst - size/2, dst + size/2), clipped.
    """
    field = np.zeros((height, width, 2), dtype=np.float32)
    if vectors is None or len(vectors) == 0:
        return field
    past = vectors[vectors["source"] < 0]
    scale = past["motion_scale"].astype(np.float32)
    scale[scale == 0] = 1.0
    dx = past["motion_x"].astype(np.float32) / scale
    dy = past["motion_y"].astype(np.float32) / scale
    x0 = np.clip(past["dst_x"].astype(np.int64) - past["w"] // 2, 0, width)
    y0 = np.clip(past["dst_y"].astype(np.int64) - past["h"] // 2, 0, height)
    x1 = np.clip(past["dst_x"].astype(np.int64) + (past["w"] + 1) // 2, 0, width)
    y1 = np.clip(past["dst_y"].astype(np.int64) + (past["h"] + 1) // 2, 0, height)
    for i in range(len(past)):
        field[y0[i] : y1[i], x0[i] : x1[i]] = (dx[i], dy[i])
    return field


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width]
    return xs.astype(np.float32), ys.astype(np.float32)


def _round_index(coord: np.ndarray, size: int) -> np.ndarray:
    """Nearest whole pixel, halves rounded up (not to even: the same position always rounds the same way)."""
    return np.clip(np.floor(coord + 0.5), 0, size - 1).astype(np.int64)


def accumulate_source_maps(fields: list[np.ndarray]) -> list[np.ndarray]:
    """Source maps D_1..D_K (each (H, W, 2), backward to the I-frame) from the per-frame fields f_1..f_K of a GOP.

    `fields[j]` is the field of GOP position j + 1; the I-frame itself (position 0) has no field and no map.
    """
    maps: list[np.ndarray] = []
    if not fields:
        return maps
    height, width = fields[0].shape[:2]
    xs, ys = _grid(height, width)
    previous: np.ndarray | None = None
    for field in fields:
        if field.shape != (height, width, 2):
            raise ValueError(f"motion field of shape {field.shape}: expected {(height, width, 2)}")
        current = field.astype(np.float32, copy=True)
        if previous is not None:
            rx = _round_index(xs + field[..., 0], width)
            ry = _round_index(ys + field[..., 1], height)
            current += previous[ry, rx]
        maps.append(current)
        previous = current
    return maps


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`image` (H, W, C) sampled at float positions x, y (each (H', W')), border clamped; float32 (H', W', C)."""
    height, width = image.shape[:2]
    img = image.astype(np.float32, copy=False)
    x = np.clip(x, 0, width - 1).astype(np.float32)
    y = np.clip(y, 0, height - 1).astype(np.float32)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    wx = (x - x0).astype(np.float32)[..., None]
    wy = (y - y0).astype(np.float32)[..., None]
    top = img[y0, x0] * (1 - wx) + img[y0, x1] * wx
    bottom = img[y1, x0] * (1 - wx) + img[y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def source_positions(accumulated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Traced source coordinates (x, y) in the I-frame from an accumulated MV (position - source)."""
    xs, ys = _grid(*accumulated.shape[:2])
    return xs - accumulated[..., 0], ys - accumulated[..., 1]


def compute_residual(frame: np.ndarray, iframe: np.ndarray, accumulated: np.ndarray) -> np.ndarray:
    """frame - I-frame at the traced source: float32 (H, W, 3) in [-255, 255]."""
    x, y = source_positions(accumulated)
    return frame.astype(np.float32) - sample_bilinear(iframe, x, y)


def reconstruct(iframe: np.ndarray, accumulated: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """The P-frame back from the I-frame, the accumulated MV and the residual (float32 (H, W, 3))."""
    x, y = source_positions(accumulated)
    return sample_bilinear(iframe, x, y) + residual
