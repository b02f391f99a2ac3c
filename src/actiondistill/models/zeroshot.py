"""Zero-shot action recognition with free-text labels: any video model, any label list, cached text.

The user's label list is validated once (no blanks, no duplicates up to case and surrounding spaces),
the text side of every template x label is encoded once, and each clip is then scored with the
ActionCLIP test protocol (softmax over labels per template, averaged over templates).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from actiondistill.models.base import VideoCLIP
from actiondistill.models.prompts import validate_labels, validate_templates


class ZeroShotClassifier:
    """Scores clips against a fixed label list.

    Args:
        model: a VideoCLIP model (put in eval mode by this class).
        labels: free-text class names, e.g. ["juggling balls", "riding a bike"].
        templates: prompt templates with one '{}'; default the model's own.
    """

    def __init__(self, model: VideoCLIP, labels: Sequence[str], templates: Sequence[str] | None = None):
        self.model = model.eval()
        self.labels = validate_labels(labels)
        self.templates = model.templates if templates is None else validate_templates(templates)
        with torch.no_grad():
            self.text = model.text_templates(self.labels, self.templates)

    @torch.no_grad()
    def probs(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) or one clip (T, 3, H, W) -> (B, C) probabilities (rows sum to 1)."""
        if isinstance(frames, torch.Tensor) and frames.ndim == 4:
            frames = frames.unsqueeze(0)
        return self.model.template_probs(frames, self.text)

    def predict(self, frames: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (label, probability) pairs per clip, most likely first."""
        if k < 1:
            raise ValueError(f"k={k}: expected >= 1")
        probs = self.probs(frames)
        top = probs.topk(min(k, len(self.labels)), dim=-1)
        return [
            [(self.labels[i], float(p)) for p, i in zip(values.tolist(), indices.tolist(), strict=True)]
            for values, indices in zip(top.values, top.indices, strict=True)
        ]
