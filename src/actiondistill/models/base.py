"""The interface every CLIP-based video model shares: video and text encoders, logits, template averaging.

Conventions (REFERENCE.md, ActionCLIP):
- frames are float (B, T, 3, H, W), already CLIP-normalised; embeddings are returned un-normalised and
  normalised only when logits are formed;
- training: one random template per label per call (seedable generator), learnable logit scale
  (the backbone's CLIP `logit_scale`, initialised ln(1/0.07) on a fresh backbone), exp'd and clamped at 100;
- eval: the text embeddings of all templates are computed once per (labels, templates) and cached;
  `forward` scores against the mean of the normalised template embeddings at a fixed scale
  (`eval_logit_scale`, 100), while `predict_proba` follows the ActionCLIP test protocol exactly:
  softmax over classes per template, then the mean over templates. With one template the two agree.

Subclasses implement `fuse_frames` (per-frame embeddings -> video embedding), so `encode_video` takes either
pixels or precomputed frame embeddings (a frozen image encoder's output, cached once: actiondistill.frame_cache).
Models whose image encoder itself mixes frames (X-CLIP) override `encode_video` and refuse embeddings; models whose
text depends on the video (X-CLIP) also override `video_context` / `adapt_text`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from open_clip import CLIP
from torch import nn
from tqdm.auto import tqdm

from actiondistill.models.backbones import get_tokenizer
from actiondistill.models.prompts import check_label_list, format_prompts, validate_templates
from actiondistill.models.text_encoding import FrozenTextPrefix, encode_tokens

_TEXT_CHUNK = 256
_MAX_CACHED = 8


class VideoCLIP(nn.Module):
    """Base class: a CLIP backbone plus whatever turns frame features into one video embedding."""

    default_templates: tuple[str, ...] = ("{}",)

    def __init__(
        self,
        backbone: CLIP,
        num_frames: int = 8,
        templates: Sequence[str] | None = None,
        eval_logit_scale: float = 100.0,
        max_logit_scale: float = 100.0,
        template_seed: int = 0,
        progress: bool = True,
        trainable_text_blocks: int | None = None,
        logit_scale_init: float | None = None,
    ):
        super().__init__()
        if not isinstance(backbone, CLIP):
            raise ValueError(f"backbone: expected an open_clip CLIP model, got {type(backbone).__name__}")
        if num_frames < 1:
            raise ValueError(f"num_frames={num_frames}: expected >= 1")
        self.backbone = backbone
        self.num_frames = num_frames
        self.templates = validate_templates(templates if templates is not None else self.default_templates)
        self.eval_logit_scale = float(eval_logit_scale)
        self.max_logit_scale = float(max_logit_scale)
        self.progress = progress
        self.template_generator = torch.Generator().manual_seed(template_seed)
        self.tokenizer = get_tokenizer(backbone)
        self._text_cache: dict[tuple, torch.Tensor] = {}
        self._text_prefix: FrozenTextPrefix | None = None
        if logit_scale_init is not None:
            self.start_logit_scale(logit_scale_init)
        if trainable_text_blocks is not None:
            layers = len(backbone.transformer.resblocks)
            if not 1 <= trainable_text_blocks <= layers:
                raise ValueError(f"trainable_text_blocks={trainable_text_blocks}: expected 1..{layers} (the text "
                                 "tower's blocks) or None (all)")
            if trainable_text_blocks < layers:
                self.freeze_text_blocks(layers - trainable_text_blocks)

    # ----------------------------------------------------------------- parameters and modes
    @property
    def embed_dim(self) -> int:
        return int(self.backbone.visual.output_dim)

    @property
    def logit_scale(self) -> nn.Parameter:
        """The learnable log-scale (CLIP's own parameter, so a pretrained CLIP brings its value)."""
        return self.backbone.logit_scale

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the CLIP encoders (small learning rate in ActionCLIP's recipe)."""
        return self.backbone.parameters()

    def fusion_parameters(self) -> Iterator[nn.Parameter]:
        """Everything added on top of CLIP: fusion heads, prompt generators (ActionCLIP: lr x10)."""
        backbone_ids = {id(p) for p in self.backbone.parameters()}
        return (p for p in self.parameters() if id(p) not in backbone_ids)

    def start_logit_scale(self, scale: float) -> None:
        """Set the training logit scale (the backbone's `logit_scale` is its log) before fine-tuning starts.

        Why: ActionCLIP fine-tunes from a CLIP whose learned scale has reached the clamp of 100; the embedded CLIPs'
        short pretraining leaves theirs near its initial 14, and with label texts as close as "moving left" and
        "rolling left" a scale of 14 bounds how far apart their logits can get. A model option (`logit_scale_init`),
        so it is recorded in the run's config; weights loaded afterwards (a trained checkpoint) bring their own.
        """
        if not 0.0 < scale <= self.max_logit_scale:
            raise ValueError(f"logit_scale_init={scale}: expected a scale in (0, {self.max_logit_scale:g}]")
        with torch.no_grad():
            self.backbone.logit_scale.fill_(math.log(scale))

    def freeze_text_blocks(self, blocks: int) -> None:
        """Freeze the token table, the positional embedding and the first `blocks` text blocks, and cache their output
        per prompt (`FrozenTextPrefix`): a training step then runs only the text blocks above. Why: training the
        whole text tower is most of a step's cost on cached frame embeddings, and the labels' prompts never change.
        The constructor's `trainable_text_blocks` (a model option, so it is recorded in the run's config) calls it."""
        self._text_prefix = FrozenTextPrefix(self.backbone, blocks)

    @property
    def frozen_text_blocks(self) -> int:
        return self._text_prefix.blocks if self._text_prefix is not None else 0

    def seed_templates(self, seed: int) -> None:
        """Make the training-time template draws reproducible."""
        self.template_generator.manual_seed(seed)

    def train(self, mode: bool = True) -> VideoCLIP:
        if mode:
            self.clear_text_cache()
        return super().train(mode)

    def clear_text_cache(self) -> None:
        """Drop cached eval text embeddings (automatic on train(), .to(), and any in-place weight change)."""
        self._text_cache.clear()

    def _apply(self, fn, *args, **kwargs):
        self.clear_text_cache()  # .to()/.half() move weights: cached embeddings would be on the old device/dtype
        if getattr(self, "_text_prefix", None) is not None:
            self._text_prefix.clear()
        return super()._apply(fn, *args, **kwargs)

    # ----------------------------------------------------------------- encoders
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) float frames, or (B, T, D) frame embeddings from `encode_frames`, -> (B, D) (not normalised).

        Dispatches on the rank: embeddings skip the image encoder, which is what makes training on cached
        features of a frozen encoder exactly equal to training on pixels.
        """
        if isinstance(frames, torch.Tensor) and frames.ndim == 3:
            return self.fuse_frames(self._check_embeddings(frames))
        return self.fuse_frames(self.encode_frames(frames))

    def fuse_frames(self, frame_embeddings: torch.Tensor) -> torch.Tensor:
        """The temporal part of the model: (B, T, D) frame embeddings -> (B, D) video embedding."""
        raise NotImplementedError

    @property
    def accepts_frame_embeddings(self) -> bool:
        """True when encode_video is exactly "encode each frame, then fuse_frames", so per-frame embeddings
        (cached, or streamed) can stand in for pixels; False for models that mix frames inside the image encoder."""
        cls = type(self)
        return cls.encode_video is VideoCLIP.encode_video and cls.fuse_frames is not VideoCLIP.fuse_frames

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame CLIP image embeddings, (B, T, 3, H, W) -> (B, T, D)."""
        frames = self._check_frames(frames)
        b, t = frames.shape[:2]
        return self.backbone.encode_image(frames.flatten(0, 1)).view(b, t, -1)

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Raw CLIP text embeddings of ready-made prompt strings, (N,) -> (N, D)."""
        device = self.backbone.token_embedding.weight.device
        chunks = range(0, len(prompts), _TEXT_CHUNK)
        show = self.progress and len(chunks) > 4
        out = [
            encode_tokens(self.backbone, self.tokenizer(list(prompts[i : i + _TEXT_CHUNK])).to(device),
                          prefix=self._text_prefix)
            for i in tqdm(chunks, desc="text prompts", disable=not show, leave=False)
        ]
        return torch.cat(out, dim=0)

    def encode_text(self, labels: Sequence[str]) -> torch.Tensor:
        """(C,) labels -> (C, D) text embeddings.

        Training: each label wrapped in one randomly drawn template (fresh draw per call). Eval: the
        mean over all templates of the normalised embeddings (cached; see `text_templates`).
        """
        labels = check_label_list(labels)
        if self.training:
            picks = torch.randint(len(self.templates), (len(labels),), generator=self.template_generator)
            prompts = [self.templates[int(k)].format(label) for k, label in zip(picks, labels, strict=True)]
            return self.encode_prompts(prompts)
        return self.text_templates(labels).mean(dim=0)

    def text_templates(self, labels: Sequence[str], templates: Sequence[str] | None = None) -> torch.Tensor:
        """(K, C, D) normalised text embeddings of every template x label.

        In eval mode the result is cached per (labels, templates, text-weight versions) and computed
        without gradients; any in-place change of the text weights (optimizer step, load_state_dict)
        bumps their version counters and so misses the cache.
        """
        labels = check_label_list(labels)
        templates = self.templates if templates is None else validate_templates(templates)
        if self.training:
            return self._encode_templates(labels, templates)
        key = (tuple(labels), templates, self._text_weights_version())
        if key not in self._text_cache:
            if len(self._text_cache) >= _MAX_CACHED:
                self._text_cache.clear()
            with torch.no_grad():
                self._text_cache[key] = self._encode_templates(labels, templates)
        return self._text_cache[key]

    def _encode_templates(self, labels: list[str], templates: tuple[str, ...]) -> torch.Tensor:
        text = self.encode_prompts(format_prompts(labels, templates))
        return F.normalize(text, dim=-1).view(len(templates), len(labels), -1)

    def _text_weights_version(self) -> tuple[int, ...]:
        return tuple(p._version for name, p in self.backbone.named_parameters() if not name.startswith("visual."))

    # ----------------------------------------------------------------- scoring
    def video_context(self, frames: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """(video embedding (B, D), anything `adapt_text` needs); plain models need nothing."""
        return self.encode_video(frames), None

    def adapt_text(self, text: torch.Tensor, context: Any) -> torch.Tensor:
        """Text embeddings as the logits see them: (C, D) here, (B, C, D) for video-conditioned prompts."""
        return text

    def current_logit_scale(self) -> torch.Tensor:
        if self.training:
            return self.logit_scale.exp().clamp(max=self.max_logit_scale)
        return self.logit_scale.new_tensor(self.eval_logit_scale)

    @staticmethod
    def cosine_logits(video: torch.Tensor, text: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
        """scale * cos(video, text): (B, D) x (C, D) or per-video (B, C, D) -> (B, C)."""
        video = F.normalize(video, dim=-1)
        text = F.normalize(text, dim=-1)
        if text.ndim == 2:
            return scale * video @ text.t()
        return scale * torch.einsum("bd,bcd->bc", video, text)

    def forward(self, frames: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
        """(B, T, 3, H, W) frames and C labels -> (B, C) logits."""
        video, context = self.video_context(frames)
        text = self.adapt_text(self.encode_text(labels), context)
        return self.cosine_logits(video, text, self.current_logit_scale())

    def predict_proba(
        self, frames: torch.Tensor, labels: Sequence[str], templates: Sequence[str] | None = None
    ) -> torch.Tensor:
        """(B, C) class probabilities: softmax over classes per template, averaged over templates."""
        return self.template_probs(frames, self.text_templates(labels, templates))

    def template_probs(self, frames: torch.Tensor, text_templates: torch.Tensor) -> torch.Tensor:
        """The ActionCLIP test protocol on precomputed (K, C, D) text embeddings, at `eval_logit_scale`."""
        video, context = self.video_context(frames)
        probs = torch.zeros(video.shape[0], text_templates.shape[1], device=video.device, dtype=video.dtype)
        for text in text_templates:
            logits = self.cosine_logits(video, self.adapt_text(text, context), self.eval_logit_scale)
            probs = probs + logits.softmax(dim=-1)
        return probs / text_templates.shape[0]

    # ----------------------------------------------------------------- helpers
    def _check_frames(self, frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.ndim != 5 or frames.shape[2] != 3:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"frames: expected a float tensor (B, T, 3, H, W) or frame embeddings (B, T, D), "
                             f"got {shape}")
        if not frames.is_floating_point():
            raise ValueError(f"frames: expected CLIP-normalised float frames, got dtype {frames.dtype}")
        return frames.to(dtype=self.backbone.visual.conv1.weight.dtype)

    def _check_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        if not embeddings.is_floating_point() or embeddings.shape[-1] != self.embed_dim:
            raise ValueError(f"frame embeddings: expected float (B, T, {self.embed_dim}) (this backbone's embedding "
                             f"size), got {embeddings.dtype} {tuple(embeddings.shape)}")
        return embeddings.to(dtype=self.logit_scale.dtype)

    def extra_repr(self) -> str:
        return f"num_frames={self.num_frames}, templates={len(self.templates)}, eval_scale={self.eval_logit_scale}"
