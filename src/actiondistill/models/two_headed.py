"""Two-headed ActionCLIP (DeiT adapted to video transformers): a frame-based and a token-based view of each video.

The model is ActionCLIP with the `transf` fusion (learned frame positions, a temporal transformer, residual, mean)
plus a learnable distillation token, with its own position embedding, appended to the T frame tokens. Every token
attends to every other, as in DeiT, so the two heads share the transformer and shape each other's inputs:

- frame head: mean over frames of (frame + transformer output at that frame), exactly ActionCLIP's `transf` read-out;
- token head: `token_head` (a D x D linear map, initialised as the identity) of the distillation token's output.

Both are matched against the same text embeddings with the same logit scale. Inference (DeiT) uses the mean of
the two heads' L2-normalised embeddings; `head` ("both" | "frame" | "token") selects what `encode_video` returns,
so `evaluate` (and `actiondistill.evaluate.evaluate_heads`) can score each head alone.

Public API:
    TwoHeadedActionCLIP(backbone, num_frames=8, fusion_layers=6, head="both", **VideoCLIP options)
    model.head / model.use_head(head)          the head encode_video returns (context manager restores it)
    model.encode_video_heads(frames) -> (frame_embedding, token_embedding), each (B, D), not normalised
    model(frames, labels, return_heads=True) -> HeadLogits(frame, token, both), each (B, C), one text encoding
    model.head_logits(frame, token, labels) -> HeadLogits      the same from the two heads' embeddings
    model.load_single_head(path_or_state_dict) -> the keys left at initialisation (NEW_KEYS)
    create_model("actionclip-twohead", ..., init_from=PATH)   the frame path from an `actionclip-transf` checkpoint

Weights: every key of an `actionclip-transf` model of the same backbone, frame count and `fusion_layers`
(backbone.*, fusion.frame_position, fusion.transformer.*) is shared; NEW_KEYS are the only additions. Because the
frames also attend to the token, a freshly loaded frame head is close to, not identical with, the single-head
model's output until training adapts it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.nn.functional as F
from open_clip import CLIP
from torch import nn

from actiondistill.models.actionclip import ActionCLIP
from actiondistill.models.registry import register_model

HEADS = ("both", "frame", "token")
#: Parameters an `actionclip-transf` checkpoint does not have.
NEW_KEYS = ("distill_token", "distill_position", "token_head.weight", "token_head.bias")


class HeadLogits(NamedTuple):
    """(B, C) logits of each head against the same texts at the same scale; `both` scores the DeiT average."""

    frame: torch.Tensor
    token: torch.Tensor
    both: torch.Tensor


class TwoHeadedActionCLIP(ActionCLIP):
    """ActionCLIP `transf` plus a distillation token and its head; see the module docstring."""

    HEADS = HEADS

    def __init__(self, backbone: CLIP, num_frames: int = 8, fusion_layers: int = 6, head: str = "both", **kwargs):
        super().__init__(backbone, num_frames=num_frames, fusion="transf", fusion_layers=fusion_layers, **kwargs)
        dim = self.embed_dim
        self.distill_token = nn.Parameter(torch.empty(dim))
        self.distill_position = nn.Parameter(torch.empty(dim))
        self.token_head = nn.Linear(dim, dim)
        self.head = head
        self._init_token()

    @torch.no_grad()
    def _init_token(self) -> None:
        """Token and its position: std 0.02 like the frame positions. The head starts as the identity, so the token
        branch begins as a cls-token read-out of the fusion transformer rather than a random direction."""
        nn.init.normal_(self.distill_token, std=0.02)
        nn.init.normal_(self.distill_position, std=0.02)
        nn.init.eye_(self.token_head.weight)
        nn.init.zeros_(self.token_head.bias)

    # ----------------------------------------------------------------- head selection
    @property
    def head(self) -> str:
        return self._head

    @head.setter
    def head(self, value: str) -> None:
        if value not in HEADS:
            raise ValueError(f"head={value!r}: expected one of {list(HEADS)}")
        self._head = value

    @contextmanager
    def use_head(self, head: str) -> Iterator[TwoHeadedActionCLIP]:
        """Temporarily make `encode_video` (so forward, predict_proba, evaluate) use one head."""
        previous = self.head
        self.head = head
        try:
            yield self
        finally:
            self.head = previous

    # ----------------------------------------------------------------- the two perspectives
    def fuse_heads(self, frame_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) frame embeddings -> (frame-head, token-head) video embeddings, each (B, D), not normalised."""
        b, t, _ = frame_embeddings.shape
        x = frame_embeddings
        pos = self.fusion.positions(t).to(x.dtype)
        token = (self.distill_token + self.distill_position).to(x.dtype).expand(b, 1, -1)
        out = self.fusion.transformer(torch.cat([x + pos, token], dim=1))
        frame = (x + out[:, :t]).mean(dim=1)
        return frame, self.token_head(out[:, t])

    @staticmethod
    def average(frame: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """DeiT inference: the mean of the two heads' L2-normalised embeddings."""
        return (F.normalize(frame, dim=-1) + F.normalize(token, dim=-1)) / 2

    def selected(self, frame: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """The video embedding of the current `head` from both heads' embeddings."""
        if self.head == "frame":
            return frame
        if self.head == "token":
            return token
        return self.average(frame, token)

    def fuse_frames(self, frame_embeddings: torch.Tensor) -> torch.Tensor:
        return self.selected(*self.fuse_heads(frame_embeddings))

    def encode_video_heads(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels (B, T, 3, H, W) or cached frame embeddings (B, T, D) -> (frame, token) embeddings, each (B, D)."""
        if isinstance(frames, torch.Tensor) and frames.ndim == 3:
            return self.fuse_heads(self._check_embeddings(frames))
        return self.fuse_heads(self.encode_frames(frames))

    def forward(self, frames: torch.Tensor, labels: Sequence[str],
                return_heads: bool = False) -> torch.Tensor | HeadLogits:
        """(B, C) logits of the selected head; with `return_heads`, every head's logits against one text encoding
        (one template draw per label in training), which is what a training step needs (and, being `forward`,
        keeps DistributedDataParallel's gradient synchronisation)."""
        if not return_heads:
            return super().forward(frames, labels)
        return self.head_logits(*self.encode_video_heads(frames), labels)

    def head_logits(self, frame: torch.Tensor, token: torch.Tensor, labels: Sequence[str]) -> HeadLogits:
        """Every head's (B, C) logits from the two heads' embeddings, against one encoding of `labels`."""
        text = self.encode_text(labels)
        scale = self.current_logit_scale()
        return HeadLogits(self.cosine_logits(frame, text, scale), self.cosine_logits(token, text, scale),
                          self.cosine_logits(self.average(frame, token), text, scale))

    # ----------------------------------------------------------------- weights
    def load_single_head(self, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> list[str]:
        """Load an `actionclip-transf` model's weights (a file in any form `load_model_weights` reads, a
        `.safetensors` file, or a state dict) into the shared parameters; returns the keys left as initialised.

        Every key of the source must fit (same backbone, frame count and fusion_layers); only NEW_KEYS may be
        absent from it. Nothing is loaded when something does not fit, and the error names the keys.
        """
        state, origin = _read_state(source)
        expected = self.state_dict()
        unexpected = sorted(k for k in state if k not in expected)
        mismatched = sorted(f"{k} {list(state[k].shape)} in source vs {list(expected[k].shape)} in model"
                            for k in state if k in expected and state[k].shape != expected[k].shape)
        missing = sorted(k for k in expected if k not in state)
        foreign = [k for k in missing if k not in NEW_KEYS]
        if unexpected or mismatched or foreign:
            raise ValueError(f"{origin}: not an actionclip-transf model of this architecture (backbone, num_frames="
                             f"{self.num_frames}, fusion_layers={len(self.fusion.transformer.resblocks)}): missing "
                             f"{foreign[:8]}, unexpected {unexpected[:8]}, shape mismatches {mismatched[:8]}")
        self.load_state_dict(state, strict=False)
        return missing

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, head={self.head}"


def _read_state(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(source, Mapping):
        return dict(source), "<state dict>"
    from actiondistill.models.checkpoints import read_state_dict

    return read_state_dict(source)[0], str(source)


@register_model("actionclip-twohead")
def _build(backbone: CLIP, init_from: str | os.PathLike | None = None, **cfg) -> TwoHeadedActionCLIP:
    """`init_from`: an `actionclip-transf` checkpoint whose weights start the shared (frame) path."""
    model = TwoHeadedActionCLIP(backbone, **cfg)
    if init_from is not None:
        model.load_single_head(init_from)
    return model
