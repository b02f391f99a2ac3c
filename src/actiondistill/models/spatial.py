"""The multi-task student of spatial distillation: ActionCLIP plus one head per spatial objective.

Registered as `spatial-multitask` (any ActionCLIP fusion via `fusion=`, ViFi-style prompts via `templates=`). It
is an ActionCLIP in every respect the rest of the project relies on (encode_video on pixels or cached frame
embeddings, predict_proba, checkpoints holding the ActionCLIP keys plus `spatial_heads.*`), so evaluation,
streaming and profiling treat it as one; the heads only add outputs for training.

Each head is LayerNorm -> Linear, reading either the fused video embedding (`head_input="video"`, the default:
the spatial losses then shape the temporal fusion that the action logits also come from) or the mean of the
per-frame embeddings before fusion (`head_input="frames"`: the spatial losses reach only the image encoder, so
this only changes the action representation when the image encoder trains, not on frozen cached features).

The heads are a mixin (`SpatialHeads`), so they compose with other ActionCLIP models: `spatial-twohead` is the
two-headed DeiT student (`actionclip-twohead`) with spatial heads, whose heads read the video embedding of its
current head (the DeiT average by default) and whose forward returns every head's logits with `return_heads`, for
spatial distillation and two-headed training at once (chapter 7; the `spatial_multitask` objective with `deit=`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from open_clip import CLIP
from torch import nn

from actiondistill.models.actionclip import ActionCLIP
from actiondistill.models.registry import register_model
from actiondistill.models.two_headed import TwoHeadedActionCLIP

HEAD_INPUTS = ("video", "frames")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class SpatialHeads:
    """Spatial heads for an ActionCLIP model (a mixin listed before the model class).

    Args:
        spatial_heads: {objective: number of concepts}, e.g. `SpatialTargets.head_sizes()`.
        head_input: "video" (the model's video embedding) or "frames" (mean of frame embeddings).
        **kwargs: the model's own (fusion, fusion_layers, templates, ...).
    """

    def __init__(self, backbone: CLIP, num_frames: int = 8, spatial_heads: Mapping[str, int] | None = None,
                 head_input: str = "video", **kwargs):
        super().__init__(backbone, num_frames=num_frames, **kwargs)
        if not isinstance(spatial_heads, Mapping) or not spatial_heads:
            raise ValueError(f"spatial_heads={spatial_heads!r}: expected a non-empty mapping of objective name to "
                             "number of concepts, e.g. {'shape': 7, 'scene': 6}")
        for name, size in spatial_heads.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f"spatial head {name!r}: expected a letter followed by letters, digits or '_'")
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"spatial head {name!r}: {size!r} concepts, expected a positive integer")
        if head_input not in HEAD_INPUTS:
            raise ValueError(f"head_input={head_input!r}: expected one of {HEAD_INPUTS}")
        self.head_input = head_input
        self.spatial_heads = nn.ModuleDict({name: nn.Sequential(nn.LayerNorm(self.embed_dim),
                                                                nn.Linear(self.embed_dim, size))
                                            for name, size in spatial_heads.items()})

    def frame_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, D) per-frame embeddings of pixels (B, T, 3, H, W), or checked cached embeddings (B, T, D)."""
        if isinstance(frames, torch.Tensor) and frames.ndim == 3:
            return self._check_embeddings(frames)
        return self.encode_frames(frames)

    def spatial_names(self, heads: bool | Sequence[str]) -> list[str]:
        """The heads asked for: True for all, or some names (checked)."""
        names = list(self.spatial_heads) if heads is True else list(heads)
        unknown = [n for n in names if n not in self.spatial_heads]
        if unknown:
            raise ValueError(f"heads {unknown}: this model has spatial heads {list(self.spatial_heads)}")
        return names

    def spatial_outputs(self, per_frame: torch.Tensor, video: torch.Tensor | None,
                        names: Sequence[str]) -> dict[str, torch.Tensor]:
        """{objective: (B, concepts) logits} of the named heads on the video embedding (`head_input="video"`) or
        the mean frame embedding."""
        source = video if self.head_input == "video" else per_frame.mean(dim=1)
        return {name: self.spatial_heads[name](source) for name in names}

    @torch.no_grad()
    def predict_spatial(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """{objective: (B, concepts) head logits}, without the text side (e.g. to score the heads on a test set)."""
        per_frame = self.frame_embeddings(frames)
        video = self.fuse_frames(per_frame) if self.head_input == "video" else None
        return self.spatial_outputs(per_frame, video, list(self.spatial_heads))

    def extra_repr(self) -> str:
        sizes = {name: head[-1].out_features for name, head in self.spatial_heads.items()}
        return f"{super().extra_repr()}, spatial_heads={sizes}, head_input={self.head_input}"


class SpatialActionCLIP(SpatialHeads, ActionCLIP):
    """ActionCLIP with spatial heads (`SpatialHeads`' arguments, then ActionCLIP's)."""

    def forward(self, frames: torch.Tensor, labels: Sequence[str],
                heads: bool | Sequence[str] = False) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(B, C) action logits; with `heads` (True for all, or some names) also {objective: (B, concepts) logits},
        from one pass through the image encoder and the fusion."""
        if not heads:
            return super().forward(frames, labels)
        names = self.spatial_names(heads)
        per_frame = self.frame_embeddings(frames)
        video = self.fuse_frames(per_frame)
        logits = self.cosine_logits(video, self.encode_text(labels), self.current_logit_scale())
        return logits, self.spatial_outputs(per_frame, video, names)


class SpatialTwoHeadedActionCLIP(SpatialHeads, TwoHeadedActionCLIP):
    """The two-headed DeiT student with spatial heads (`SpatialHeads`' arguments, then TwoHeadedActionCLIP's)."""

    def forward(self, frames: torch.Tensor, labels: Sequence[str], return_heads: bool = False,
                heads: bool | Sequence[str] = False) -> Any:
        """As TwoHeadedActionCLIP's forward; with `heads` also {objective: (B, concepts) logits} of the spatial heads
        on the current head's video embedding, from one pass through the image encoder and the fusion."""
        if not heads:
            return super().forward(frames, labels, return_heads)
        names = self.spatial_names(heads)
        per_frame = self.frame_embeddings(frames)
        frame, token = self.fuse_heads(per_frame)
        logits = self.head_logits(frame, token, labels)
        spatial = self.spatial_outputs(per_frame, self.selected(frame, token), names)
        return (logits if return_heads else getattr(logits, self.head)), spatial


@register_model("spatial-multitask")
def _spatial_multitask(backbone: CLIP, fusion: str = "transf", **cfg) -> SpatialActionCLIP:
    """`SpatialActionCLIP` on any ActionCLIP fusion (default transf, ActionCLIP's own default)."""
    return SpatialActionCLIP(backbone, fusion=fusion, **cfg)


@register_model("spatial-twohead")
def _spatial_twohead(backbone: CLIP, **cfg) -> SpatialTwoHeadedActionCLIP:
    """`SpatialTwoHeadedActionCLIP`: two heads (DeiT) and spatial heads on the transf fusion."""
    return SpatialTwoHeadedActionCLIP(backbone, **cfg)
