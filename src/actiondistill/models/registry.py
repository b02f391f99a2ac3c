"""One registry for every video model: `create_model(name, ...)` / `list_models()` / `@register_model(name)`.

CLIP-based builders receive a built open_clip backbone (from a name via create_backbone, or the module
passed in); other builders (e.g. compressed-domain networks) opt out with `clip_backbone=False` and
receive the `backbone` argument untouched. `compressed-triplet` (PKD's I-frame, MV and residual networks) is
registered here: its "backbone" names the ResNets (COMPRESSED_BACKBONES).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from open_clip import CLIP
from torch import nn

from actiondistill.models.backbones import create_backbone

DEFAULT_BACKBONE = "embedded-base"

_BUILDERS: dict[str, tuple[Callable[..., nn.Module], bool]] = {}


def register_model(name: str, *, clip_backbone: bool = True) -> Callable[[Callable[..., nn.Module]], Callable]:
    """Decorator adding a builder under `name`.

    A CLIP builder is called as `builder(backbone: CLIP, num_frames=..., **cfg)`; with
    `clip_backbone=False` as `builder(backbone=..., num_frames=..., pretrained=..., **cfg)`.
    """

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = (builder, clip_backbone)
        return builder

    return decorate


def list_models() -> list[str]:
    """Names create_model accepts."""
    return sorted(_BUILDERS)


def uses_clip_backbone(name: str) -> bool:
    """Whether model `name` is built on a CLIP backbone (its `backbone` is a CLIP architecture name)."""
    if name not in _BUILDERS:
        raise ValueError(f"model {name!r}: unknown; expected one of {list_models()}")
    return _BUILDERS[name][1]


def create_model(
    name: str,
    backbone: str | CLIP | None = None,
    num_frames: int = 8,
    pretrained: str | os.PathLike | None = None,
    **cfg: Any,
) -> nn.Module:
    """Build a registered video model, returned in eval mode (call `.train()` to fine-tune).

    Args:
        name: one of list_models(), e.g. 'actionclip-transf', 'xclip', 'vificlip'.
        backbone: a backbone name (default 'embedded-base' for CLIP models) or an already built CLIP.
        num_frames: frames per clip the temporal modules are sized for.
        pretrained: backbone weights (file or tag, see create_backbone); only with a backbone name.
        **cfg: model options (e.g. fusion_layers, templates, eval_logit_scale).

    The build arguments are kept on the model as `model.config` for results records.
    """
    if name not in _BUILDERS:
        raise ValueError(f"model {name!r}: unknown; expected one of {list_models()}")
    builder, clip_backbone = _BUILDERS[name]
    if not clip_backbone:
        model = builder(backbone=backbone, num_frames=num_frames, pretrained=pretrained, **cfg)
        backbone_name = backbone if isinstance(backbone, str) else type(backbone).__name__
    else:
        if backbone is None:
            backbone = DEFAULT_BACKBONE
        if isinstance(backbone, str):
            backbone_name = backbone
            backbone = create_backbone(backbone, pretrained=pretrained)
        elif pretrained is not None:
            raise ValueError(f"pretrained={pretrained!r} applies to a backbone name, not to a built backbone module")
        else:
            backbone_name = type(backbone).__name__
        model = builder(backbone, num_frames=num_frames, **cfg)
    model.config = {
        "name": name,
        "backbone": backbone_name,
        "num_frames": num_frames,
        "pretrained": None if pretrained is None else str(pretrained),
        **cfg,
    }
    return model.eval()


#: Backbone names of `compressed-triplet`: one ResNet for all three networks, or PKD's mix.
COMPRESSED_BACKBONES: dict[str, dict[str, str]] = {
    "tiny": {"iframe_arch": "tiny", "mv_arch": "tiny", "residual_arch": "tiny"},
    "resnet18": {"iframe_arch": "resnet18", "mv_arch": "resnet18", "residual_arch": "resnet18"},
    "resnet50": {"iframe_arch": "resnet50", "mv_arch": "resnet50", "residual_arch": "resnet50"},
    "pkd": {"iframe_arch": "resnet50", "mv_arch": "resnet18", "residual_arch": "resnet18"},
}


@register_model("compressed-triplet", clip_backbone=False)
def _compressed_triplet(backbone: str | None, num_frames: int, pretrained: Mapping[str, Any] | None,
                        num_classes: int | None = None, **cfg: Any) -> nn.Module:
    """`CompressedTriplet.build`; `backbone` is a COMPRESSED_BACKBONES name (default: the archs in cfg, else tiny),
    `pretrained` maps modalities to local ResNet files. The networks take any number of segments, so
    `num_frames` (the segment count) does not size anything."""
    from actiondistill.models.compressed_nets import CompressedTriplet

    if num_classes is None:
        raise ValueError("compressed-triplet: pass num_classes=N (the classes of every internal classifier)")
    if backbone is not None:
        if backbone not in COMPRESSED_BACKBONES:
            raise ValueError(f"compressed-triplet: backbone {backbone!r} unknown; expected one of "
                             f"{sorted(COMPRESSED_BACKBONES)}")
        clash = sorted(set(cfg) & set(COMPRESSED_BACKBONES[backbone]))
        if clash:
            raise ValueError(f"compressed-triplet: backbone={backbone!r} already sets the architectures; drop {clash} "
                             "or the backbone")
        cfg = {**COMPRESSED_BACKBONES[backbone], **cfg}
    if pretrained is not None and not isinstance(pretrained, Mapping):
        raise ValueError(f"compressed-triplet: pretrained={pretrained!r}: expected a mapping of modality "
                         "('iframe', 'mv', 'residual') to a local ResNet checkpoint file")
    return CompressedTriplet.build(num_classes, pretrained=pretrained, **cfg)
