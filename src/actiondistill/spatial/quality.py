"""How good are spatial pseudo-labels? Measured against the synthetic world's ground truth, per objective.

For each single-label objective named after a manifest attribute:
- top1 (%): how often the target's most probable concept is the true one. A row whose maximum is shared by m
  concepts counts 1/m when the truth is among them, so a uniform (uninformative) target scores exactly chance
  rather than the share of whichever concept happens to come first;
- true_prob: the mean probability the target puts on the true concept (what a KL loss actually transfers);
- ece: expected calibration error over `bins` equal-width confidence bins (|accuracy - confidence|, weighted
  by the bin's share of clips): whether a target's confidence can be taken at face value;
- chance (%): 100 / concepts; majority (%): always guessing the most frequent true concept.
Multi-label objectives and objectives without ground truth are left out.

`head_quality` applies the same measures to a trained student's spatial heads, against the targets its dataset
carries (ground-truth targets: the heads' accuracy; CLIP targets: their agreement with the pseudo-labels).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from actiondistill.engine.distributed import unwrap_model
from actiondistill.frame_cache import manifest_file
from actiondistill.io import read_json
from actiondistill.spatial.dataset import SpatialTargetDataset
from actiondistill.spatial.targets import SpatialTargets

_TIE_ATOL = 1e-6


def quality_metrics(probs: np.ndarray, truth: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Quality of (N, C) target rows against (N,) true concept indices (see the module docstring)."""
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    if probs.ndim != 2 or truth.shape != (len(probs),) or not len(probs):
        raise ValueError(f"probs {probs.shape} and truth {truth.shape}: expected (N, C) and (N,) with N >= 1")
    if truth.min() < 0 or truth.max() >= probs.shape[1]:
        raise ValueError(f"truth: indices must lie in [0, {probs.shape[1]})")
    if bins < 1:
        raise ValueError(f"bins={bins}: expected >= 1")
    confidence = probs.max(axis=1)
    tied = np.abs(probs - confidence[:, None]) <= _TIE_ATOL
    rows = np.arange(len(probs))
    correct = tied[rows, truth] / tied.sum(axis=1)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    ece = sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
              for b in range(bins) if np.any(which == b))
    counts = np.bincount(truth, minlength=probs.shape[1])
    return {"top1": 100.0 * float(correct.mean()), "true_prob": float(probs[rows, truth].mean()), "ece": float(ece),
            "chance": 100.0 / probs.shape[1], "majority": 100.0 * float(counts.max() / len(truth)),
            "classes": int(probs.shape[1]), "clips": len(truth)}


def target_quality(targets: SpatialTargets, manifest: str | os.PathLike, splits: Sequence[str] | None = None,
                   bins: int = 10) -> dict[str, dict[str, Any]]:
    """{objective: quality_metrics} over the clips of `splits` (default all) of a SynthActions manifest."""
    path = manifest_file(manifest)
    data = read_json(path)
    attributes = data.get("attributes") or {}
    clips = [c for c in data.get("clips", []) if splits is None or c.get("split") in splits]
    if not clips:
        raise ValueError(f"{path}: no clips" + (f" in splits {list(splits)}" if splits is not None else ""))
    rows = targets.rows([path.parent / c["path"] for c in clips])
    out = {}
    for name, vocab in targets.vocabularies.items():
        if vocab.multi_label or name not in attributes:
            continue
        index = {concept: i for i, concept in enumerate(vocab.concepts)}
        truth = []
        for clip in clips:
            value = clip.get("attributes", {}).get(name)
            if value not in index:
                raise ValueError(f"{path}: clip {clip['path']}: {name}={value!r} is not a concept of the targets' "
                                 f"vocabulary {list(vocab.concepts)}")
            truth.append(index[value])
        out[name] = quality_metrics(targets.targets[name][rows], np.array(truth), bins)
    return out


@torch.no_grad()
def head_quality(model: nn.Module, data: SpatialTargetDataset, batch_size: int = 16,
                 device: str | torch.device | None = None, bins: int = 10,
                 progress: bool = True) -> dict[str, dict[str, Any]]:
    """{objective: quality_metrics} of a `spatial-multitask` model's head probabilities against the argmax of the
    targets `data` carries, for every single-label objective with both a head and targets."""
    net = unwrap_model(model)
    heads = getattr(net, "spatial_heads", None)
    if heads is None:
        raise ValueError(f"{type(net).__name__}: no spatial heads (expected a 'spatial-multitask' model)")
    names = [n for n, v in data.targets.vocabularies.items() if n in heads and not v.multi_label]
    if not names:
        raise ValueError(f"no single-label objective has both a head ({list(heads)}) and targets "
                         f"({data.targets.names})")
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval()
    probs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    truth: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    try:
        for batch in tqdm(DataLoader(data, batch_size=batch_size, shuffle=False), desc="spatial heads",
                          disable=not progress, leave=False):
            outputs = net.predict_spatial(batch["frames"].to(device))
            for name in names:
                probs[name].append(outputs[name].float().softmax(dim=1).cpu())
                truth[name].append(batch["spatial_targets"][name].argmax(dim=1))
    finally:
        net.train(was_training)
    return {n: quality_metrics(torch.cat(probs[n]).numpy(), torch.cat(truth[n]).numpy(), bins) for n in names}
