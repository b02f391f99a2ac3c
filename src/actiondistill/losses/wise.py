"""WISE (Weighted Inference with Scaled Ensemble, Soufleri et al., 2024): early exit over ordered classifiers.

The internal classifiers (ICs) of the three compressed-domain networks are ordered by cost, in PKD: residual
IC1-4, MV IC1-4, I-frame IC1-4 (IC4 = the network's final fc). For every prefix of k ICs a weight vector w^(k)
scales an ensemble z_k = (sum_{i<k} w^(k)_i * logit_i) / k. Inference walks the prefixes and exits at the first k
whose max softmax(z_k) exceeds a threshold; samples that never do fall back to a fixed weighted sum of the final
classifiers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

#: Indices of the final classifiers (each network's IC4) in PKD's 12-IC order residual, MV, I-frame.
PKD_FINAL_INDICES = (3, 7, 11)
#: CoViAR's fusion of the final scores in that order: 1 * residual + 1 * MV + 2 * I-frame.
PKD_FALLBACK_WEIGHTS = (1.0, 1.0, 2.0)


def _stack(logits_list: Sequence[Tensor]) -> Tensor:
    """(K, N, C) from K logits tensors of one shape (N, C)."""
    if len(logits_list) == 0:
        raise ValueError("logits_list: expected at least one (N, C) logits tensor")
    shapes = {tuple(t.shape) for t in logits_list}
    if len(shapes) != 1 or logits_list[0].dim() != 2:
        raise ValueError(f"logits_list: expected tensors of one (N, C) shape, got shapes {sorted(shapes)}")
    return torch.stack([t.detach().float() for t in logits_list])


def _prefix_logits(stacked: Tensor, weights: Tensor) -> Tensor:
    """z_k for all k at once: (K, N, C) from weights (K, K) whose row k-1 holds w^(k) in its first k entries."""
    K = stacked.shape[0]
    mask = torch.ones(K, K, device=stacked.device).tril()
    ks = torch.arange(1, K + 1, device=stacked.device, dtype=stacked.dtype)
    return torch.einsum("ki,inc->knc", weights * mask, stacked) / ks[:, None, None]


def fit_wise_weights(
    logits_list: Sequence[Tensor],
    labels: Tensor,
    iterations: int = 500,
    lr: float = 0.1,
    progress: bool = True,
) -> list[Tensor]:
    """Fit one weight vector per prefix on saved (training-set) logits: w^(k) in R^k, init 1, SGD on CE(z_k, y).

    Full-batch gradient descent, as in the reference (SGD lr 0.1, 500 iterations). All K fits run together in one
    lower-triangular (K, K) parameter: the objective is the sum of the K independent losses and each w^(k) only
    enters its own loss, so every step is exactly the step of K separate fits.

    Returns:
        K tensors; the k-th (1-based) has shape (k,).
    """
    stacked = _stack(logits_list)
    K, N, _ = stacked.shape
    if labels.shape != (N,):
        raise ValueError(f"labels: expected shape ({N},) to match the logits, got {tuple(labels.shape)}")
    if iterations < 0 or lr <= 0:
        raise ValueError(f"expected iterations >= 0 and lr > 0, got iterations={iterations}, lr={lr}")
    labels = labels.to(stacked.device).long()
    weights = torch.ones(K, K, device=stacked.device, requires_grad=True)
    optimiser = torch.optim.SGD([weights], lr=lr)
    with torch.enable_grad():
        for _ in tqdm(range(iterations), desc="WISE fit", disable=not progress, leave=False):
            optimiser.zero_grad()
            z = _prefix_logits(stacked, weights)
            loss = F.cross_entropy(z.reshape(K * N, -1), labels.repeat(K), reduction="none").view(K, N).mean(1).sum()
            loss.backward()
            optimiser.step()
    fitted = weights.detach()
    return [fitted[k, : k + 1].clone() for k in range(K)]


def wise_predict(
    logits_list: Sequence[Tensor],
    weights: Sequence[Tensor],
    threshold: float,
    fallback_weights: Sequence[float] = PKD_FALLBACK_WEIGHTS,
    fallback_indices: Sequence[int] = PKD_FINAL_INDICES,
) -> tuple[Tensor, Tensor]:
    """Early-exit prediction for a batch.

    Args:
        logits_list: K ordered ICs' logits, each (N, C).
        weights: the K prefix weight vectors from `fit_wise_weights`.
        threshold: exit at the first k with max softmax(z_k) > threshold (strictly).
        fallback_weights: weights of the fallback sum over the final classifiers.
        fallback_indices: which entries of logits_list are the final classifiers (default: PKD's 12-IC order,
            IC4 of residual, MV and I-frame networks).

    Returns:
        pred (N,) class indices and exit_index (N,): k - 1 for an exit after the first k ICs (0-based index of the
        last IC evaluated), or K for the fallback (all K ICs were evaluated and none was confident).
    """
    stacked = _stack(logits_list)
    K, N, _ = stacked.shape
    if len(weights) != K or any(w.shape != (k + 1,) for k, w in enumerate(weights)):
        shapes = [tuple(w.shape) for w in weights]
        raise ValueError(f"weights: expected {K} vectors of lengths 1..{K}, got shapes {shapes}")
    if len(fallback_weights) != len(fallback_indices) or not fallback_indices:
        raise ValueError(f"fallback_weights {list(fallback_weights)} and fallback_indices {list(fallback_indices)} "
                         "must be non-empty and of the same length")
    if any(not 0 <= i < K for i in fallback_indices):
        raise ValueError(f"fallback_indices {list(fallback_indices)} out of range for {K} classifiers")
    square = torch.zeros(K, K, device=stacked.device)
    for k, w in enumerate(weights):
        square[k, : k + 1] = w.to(stacked.device).float()
    z = _prefix_logits(stacked, square)  # (K, N, C)
    confidence, prefix_pred = torch.softmax(z, dim=2).max(dim=2)  # (K, N)
    confident = confidence > threshold
    any_exit = confident.any(dim=0)
    first = confident.float().argmax(dim=0)  # first True along K (0 where none)
    fw = torch.tensor(list(fallback_weights), device=stacked.device, dtype=stacked.dtype)
    fallback_pred = torch.einsum("j,jnc->nc", fw, stacked[list(fallback_indices)]).argmax(dim=1)
    arange = torch.arange(N, device=stacked.device)
    pred = torch.where(any_exit, prefix_pred[first, arange], fallback_pred)
    exit_index = torch.where(any_exit, first, torch.full_like(first, K))
    return pred, exit_index
