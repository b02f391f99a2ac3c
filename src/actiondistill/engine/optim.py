"""AdamW with ActionCLIP's parameter groups and a cosine schedule with linear warm-up.

Groups: the fusion (temporal) module and any new heads train `fusion_lr_mult` times faster than the pretrained
backbone (ActionCLIP: x10), because they start from scratch while CLIP's weights need only nudging. Following
common CLIP/ViT practice, biases, normalisation weights, embeddings, tokens and the logit scale get no weight
decay: decaying them pulls e.g. LayerNorm gains towards 0 and the temperature towards 1 for no regularising gain.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from actiondistill.config import OptimConfig

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.modules.batchnorm._BatchNorm,
          nn.modules.instancenorm._InstanceNorm, nn.RMSNorm)
_NO_DECAY_NAME_PARTS = ("embed", "token", "logit_scale")


def _no_decay(module: nn.Module, leaf_name: str, param: nn.Parameter) -> bool:
    if param.ndim < 2 or isinstance(module, (*_NORMS, nn.Embedding)):
        return True
    return any(part in leaf_name for part in _NO_DECAY_NAME_PARTS)


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Up to four AdamW groups, (fusion | base) x (decay | no_decay); frozen parameters are left out.

    Fusion parameters are `model.fusion_parameters()` when the model defines it; otherwise every parameter is
    "base" and trains at `cfg.lr`.
    """
    fusion_ids = {id(p) for p in model.fusion_parameters()} if hasattr(model, "fusion_parameters") else set()
    buckets: dict[tuple[str, str], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for module in model.modules():
        for leaf, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            kind = "fusion" if id(param) in fusion_ids else "base"
            decay = "no_decay" if _no_decay(module, leaf, param) else "decay"
            buckets.setdefault((kind, decay), []).append(param)
    groups = []
    for kind in ("base", "fusion"):
        for decay in ("decay", "no_decay"):
            params = buckets.get((kind, decay))
            if params:
                groups.append({
                    "name": f"{kind}/{decay}",
                    "params": params,
                    "lr": cfg.lr * (cfg.fusion_lr_mult if kind == "fusion" else 1.0),
                    "weight_decay": cfg.weight_decay if decay == "decay" else 0.0,
                })
    if not groups:
        raise ValueError("model has no trainable parameters (all requires_grad=False)")
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over `param_groups`, fused where torch has the kernel. Why: on a CPU torch's default is the per-tensor
    loop (its multi-tensor path is for GPUs), which took a seventh of a chapter-2 training step; the fused kernel
    updates each parameter in one pass, 4-5x faster on the book's teacher (the same AdamW, to float rounding)."""
    groups = param_groups(model, cfg)
    params = [p for group in groups for p in group["params"]]
    fused = all(p.is_floating_point() and p.device.type in _FUSED_DEVICES for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                             fused=True if fused else None)


#: Devices torch's fused AdamW kernel runs on.
_FUSED_DEVICES = ("cpu", "cuda")


class WarmupCosine:
    """LR factor per optimiser step: linear warm-up to 1 over `warmup` steps, then cosine down to `min_ratio`.

    The warm-up starts at 1/warmup rather than 0 so the first step is not wasted. A class (not a lambda) so that
    LambdaLR's state dict, saved in checkpoints, holds its settings.
    """

    def __init__(self, warmup: int, total: int, min_ratio: float = 0.0):
        if total < 1:
            raise ValueError(f"total steps {total}: expected at least 1")
        self.warmup = max(0, min(warmup, total))
        self.total = total
        self.min_ratio = min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int,
                    epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-optimiser-step schedule; `warmup_epochs` may be fractional and is capped at the run's length."""
    total = max(1, steps_per_epoch * epochs)
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup, total, cfg.min_lr_ratio))


def current_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    return {f"lr/{g.get('name', i)}": float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}

