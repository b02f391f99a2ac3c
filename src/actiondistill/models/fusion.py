"""ActionCLIP's temporal fusion heads ("visual prompts"): frame embeddings (B, T, D) -> video embedding (B, D).

Variants, as in the ActionCLIP reference (REFERENCE.md): meanP, conv1d (depthwise temporal conv starting
as a temporal shift), lstm, transf (frame position embedding + transformer, residual, mean) and
transf_cls (a cls token read out after the transformer). The transformer variants also serve X-CLIP's
multi-frame integration transformer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from open_clip.transformer import Transformer
from torch import nn


def attention_heads(dim: int) -> int:
    """D/64 heads as in CLIP and ActionCLIP, at least one, and always a divisor of D."""
    heads = max(1, dim // 64)
    while dim % heads:
        heads -= 1
    return heads


class MeanFusion(nn.Module):
    """meanP: the exact mean over frames; no parameters, the baseline every other head must beat."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class TemporalConvFusion(nn.Module):
    """conv1d: depthwise kernel-3 temporal convolution, residual, mean.

    Initialised as a temporal shift: the first quarter of the channels looks one frame back, the last
    quarter one frame forward, the middle half is the identity (zero padding at the clip ends). The
    convolution runs over time by permuting (B, T, D) -> (B, D, T), not by reshaping the memory as the
    reference's `view` does.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, padding=1, groups=dim, bias=False)
        self.reset_to_shift()

    @torch.no_grad()
    def reset_to_shift(self) -> None:
        dim = self.conv.weight.shape[0]
        quarter = dim // 4
        weight = torch.zeros_like(self.conv.weight)
        weight[:quarter, 0, 0] = 1.0  # out[t] = x[t - 1]
        weight[quarter : dim - quarter, 0, 1] = 1.0  # out[t] = x[t]
        weight[dim - quarter :, 0, 2] = 1.0  # out[t] = x[t + 1]
        self.conv.weight.copy_(weight)

    def temporal(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution alone, (B, T, D) -> (B, T, D)."""
        return self.conv(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.temporal(x)).mean(dim=1)


class LSTMFusion(nn.Module):
    """lstm: one LSTM layer over frames, residual, mean."""

    def __init__(self, dim: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers=1, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return (x + out).mean(dim=1)


class TransformerFusion(nn.Module):
    """transf / transf_cls: learned frame position embedding and a transformer over the T frame tokens.

    Without a cls token the output is mean(x + transformer(x + pos)) (residual on the un-positioned
    frames, as ActionCLIP and X-CLIP's integration transformer do); with one it is the cls output.
    Clips of another length than `num_frames` get linearly interpolated position embeddings.
    """

    def __init__(self, dim: int, num_frames: int, layers: int = 6, cls_token: bool = False):
        super().__init__()
        if num_frames < 1 or layers < 1:
            raise ValueError(f"num_frames={num_frames}, layers={layers}: both must be >= 1")
        self.num_frames = num_frames
        self.cls_token = nn.Parameter(torch.zeros(dim)) if cls_token else None
        self.frame_position = nn.Parameter(torch.empty(num_frames, dim))
        self.cls_position = nn.Parameter(torch.zeros(dim)) if cls_token else None
        self.transformer = Transformer(width=dim, layers=layers, heads=attention_heads(dim))
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Small normal init (std 0.02, as ActionCLIP) so the residual head starts close to meanP."""
        nn.init.normal_(self.frame_position, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        for module in self.transformer.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                nn.init.normal_(module.in_proj_weight, std=0.02)
                nn.init.zeros_(module.in_proj_bias)

    def positions(self, frames: int) -> torch.Tensor:
        if frames == self.num_frames:
            return self.frame_position
        pos = self.frame_position.t().unsqueeze(0)  # (1, D, T)
        return F.interpolate(pos, size=frames, mode="linear", align_corners=True)[0].t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        pos = self.positions(t).to(x.dtype)
        if self.cls_token is None:
            return (x + self.transformer(x + pos)).mean(dim=1)
        cls = (self.cls_token + self.cls_position).to(x.dtype).expand(b, 1, -1)
        tokens = torch.cat([cls, x + pos], dim=1)
        return self.transformer(tokens)[:, 0]


FUSIONS: dict[str, Callable[..., nn.Module]] = {
    "meanP": lambda dim, num_frames, layers: MeanFusion(),
    "conv1d": lambda dim, num_frames, layers: TemporalConvFusion(dim),
    "lstm": lambda dim, num_frames, layers: LSTMFusion(dim),
    "transf": lambda dim, num_frames, layers: TransformerFusion(dim, num_frames, layers),
    "transf_cls": lambda dim, num_frames, layers: TransformerFusion(dim, num_frames, layers, cls_token=True),
}


def build_fusion(kind: str, dim: int, num_frames: int, layers: int = 6) -> nn.Module:
    """One of FUSIONS by name; `layers` only matters for the transformer variants."""
    if kind not in FUSIONS:
        raise ValueError(f"fusion {kind!r}: expected one of {sorted(FUSIONS)}")
    return FUSIONS[kind](dim, num_frames, layers)
