"""ActionCLIP: CLIP image encoder per frame, a temporal fusion head, 16 text templates (REFERENCE.md)."""

from __future__ import annotations

from functools import partial

import torch
from open_clip import CLIP

from actiondistill.models.base import VideoCLIP
from actiondistill.models.fusion import FUSIONS, build_fusion
from actiondistill.models.prompts import ACTIONCLIP_TEMPLATES
from actiondistill.models.registry import register_model


class ActionCLIP(VideoCLIP):
    """Frames -> CLIP image embeddings (B, T, D) -> fusion (meanP, conv1d, lstm, transf, transf_cls) -> (B, D).

    `fusion_layers` sizes the transformer variants: 6 as in the paper; smaller for the embedded world.
    """

    default_templates = ACTIONCLIP_TEMPLATES

    def __init__(self, backbone: CLIP, num_frames: int = 8, fusion: str = "transf", fusion_layers: int = 6, **kwargs):
        super().__init__(backbone, num_frames=num_frames, **kwargs)
        self.fusion_kind = fusion
        self.fusion = build_fusion(fusion, self.embed_dim, num_frames, fusion_layers)

    def fuse_frames(self, frame_embeddings: torch.Tensor) -> torch.Tensor:
        return self.fusion(frame_embeddings)


def _build(backbone: CLIP, fusion: str, **cfg) -> ActionCLIP:
    return ActionCLIP(backbone, fusion=fusion, **cfg)


for _kind in FUSIONS:
    register_model(f"actionclip-{_kind.lower()}")(partial(_build, fusion=_kind))
