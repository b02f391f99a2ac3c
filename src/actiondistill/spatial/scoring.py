"""The arithmetic of CLIP-based spatial prediction: prompt ensembles, per-frame probabilities, frame aggregation.

Per clip: K frame embeddings are compared (cosine) with one text embedding per concept; a concept's text embedding
is the renormalised mean of its prompts' unit embeddings (CLIP's prompt ensembling, which averages away the quirks
of any one phrasing). Single-label vocabularies get a softmax over concepts at a temperature (CLIP's own logit
scale of 100 is a temperature of 0.01); multi-label ones get, per concept, a two-way softmax of the concept against
"negative" prompts, i.e. sigmoid((cos_concept - cos_negative) / T), so concepts do not compete. The K per-frame
probabilities are then averaged (default: what the clip shows on average) or max-pooled (what it shows at some
point; single-label rows are renormalised to sum to 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor

from actiondistill.spatial.vocab import Vocabulary

AGGREGATIONS = ("mean", "max")
TextEncoder = Callable[[list[str]], Tensor]


def ensemble_text_embeddings(encode: TextEncoder, vocab: Vocabulary) -> Tensor:
    """(C, D) unit text embeddings of the concepts: the mean of each concept's unit prompt embeddings, renormalised.

    `encode(prompts) -> (len(prompts), D)` is the CLIP text encoder (raw, unnormalised embeddings).
    """
    prompts = vocab.all_prompts()
    embeddings = F.normalize(encode(prompts).float(), dim=-1)
    if embeddings.shape[0] != len(prompts):
        raise ValueError(f"text encoder: {embeddings.shape[0]} embeddings for {len(prompts)} prompts")
    return F.normalize(embeddings.view(len(vocab), len(vocab.templates), -1).mean(dim=1), dim=-1)


def negative_text_embedding(encode: TextEncoder, prompts: Sequence[str]) -> Tensor:
    """(D,) unit embedding of the "none of these" prompts of a multi-label vocabulary (their ensemble)."""
    return F.normalize(F.normalize(encode(list(prompts)).float(), dim=-1).mean(dim=0), dim=-1)


def frame_probabilities(images: Tensor, text: Tensor, temperature: float, negative: Tensor | None = None) -> Tensor:
    """(..., K, D) frame embeddings and (C, D) concept embeddings -> (..., K, C) per-frame probabilities.

    Without `negative`: softmax over the C concepts of cos / temperature. With a (D,) `negative` embedding:
    sigmoid((cos - cos_negative) / temperature) per concept (multi-label).
    """
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}: expected > 0")
    images = F.normalize(images.float(), dim=-1)
    scores = images @ F.normalize(text.float(), dim=-1).T
    if negative is None:
        return (scores / temperature).softmax(dim=-1)
    background = images @ F.normalize(negative.float(), dim=-1)
    return ((scores - background.unsqueeze(-1)) / temperature).sigmoid()


def aggregate_frames(probs: Tensor, how: str = "mean", multi_label: bool = False) -> Tensor:
    """(..., K, C) per-frame probabilities -> (..., C) per clip: the mean over frames, or the max over frames
    (renormalised to a distribution for single-label vocabularies)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregate={how!r}: expected one of {AGGREGATIONS}")
    if how == "mean":
        return probs.mean(dim=-2)
    peak = probs.amax(dim=-2)
    return peak if multi_label else peak / peak.sum(dim=-1, keepdim=True)
