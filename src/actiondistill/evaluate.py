"""Evaluation: top-1/top-5, mean class accuracy and the confusion matrix of a video model over class texts.

One function serves closed-set testing and zero-shot testing: zero-shot is the same computation on the held-out
split, scored against the held-out classes' texts only (`zero_shot_eval`). Accuracies are percentages.

Multi-view testing (several clips, or crops, per video): a dataset item may hold frames (V, T, 3, H, W), or
(V * T, 3, H, W) as consecutive clips (what a dense sampler with `num_clips=V` gives) together with `views=V`;
the per-view class probabilities are averaged. Probabilities come from `model.predict_proba` when the model has
it (ActionCLIP's test protocol: softmax per text template, then the mean over templates), else from the softmax
of `model(frames, class_texts)`. Under torchrun each rank scores its share and all ranks get the same result.
Models with selectable heads (the two-headed DeiT student) are scored head by head with `evaluate_heads`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from actiondistill.engine.distributed import all_gather_objects, shard_indices, unwrap_model


def class_texts_of(dataset: Any) -> list[str]:
    """A dataset's class texts: `class_texts` (words for the text encoder) when it has them, else `classes`."""
    texts = getattr(dataset, "class_texts", None) or getattr(dataset, "classes", None)
    if not texts:
        raise ValueError(f"{type(dataset).__name__}: expected a `classes` (or `class_texts`) list of class names")
    return list(texts)


