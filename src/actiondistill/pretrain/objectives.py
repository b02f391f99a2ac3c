"""Training steps of the embedded CLIPs, registered with the one Trainer: `clip_contrastive`, `tinyclip_distill`.

Batches come from `FrameCaptionDataset`: {"image", "caption", "attributes", "mentions", "index"}.

Positives. CLIP's InfoNCE takes pair i as the only positive of row i. Frame captions of a small world repeat
and name few attributes ("a red star" is true of every red star in the batch), so `positives="matching"`
(default) counts every caption that is true of an image as a positive: caption j is true of image i when i has
every attribute j names. The target of each row is uniform over its positives, in both directions; with
distinct, fully specific captions that is exactly `clip_infonce`. `positives="pairs"` is plain CLIP (and, for
distillation, `tinyclip_loss`).

Attribute heads. From random initialisation the text tower embeds "a red object" and "a blue object" almost
identically, so in-batch contrast gives the image tower no colour signal, and the text tower gets none either
because the images do not differ by colour: both stay at chance. Measured on the embedded world (batch 32, 300
steps): 13% zero-shot colour, where chance is 12.5%. Scoring the image embedding against text embeddings of every
value's prompt does not break that symmetry (9%). Free heads on the image embedding (`CosineHead`), one per caption
attribute and trained with cross-entropy on the attribute the caption was written from, do. The image tower
separates the values and the text tower follows through the contrastive loss. A linear colour head gave 55%
zero-shot colour in the same 300 steps; the default `pretrain-clip` recipe, with cosine heads on all four caption
attributes, gives 42%. `attach_attribute_heads` adds them to the CLIP for pretraining; `detach_pretraining_heads`
removes them before the weights are saved, so zero-shot recognition still goes through text alone.

State head. Optional (`state_weight` > 0): a linear head regressing the main object's per-frame state
(`pretrain.state`) from the image embedding, so that the embedding keeps where the object is, which the actions
need. Like the attribute heads it is pretraining-only; `detach_pretraining_heads` removes both.
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
#: Where the pretraining-only heads live on the CLIP while it trains.
HEADS_ATTRIBUTE = "attribute_heads"
STATE_HEAD_ATTRIBUTE = "state_head"
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


class CosineHead(nn.Module):
    """Logits `scale * cos(embedding, class vector)`: CLIP's own scoring, with free class vectors for text.

    A plain linear layer on unit-norm embeddings starts with logits near 0 and needs hundreds of steps to grow its
    weights; at CLIP's initial temperature (scale 1/0.07) the heads learn within the pretraining's few dozen steps.
    """

    def __init__(self, dim: int, classes: int, scale: float = 1 / 0.07):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * dim**-0.5)
        self.scale = scale

    def forward(self, embedding: Tensor) -> Tensor:
        return self.scale * F.normalize(embedding, dim=-1) @ F.normalize(self.weight, dim=-1).T


def attach_attribute_heads(model: nn.Module, classes: Sequence[int]) -> nn.ModuleList:
    """Add one `CosineHead` per caption attribute (`classes[a]` values) on the image embedding; returns them."""
    heads = nn.ModuleList(CosineHead(int(model.visual.output_dim), n) for n in classes)
    setattr(model, HEADS_ATTRIBUTE, heads)
    return heads


def attach_state_head(model: nn.Module, outputs: int) -> nn.Linear:
    """Add a linear regression head with `outputs` values on the image embedding; returns it."""
    head = nn.Linear(int(model.visual.output_dim), outputs)
    setattr(model, STATE_HEAD_ATTRIBUTE, head)
    return head


def detach_pretraining_heads(model: nn.Module) -> None:
    """Remove the attribute and state heads (if any), leaving a plain CLIP that `create_backbone` loads strictly."""
    for name in (HEADS_ATTRIBUTE, STATE_HEAD_ATTRIBUTE):
        if hasattr(model, name):
            delattr(model, name)


def attribute_loss(model: nn.Module, image_emb: Tensor, attributes: Tensor, known: Tensor) -> Tensor:
    """Sum over attributes of the heads' cross-entropy, each over the frames whose value is known.

    A sum, not a mean, so that each attribute's term weighs as much as the contrastive loss at weight 1.

    Args:
        image_emb: (B, D) unit-norm image embeddings from the contrastive forward pass.
        attributes: (B, A) value ids; known: (B, A) bool, False where a frame has no value (size while growing).
    """
    heads = getattr(unwrap_model(model), HEADS_ATTRIBUTE, None)
    if heads is None or len(heads) != attributes.shape[1]:
        raise ValueError(f"attribute loss: expected {attributes.shape[1]} heads from attach_attribute_heads on the "
                         "model being trained")
    losses = [F.cross_entropy(head(image_emb[known[:, a]]), attributes[known[:, a], a])
              for a, head in enumerate(heads) if bool(known[:, a].any())]
    return torch.stack(losses).sum()


def state_loss(model: nn.Module, image_emb: Tensor, state: Tensor) -> Tensor:
    """Smooth L1 (beta 0.1) between the state head's output and the frames' state, averaged over values.

    The head reads the unit-norm embedding times sqrt(D), whose entries are of order 1 like the targets, so it does
    not first have to grow its weights by that factor.

    Args:
        image_emb: (B, D) unit-norm image embeddings; state: (B, S) targets (`pretrain.state.frame_states`).
    """
    head = getattr(unwrap_model(model), STATE_HEAD_ATTRIBUTE, None)
    if head is None or head.out_features != state.shape[1]:
        raise ValueError(f"state loss: expected a head with {state.shape[1]} outputs from attach_state_head on the "
                         "model being trained")
    return F.smooth_l1_loss(head(image_emb * image_emb.shape[1] ** 0.5), state, beta=0.1)


def _check_positives(positives: str) -> str:
    if positives not in POSITIVES:
        raise ValueError(f"positives={positives!r}: expected one of {POSITIVES}")
    return positives


def _check_weight(weight: float, name: str) -> float:
    if weight < 0:
        raise ValueError(f"{name}={weight}: expected 0 (off) or a positive weight")
    return float(weight)


class _HeadLosses:
    """The pretraining heads' terms both objectives add: `attribute_weight` x attribute loss, `state_weight` x state
    loss (each skipped at weight 0)."""

    def __init__(self, attribute_weight: float, state_weight: float):
        self.attribute_weight = _check_weight(attribute_weight, "attribute_weight")
        self.state_weight = _check_weight(state_weight, "state_weight")

    def add(self, loss: Tensor, metrics: dict[str, Any], model: nn.Module, image_emb: Tensor,
            batch: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """(loss plus the weighted head losses, the metrics with "loss" and each head's unweighted loss)."""
        if self.attribute_weight:
            attr = attribute_loss(model, image_emb, batch["attributes"], batch["known"])
            loss = loss + self.attribute_weight * attr
            metrics = {**metrics, "attribute": attr.detach()}
        if self.state_weight:
            if "state" not in batch:
                raise ValueError("state_weight > 0 needs batches with a 'state' (FrameCaptionDataset(states=...))")
            state = state_loss(model, image_emb, batch["state"])
            loss = loss + self.state_weight * state
            metrics = {**metrics, "state": state.detach()}
        return loss, {"loss": loss.detach(), **metrics}


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
    """CLIP pretraining from (frame, caption) batches: InfoNCE with the model's learnable logit scale.

    `attribute_weight` > 0 adds that multiple of `attribute_loss` (the model needs `attach_attribute_heads`),
    `state_weight` > 0 that multiple of `state_loss` (`attach_state_head`).
    """

    def __init__(self, positives: str = "matching", attribute_weight: float = 0.0, state_weight: float = 0.0):
        self.positives = _check_positives(positives)
        self.heads = _HeadLosses(attribute_weight, state_weight)

    def __call__(self, model: nn.Module, batch: dict[str, Any], teachers: Mapping[str, Teacher],
                 labels_text: Sequence[str]) -> tuple[Tensor, dict[str, Any]]:
        image_emb, text_emb, scale, matches = _student_forward(model, batch)
        if self.positives == "pairs":
            loss = clip_infonce(image_emb, text_emb, scale)
        else:
            loss = matching_infonce(image_emb, text_emb, scale, matches)
        metrics = {"acc": _match_accuracy(image_emb, text_emb, matches), "logit_scale": scale.detach()}
        return self.heads.add(loss, metrics, model, image_emb, batch)


@register_objective("tinyclip_distill")
class TinyCLIPDistill:
    """TinyCLIP's affinity mimicking against a frozen CLIP teacher, blended with the student's own CLIP loss.

    loss = blend * affinity_mimicking(student, teacher) + (1 - blend) * contrastive(student), which with
    `positives="pairs"` is `tinyclip_loss`; the teacher (the `teacher` entry of the Trainer's teachers, an
    open_clip CLIP) encodes the same frames and captions. `attribute_weight` and `state_weight` add the student's
    head losses, as in `CLIPContrastive`.
    """

    def __init__(self, blend: float = 0.5, positives: str = "matching", teacher: str = "teacher",
                 attribute_weight: float = 0.0, state_weight: float = 0.0):
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend={blend}: expected a value in [0, 1]")
        self.blend = blend
        self.positives = _check_positives(positives)
        self.teacher = teacher
        self.heads = _HeadLosses(attribute_weight, state_weight)

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
        metrics = {"mimic": mimic.detach(), "contrast": contrast.detach(),
                   "acc": _match_accuracy(s_img, s_txt, matches), "logit_scale": s_scale.detach()}
        return self.heads.add(loss, metrics, model, s_img, batch)
