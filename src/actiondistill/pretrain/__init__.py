"""The embedded CLIPs: `embedded-base` pretrained on SynthActions frame-caption pairs, `embedded-tiny` distilled
from it TinyCLIP-style; `ensure_embedded_clips` makes (or reuses) both and their zero-shot report."""

from actiondistill.pretrain.pipeline import (
    PRETRAIN_VERSION,
    STAGES,
    PretrainConfig,
    StageConfig,
    clip_key,
    clips_dir,
    ensure_embedded_clips,
    parameter_counts,
    provenance,
)

__all__ = [
    "PRETRAIN_VERSION",
    "STAGES",
    "PretrainConfig",
    "StageConfig",
    "clip_key",
    "clips_dir",
    "ensure_embedded_clips",
    "parameter_counts",
    "provenance",
]