def _views_first(frames: Tensor, views: int | None) -> Tensor:
    """(B, V, T, ...) from a batch of single- or multi-view clips of pixels (..., 3, H, W) or of precomputed frame
    embeddings (..., D) (a frozen image encoder's cached output, see actiondistill.frame_cache)."""
    per_frame = 3 if frames.ndim >= 5 else 1
    if frames.ndim == 3 + per_frame:
        if views is not None and frames.shape[1] != views:
            raise ValueError(f"frames have {frames.shape[1]} views per video, expected views={views}")
        return frames
    if frames.ndim != 2 + per_frame:
        raise ValueError(f"frames: expected (B, T, 3, H, W) or (B, V, T, 3, H, W), or frame embeddings (B, T, D) or "
                         f"(B, V, T, D), got {tuple(frames.shape)}")
    v = views or 1
    if frames.shape[1] % v:
        raise ValueError(f"frames: {frames.shape[1]} frames per video do not split into views={v} equal clips")
    return frames.view(frames.shape[0], v, frames.shape[1] // v, *frames.shape[2:])


@torch.no_grad()
def predict(model: nn.Module, frames: Tensor, class_texts: Sequence[str], views: int | None = None) -> Tensor:
    """Class probabilities (B, C) averaged over the views of each video."""
    frames = _views_first(frames, views)
    b, v = frames.shape[:2]
    flat = frames.flatten(0, 1)
    if hasattr(model, "predict_proba"):
        probs = model.predict_proba(flat, list(class_texts))
    else:
        probs = model(flat, list(class_texts)).float().softmax(dim=-1)
    return probs.float().view(b, v, -1).mean(dim=1)


def evaluate(model: nn.Module, data: Any, class_texts: Sequence[str] | None = None, views: int | None = None,
             batch_size: int = 16, device: str | torch.device | None = None, num_workers: int = 0,
             amp: bool = False, progress: bool = True, desc: str = "eval") -> dict[str, Any]:
    """Score every item of `data` against `class_texts` (default: the dataset's own class texts).

    Returns top1, top5 (top-k with k = min(5, C)), mean_class_acc (over classes with samples), per_class_acc
    (aligned with `classes`; None for a class without samples), confusion (rows: true class, columns: predicted),
    nll (mean negative log-probability of the true class), num_samples, num_classes, views and classes.
    The model is put in eval mode and restored to its previous mode afterwards.
    """
    net = unwrap_model(model)
    texts = list(class_texts) if class_texts is not None else class_texts_of(data)
    if device is None:
        param = next(net.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    loader = DataLoader(Subset(data, shard_indices(len(data))), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    was_training = net.training
    net.eval()
    probs, labels, indices = [], [], []
    autocast = torch.autocast(device.type) if amp and device.type == "cuda" else contextlib.nullcontext()
    try:
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
            with autocast:
                probs.append(predict(net, batch["frames"].to(device, non_blocking=True), texts, views).cpu())
            labels.append(torch.as_tensor(batch["label"]).long())
            indices.append(torch.as_tensor(batch["index"]).long())
    finally:
        net.train(was_training)
    num_classes = len(texts)
    local = (torch.cat(probs) if probs else torch.empty(0, num_classes), torch.cat(labels) if labels else
             torch.empty(0, dtype=torch.long), torch.cat(indices) if indices else torch.empty(0, dtype=torch.long))
    parts = all_gather_objects(local)
    all_probs, all_labels, all_indices = (torch.cat([p[i] for p in parts]) for i in range(3))
    order = all_indices.argsort()
    result = classification_metrics(all_probs[order], all_labels[order], texts)
    result["views"] = views or 1
    return result


def evaluate_heads(model: nn.Module, data: Any, class_texts: Sequence[str] | None = None,
                   heads: Sequence[str] | None = None, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """`evaluate` once per head of a model with selectable heads (`HEADS` and the `use_head` context manager, e.g.
    the two-headed DeiT student: "both" (the average, what inference uses), "frame", "token"); {head: result}.

    `heads` defaults to all of the model's heads; the other arguments are `evaluate`'s. The model's own head
    selection is restored afterwards.
    """
    net = unwrap_model(model)
    available = tuple(getattr(net, "HEADS", ()))
    if not available or not hasattr(net, "use_head"):
        raise ValueError(f"{type(net).__name__}: no selectable heads (expected a `HEADS` tuple and `use_head`, as "
                         "actionclip-twohead has)")
    chosen = available if heads is None else tuple(heads)
    unknown = [h for h in chosen if h not in available]
    if unknown or not chosen:
        raise ValueError(f"heads={list(chosen)}: expected a non-empty selection of {list(available)}")
    desc = kwargs.pop("desc", "eval")
    out = {}
    for head in chosen:
        with net.use_head(head):
            out[head] = evaluate(model, data, class_texts, desc=f"{desc} ({head})", **kwargs)
    return out


def zero_shot_eval(model: nn.Module, data: Any, class_texts: Sequence[str] | None = None,
                   **kwargs: Any) -> dict[str, Any]:
    """Zero-shot protocol: `data` is the held-out split (classes never trained on) and the model chooses among
    the held-out class texts only (default: the dataset's own class list, which its labels index)."""
    result = evaluate(model, data, class_texts, **kwargs)
    result["zero_shot"] = True
    return result


def classification_metrics(probs: Tensor, labels: Tensor, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of (N, C) class scores against (N,) integer labels; see `evaluate` for the keys."""
    num_classes = len(classes)
    if probs.ndim != 2 or probs.shape[1] != num_classes:
        raise ValueError(f"scores: expected (N, {num_classes}) for {num_classes} classes, got {tuple(probs.shape)}")
    if probs.shape[0] == 0:
        raise ValueError("no samples to evaluate (empty dataset)")
    if labels.min() < 0 or labels.max() >= num_classes:
        bad = int(labels[(labels < 0) | (labels >= num_classes)][0])
        raise ValueError(f"label {bad} out of range for {num_classes} class texts (do the texts match the split?)")
    n = labels.shape[0]
    k = min(5, num_classes)
    topk = probs.topk(k, dim=1).indices
    pred = topk[:, 0]
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones(n, dtype=torch.long), accumulate=True)
    support = confusion.sum(dim=1)
    per_class = [100.0 * float(confusion[c, c]) / float(support[c]) if support[c] > 0 else None
                 for c in range(num_classes)]
    present = [acc for acc in per_class if acc is not None]
    nll = -probs.gather(1, labels[:, None]).clamp_min(1e-12).log().mean()
    return {
        "top1": 100.0 * float((pred == labels).float().mean()),
        "top5": 100.0 * float((topk == labels[:, None]).any(dim=1).float().mean()),
        "topk": k,
        "mean_class_acc": sum(present) / len(present),
        "per_class_acc": per_class,
        "confusion": confusion.tolist(),
        "nll": float(nll),
        "num_samples": n,
        "num_classes": num_classes,
        "classes": list(classes),
    }


SCALAR_KEYS = ("top1", "top5", "mean_class_acc", "nll", "num_samples")


def scalar_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The per-epoch numbers of an evaluation result (no matrices), for logs and metric history."""
    return {key: result[key] for key in SCALAR_KEYS if key in result}
