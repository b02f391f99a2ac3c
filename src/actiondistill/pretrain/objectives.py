"""Training steps of the embedded CLIPs, registered with the one Trainer: `clip_contrastive`, `tinyclip_distill`.

Batches come from `FrameCaptionDataset`: {"image", "caption", "attributes", "mentions", "index"}.

Positives. CLIP's InfoNCE takes pair i as the only positive of row i. Frame captions of a small world repeat
and name few attributes ("a red star" is true of every red star in the batch), so `positives="matching"`
(default) counts every caption that is true of an image as a positive: caption j is true of image i when i has
every attribute j names. The target of each row is uniform over its positives, in both directions; with
distinct, fully specific captions that is exactly `clip_infonce`. `positives="pairs"` is plain CLIP (and, for
distillation, `tinyclip_loss`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actiondistill.engine.distributed import unwrap_model
from actiondistill.engine.objectives import register_objective
from actiondistill.engine.teachers import Teacher
from actiondistill.losses import affinity_mimicking_loss, clip_infonce, clip_logits

POSITIVES = ("matching", "pairs")
#: CLIP caps its learned temperature at 100: a larger multiplier only sharpens the softmax into instability.
MAX_LOGIT_SCALE = 100.0


def caption_matches(attributes: Tensor, mentions: Tensor) -> Tensor:
    """(B, B) bool: [i, j] is True when caption j is true of image i (i has every attribute caption j names).

    Args:
        attributes: (B, A) attribute ids of each image (caption j was written for image j).
        mentions: (B, A) bool, the attributes caption j names.
    """
    if attributes.shape != mentions.shape or attributes.dim() != 2:
        raise ValueError(f"attributes {tuple(attributes.shape)} and mentions {tuple(mentions.shape)}: expected the "
                         "same (B, A) shape")
    same = attributes[:, None, :] == attributes[None, :, :]
    return (same | ~mentions.bool()[None, :, :]).all(dim=-1)


def matching_infonce(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor | float, matches: Tensor) -> Tensor:
    """Symmetric InfoNCE with every true caption (and, per caption, every image it is true of) as a positive."""
    logits = clip_logits(image_emb, text_emb, logit_scale)
    if matches.shape != logits.shape or not bool(matches.diagonal().all()):
        raise ValueError(f"matches: expected a ({len(logits)}, {len(logits)}) bool matrix with a True diagonal")
    target = matches.to(logits.dtype)
    image_to_text = -(target / target.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    text_to_image = -(target.T / target.sum(0)[:, None] * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (image_to_text + text_to_image) / 2


def unique_tokens(model: nn.Module, captions: Sequence[str], device: torch.device) -> tuple[Tensor, Tensor]:
    """(U, L) tokens of the distinct captions and the (B,) index of each caption among them.

    Frame captions repeat within a batch; encoding each distinct one once and indexing the embeddings gives the
    same loss and gradients for less text-tower work.
    """
    from actiondistill.models import get_tokenizer

    tokens = get_tokenizer(unwrap_model(model))(list(captions))
    unique, inverse = torch.unique(tokens, dim=0, return_inverse=True)
    return unique.to(device), inverse.to(device)


def _check_positives(positives: str) -> str:
    if positives not in POSITIVES:
        raise ValueError(f"positives={positives!r}: expected one of {POSITIVES}")
    return positives


def _match_accuracy(image_emb: Tensor, text_emb: Tensor, matches: Tensor) -> Tensor:
    """Fraction of images whose best-scoring caption in the batch is true of them."""
    best = (image_emb @ text_emb.T).argmax(dim=1)
    return matches[torch.arange(len(best), device=best.device), best].float().mean()


def _student_forward(model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    images = batch["image"]
    tokens, inverse = unique_tokens(model, batch["caption"], images.device)
    image_emb, text_emb, scale = model(images, tokens)[:3]
    matches = caption_matches(batch["attributes"], batch["mentions"])
    return image_emb, text_emb[inverse], scale.clamp(max=MAX_LOGIT_SCALE), matches


@register_objective("clip_contrastive")
class CLIPContrastive:
    """CLIP pretraining from (frame, caption) batches: InfoNCE with the model's learnable logit scale."""

    def __init__(self, positives: str = "matching"):
        self.positives = _check_positives(positives)

    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, Any]]:
        image_emb, text_emb, scale, matches = _student_forward(model, batch)
        if self.positives == "pairs":
            loss = clip_infonce(image_emb, text_emb, scale)
        else:
            loss = matching_infonce(image_emb, text_emb, scale, matches)
        return loss, {"loss": loss.detach(), "acc": _match_accuracy(image_emb, text_emb, matches),
                      "logit_scale": scale.detach()}


@register_objective("tinyclip_distill")
class TinyCLIPDistill:
    """TinyCLIP's affinity mimicking against a frozen CLIP teacher, blended with the student's own CLIP loss.

    loss = blend * affinity_mimicking(student, teacher) + (1 - blend) * contrastive(student), which with
    `positives="pairs"` is `tinyclip_loss`; the teacher (the `teacher` entry of the Trainer's teachers, an
    open_clip CLIP) encodes the same frames and captions.
    """

    def __init__(self, blend: float = 0.5, positives: str = "matching", teacher: str = "teacher"):
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend={blend}: expected a value in [0, 1]")
        self.blend = blend
        self.positives = _check_positives(positives)
        self.teacher = teacher

    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, Any]]:
        if self.teacher not in teachers:
            raise ValueError(f"tinyclip_distill: no teacher named {self.teacher!r} (have {sorted(teachers)})")
        teacher = teachers[self.teacher].model
        images = batch["image"]
        with torch.no_grad():
            t_img = teacher.encode_image(images, normalize=True)
            tokens, inverse = unique_tokens(teacher, batch["caption"], images.device)
            t_txt = teacher.encode_text(tokens, normalize=True)[inverse]
            t_scale = teacher.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
        s_img, s_txt, s_scale, matches = _student_forward(model, batch)
        if self.positives == "pairs":
            contrast = clip_infonce(s_img, s_txt, s_scale)
        else:
            contrast = matching_infonce(s_img, s_txt, s_scale, matches)
        mimic = affinity_mimicking_loss(s_img, s_txt, t_img, t_txt, s_scale, t_scale)
        loss = self.blend * mimic + (1.0 - self.blend) * contrast
        return loss, {"loss": loss.detach(), "mimic": mimic.detach(), "contrast": contrast.detach(),
                      "acc": _match_accuracy(s_img, s_txt, matches), "logit_scale": s_scale.detach()}
