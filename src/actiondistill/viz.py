"""Figures the chapters share: frame strips of clips (seaborn styling is set by the chapters)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


def frame_strips(strips: Sequence[tuple[str, np.ndarray]], frame_inches: float = 0.9, title: str | None = None):
    """One row per clip: its title on the left, then its frames (uint8 (T, H, W, 3)) left to right in time."""
    if not strips:
        raise ValueError("frame_strips needs at least one (title, frames) pair")
    columns = max(len(frames) for _, frames in strips)
    fig, axes = plt.subplots(len(strips), columns, figsize=(frame_inches * columns + 1.6, frame_inches * len(strips)),
                             squeeze=False, gridspec_kw={"wspace": 0.03, "hspace": 0.08})
    for row, (name, frames) in zip(axes, strips, strict=True):
        for col, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(False)
            if col < len(frames):
                ax.imshow(frames[col])
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
