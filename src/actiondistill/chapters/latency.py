"""One latency table for every chapter: classifying one clip of pixels among cached class texts.

Every chapter that compares models' speed times the same thing, so that its ratios mean the same thing in every
chapter: `predict_proba` of a batch of clips against the class texts' embeddings, which a deployed classifier
computes once. That is the image encoder on every frame, the model's temporal part and, for X-CLIP, its per-video
prompt generator. Random weights: latency does not depend on their values.

The models take turns call by call (`calls` rounds of one call each), on one thread by default, so that load
from other processes lands on all of them alike; each row's latency is its fastest call and each speed-up the
median of per-round ratios (`profiler.sweep`). benchmarks/bench_latency_under_load.py measures what this buys
beside `make test`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: Rounds of one call per model: enough that a burst of load cannot reach every call of one model alone.
CALLS = 15


def model_spec(name: str, backbone: str, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A timed model: a registered video model `name` on the CLIP `backbone`, built with `kwargs`."""
    return {"name": name, "backbone": backbone, "kwargs": dict(kwargs or {})}


def classifier_latency(specs: Mapping[str, Mapping[str, Any]], class_texts: Sequence[str],
                       frames: Sequence[int] = (16,), batches: Sequence[int] = (1,), device: str = "cpu",
                       warmup: int = 1, calls: int = CALLS, threads: int | None = 1,
                       progress: bool = True) -> pd.DataFrame:
    """Every model of `specs` (label -> `model_spec`; the first is the speed-up reference) side by side in one
    profiler run: rows as `profiler.sweep` returns them, `params_backbone_m` counting the image encoder and GFLOPs a
    multiply-add as 2.

    Args:
        calls: rounds of one timed call per model, the models taking turns call by call.
        threads: torch threads while timing (None: the process's); 1 is what a shared CPU reproduces.
    """
    import torch

    from actiondistill.models import create_model
    from actiondistill.models.backbones import backbone_config
    from actiondistill.profiler import sweep

    if not specs:
        raise ValueError("specs: expected at least one model to time")
    texts = list(class_texts)

    def factory(spec: Mapping[str, Any]) -> Callable[[int], Any]:
        return lambda t: create_model(spec["name"], backbone=spec["backbone"], num_frames=t, templates=("{}",),
                                      **spec["kwargs"])

    def inputs(batch: int, t: int, hw: tuple[int, int]) -> tuple[torch.Tensor, list[str]]:
        return torch.randn(batch, t, 3, *hw, generator=torch.Generator().manual_seed(0)), texts

    sides = {label: backbone_config(spec["backbone"])["vision_cfg"]["image_size"] for label, spec in specs.items()}
    return sweep({label: factory(spec) for label, spec in specs.items()}, frames=frames, batches=batches,
                 image_size=sides, device=device, warmup=warmup, iters=1, rounds=calls, threads=threads,
                 method="predict_proba", make_inputs=inputs, backbone="backbone.visual", progress=progress)
