"""X-CLIP: cross-frame communication in the image encoder, multi-frame integration, video-specific prompts.

The image tower is run block by block from open_clip's VisionTransformer pieces (conv1, class and
position embeddings, ln_pre, transformer.resblocks, ln_post, proj) so that each block can see one
extra token per frame: a message made from the frame's cls token and mixed across the clip's T
messages by attention. The message joins the frame's attention as a key/value and is dropped before the
MLP. Frame embeddings then go through a small integration transformer (mean over time), and the text
embedding of each class is refined per video by cross-attention to the clip's patch features, scaled
by a learnable alpha (init 0.1), so logits use (B, C, D) text embeddings.
"""

from __future__ import annotations

from typing import Any

import torch
from open_clip import CLIP
from open_clip.transformer import LayerNorm, ResidualAttentionBlock, VisionTransformer
from torch import nn

from actiondistill.models.base import VideoCLIP
from actiondistill.models.fusion import TransformerFusion, attention_heads
from actiondistill.models.prompts import XCLIP_TEMPLATES
from actiondistill.models.registry import register_model


class CrossFrameMessage(nn.Module):
    """One block's message tokens: linear on each frame's cls token, attention across the clip's frames."""

    def __init__(self, width: int):
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.ln = LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, attention_heads(width), batch_first=True)
        for weight in (self.fc.weight, self.attn.in_proj_weight, self.attn.out_proj.weight):
            nn.init.normal_(weight, std=0.02)

    def forward(self, cls: torch.Tensor, batch: int) -> torch.Tensor:
        """(B*T, W) cls tokens -> (B*T, 1, W) message tokens."""
        msg = self.fc(cls).view(batch, -1, cls.shape[-1])
        h = self.ln(msg)
        msg = msg + self.attn(h, h, h, need_weights=False)[0]
        return msg.reshape(-1, 1, cls.shape[-1])


class PromptGeneratorLayer(nn.Module):
    """Text embeddings (queries) attend to the clip's visual tokens, then an MLP; both residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.ln_q = LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, attention_heads(dim), batch_first=True)
        self.ln_mlp = LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        q = self.ln_q(text)
        text = text + self.cross_attn(q, visual, visual, need_weights=False)[0]
        return text + self.mlp(self.ln_mlp(text))


class VideoSpecificPrompt(nn.Module):
    """Two prompt-generator layers; the output is scaled per channel by alpha (init 0.1)."""

    def __init__(self, dim: int, layers: int = 2, alpha: float = 0.1):
        super().__init__()
        self.ln_visual = LayerNorm(dim)
        self.layers = nn.ModuleList(PromptGeneratorLayer(dim) for _ in range(layers))
        self.alpha = nn.Parameter(torch.full((dim,), float(alpha)))

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """(B, C, D) text, (B, N, D) visual -> (B, C, D) prompt to add to the text."""
        visual = self.ln_visual(visual)
        for layer in self.layers:
            text = layer(text, visual)
        return self.alpha * text


@register_model("xclip")
class XCLIP(VideoCLIP):
    """X-CLIP on an open_clip ViT; text prompt is the bare class name.

    Args:
        mit_layers: depth of the multi-frame integration transformer (1 in X-CLIP).
        prompt_layers: cross-attention layers of the video-specific prompt generator (2 in X-CLIP).
        prompt_alpha: initial value of the learnable prompt scale.
    """

    default_templates = XCLIP_TEMPLATES

    def __init__(
        self,
        backbone: CLIP,
        num_frames: int = 8,
        mit_layers: int = 1,
        prompt_layers: int = 2,
        prompt_alpha: float = 0.1,
        **kwargs,
    ):
        super().__init__(backbone, num_frames=num_frames, **kwargs)
        visual = backbone.visual
        if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None or visual.pool_type != "tok":
            raise ValueError("X-CLIP needs a plain open_clip ViT image tower (cls-token pooling, no attention pool)")
        blocks = visual.transformer.resblocks
        if visual.final_ln_after_pool or not all(isinstance(b, ResidualAttentionBlock) for b in blocks):
            raise ValueError("X-CLIP needs open_clip's default residual attention blocks and ln_post before pooling")
        width, dim = visual.transformer.width, self.embed_dim
        self.messages = nn.ModuleList(CrossFrameMessage(width) for _ in blocks)
        self.mit = TransformerFusion(dim, num_frames, layers=mit_layers)
        self.visual_ln = LayerNorm(dim)
        self.visual_proj = nn.Linear(dim, dim)
        self.prompt = VideoSpecificPrompt(dim, layers=prompt_layers, alpha=prompt_alpha)

    def frame_features(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 3, H, W) -> frame embeddings (B, T, D) and time-averaged patch embeddings (B, N, D)."""
        if isinstance(frames, torch.Tensor) and frames.ndim == 3:
            raise ValueError("X-CLIP: precomputed frame embeddings (B, T, D) cannot be used: its cross-frame messages "
                             "act inside every block of the image encoder, so it needs pixel frames (B, T, 3, H, W)")
        frames = self._check_frames(frames)
        b, t = frames.shape[:2]
        v = self.backbone.visual
        x = v.conv1(frames.flatten(0, 1)).flatten(2).transpose(1, 2)  # (B*T, N, W)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        if x.shape[1] != v.positional_embedding.shape[0]:
            raise ValueError(f"frames {tuple(frames.shape[-2:])}: the backbone expects {tuple(v.image_size)} images")
        x = v.ln_pre(x + v.positional_embedding.to(x.dtype))
        for block, message in zip(v.transformer.resblocks, self.messages, strict=True):
            x = self._block(block, x, message(x[:, 0], b))
        x = v.ln_post(x)
        frame_emb = (x[:, 0] @ v.proj).view(b, t, -1)
        patches = x[:, 1:].reshape(b, t, x.shape[1] - 1, -1).mean(dim=1) @ v.proj
        return frame_emb, patches

    @staticmethod
    def _block(block: ResidualAttentionBlock, x: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
        """An open_clip block whose attention also sees the frame's message token (dropped afterwards)."""
        h = block.ln_1(torch.cat([x, message], dim=1))
        x = x + block.ls_1(block.attn(h[:, :-1], h, h, need_weights=False)[0])
        return x + block.ls_2(block.mlp(block.ln_2(x)))

    def video_context(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frame_emb, patches = self.frame_features(frames)
        return self.mit(frame_emb), self.visual_proj(self.visual_ln(patches))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        return self.video_context(frames)[0]

    def adapt_text(self, text: torch.Tensor, context: Any) -> torch.Tensor:
        """(C, D) class embeddings -> (B, C, D): each video gets its own prompt-refined text."""
        text = text.unsqueeze(0).expand(context.shape[0], -1, -1)
        return text + self.prompt(text, context)
