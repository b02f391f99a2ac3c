"""Accuracy against compute: WISE's threshold sweep over the 12 saved ICs, and the fixed models it is compared with.

WISE (`actiondistill.losses.wise`) fits one weight vector per prefix of the ordered ICs on training-set logits and
exits at the first prefix whose ensemble is confident enough; a clip that never is falls back to CoViAR's fusion
of the three final classifiers. Its cost for a clip is the cumulative GMACs of the exit it took (the fallback
has run every network and head); sweeping the threshold traces the accuracy-vs-GMACs curve. The fixed points are
each network's final classifier alone (that network's cost without ICs) and CoViAR's fusion 2I + MV + R (the
three networks' cost).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from actiondistill.losses import PKD_FALLBACK_WEIGHTS, PKD_FINAL_INDICES, fit_wise_weights, wise_predict
from actiondistill.models.compressed_nets import MODALITIES
from actiondistill.parallel import torch_threads
from actiondistill.pkd.experiment import CompressedResults

#: From "exit at the first IC" (0) through ever stricter exits to "never exit early" (1: softmax never exceeds it).
DEFAULT_THRESHOLDS = tuple(sorted({*np.round(np.linspace(0.0, 0.95, 20), 4).tolist(), 0.97, 0.98, 0.99, 0.995,
                                   0.999, 0.9999, 1.0}))


def wise_sweep(train_logits: Tensor, train_labels: Tensor, test_logits: Tensor, test_labels: Tensor,
               exit_gmacs: Sequence[float], thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
               iterations: int = 500, lr: float = 0.1, progress: bool = False) -> pd.DataFrame:
    """WISE fitted on (K, N_train, C) logits, evaluated on (K, N_test, C) logits at every threshold.

    Args:
        exit_gmacs: K cumulative GMACs per clip, one per exit in the logits' order (non-decreasing).

    Returns:
        One row per threshold: threshold, accuracy (%), gmacs (mean per clip), early_exit (% of clips that
        exited before the fallback).
    """
    k = train_logits.shape[0]
    if test_logits.shape[0] != k or len(exit_gmacs) != k:
        raise ValueError(f"expected {k} ICs in the test logits and exit_gmacs, got {test_logits.shape[0]} and "
                         f"{len(exit_gmacs)}")
    costs = torch.tensor([*exit_gmacs, exit_gmacs[-1]], dtype=torch.float64)  # index K: the fallback
    if bool((costs[1:] < costs[:-1]).any()):
        raise ValueError(f"exit_gmacs {list(exit_gmacs)}: expected cumulative (non-decreasing) costs")
    weights = fit_wise_weights(list(train_logits), train_labels, iterations=iterations, lr=lr, progress=progress)
    rows = []
    for threshold in thresholds:
        pred, exit_index = wise_predict(list(test_logits), weights, float(threshold))
        rows.append({"threshold": float(threshold), "accuracy": _accuracy_of(pred, test_labels),
                     "gmacs": float(costs[exit_index].mean()),
                     "early_exit": 100.0 * float((exit_index < k).float().mean())})
    return pd.DataFrame(rows)


def fixed_points(test_logits: Tensor, test_labels: Tensor, exit_gmacs: dict[str, Sequence[float]]) -> pd.DataFrame:
    """Accuracy and GMACs of each network's final classifier and of CoViAR's fusion, from (12, N, C) logits.

    Returns:
        Rows model ("residual", "mv", "iframe", "CoViAR 2I+MV+R"), accuracy (%), gmacs.
    """
    rows = []
    finals = [test_logits[i] for i in PKD_FINAL_INDICES]
    for modality, logits in zip(MODALITIES, finals, strict=True):
        rows.append({"model": modality, "accuracy": _accuracy(logits, test_labels),
                     "gmacs": float(exit_gmacs[modality][-1])})
    fused = sum(w * z for w, z in zip(PKD_FALLBACK_WEIGHTS, finals, strict=True))
    rows.append({"model": "CoViAR 2I+MV+R", "accuracy": _accuracy(fused, test_labels),
                 "gmacs": float(sum(exit_gmacs[m][-1] for m in MODALITIES))})
    return pd.DataFrame(rows)


def wise_tradeoff(results: CompressedResults, variants: Sequence[str] | None = None, fit_split: str = "train",
                  test_split: str = "test", thresholds: Sequence[float] = DEFAULT_THRESHOLDS, iterations: int = 500,
                  lr: float = 0.1) -> pd.DataFrame:
    """`wise_sweep` of every run (or of the given variants' runs): columns variant, seed and the sweep's columns.

    WISE fits on `fit_split`'s logits ("train" in PKD: the clips the networks trained on) and is evaluated on
    `test_split`'s. Runs with the experiment's `threads` setting (the fits are many tiny steps).
    """
    for split in (fit_split, test_split):
        if split not in results.labels:
            raise ValueError(f"split {split!r}: the results hold logits of {sorted(results.labels)}")
    frames = []
    with torch_threads(results.experiment.threads):
        for (variant, seed), run in results.logits.items():
            if variants is not None and variant not in variants:
                continue
            sweep = wise_sweep(run[fit_split], results.labels[fit_split], run[test_split], results.labels[test_split],
                               results.wise_gmacs, thresholds, iterations=iterations, lr=lr)
            frames.append(sweep.assign(variant=variant, seed=seed))
    if not frames:
        raise ValueError(f"variants={variants}: none of them is among the results' runs "
                         f"{sorted({v for v, _ in results.logits})}")
    return pd.concat(frames, ignore_index=True)


def _accuracy_of(pred: Tensor, labels: Tensor) -> float:
    return 100.0 * float((pred == labels).float().mean())


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    return _accuracy_of(logits.argmax(1), labels)
