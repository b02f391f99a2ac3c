"""Checkpoints: the full training state, written atomically so an interrupted write never replaces a good file.

A Trainer checkpoint is a dict: model, optimizer, scheduler, scaler (state dicts), epoch (epochs completed),
global_step, rng (python/numpy/torch/cuda), history (the metric log), config (the run's config as a dict),
best (the monitored metric's best value). Everything in it is readable with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from actiondistill.io import atomic_save
from actiondistill.models.checkpoints import model_state

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    return atomic_save(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such checkpoint file")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several unrelated types for corrupt or foreign files
        raise ValueError(f"{p}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err


def load_model_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights from any of the checkpoint forms `model_state` understands, strictly (names must match)."""
    state = model_state(load_checkpoint(path))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path}: weights do not fit {type(model).__name__}: missing {result.missing_keys[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")
    return model
