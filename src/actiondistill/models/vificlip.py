"""ViFi-CLIP: plain CLIP fine-tuned on video; frame embeddings averaged, prompt "a photo of a {}."."""

from __future__ import annotations

import torch

from actiondistill.models.base import VideoCLIP
from actiondistill.models.prompts import VIFICLIP_TEMPLATES
from actiondistill.models.registry import register_model


@register_model("vificlip")
class ViFiCLIP(VideoCLIP):
    """No temporal module at all: both encoders are trained and the video embedding is the frame mean."""

    default_templates = VIFICLIP_TEMPLATES

    def fuse_frames(self, frame_embeddings: torch.Tensor) -> torch.Tensor:
        return frame_embeddings.mean(dim=1)
