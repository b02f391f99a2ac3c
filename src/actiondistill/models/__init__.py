"""CLIP backbones, weight files, TinyCLIP-style inheritance and the video model registry.

Backbones: `create_backbone(name, pretrained=...)` for any open_clip architecture plus the project's
TinyCLIP and embedded configs. Video models: `create_model(name, backbone=..., num_frames=...)` for
every name in `list_models()`; all share the `VideoCLIP` interface.
"""

from actiondistill.models import actionclip, spatial, two_headed, vificlip, xclip  # noqa: F401  (register them)
from actiondistill.models.actionclip import ActionCLIP
from actiondistill.models.backbones import (
    EMBEDDED_BACKBONES,
    PROJECT_BACKBONES,
    backbone_config,
    build_clip,
    create_backbone,
    get_tokenizer,
    list_backbones,
    visual_parameter_count,
)
from actiondistill.models.base import VideoCLIP
from actiondistill.models.checkpoints import (
    CheckpointMismatchError,
    LoadReport,
    checkpoint_format,
    load_weights,
    read_state_dict,
    save_weights,
)
from actiondistill.models.fusion import FUSIONS, build_fusion
from actiondistill.models.inheritance import (
    InheritanceReport,
    inherit_weights,
    intermediate_config,
    layer_indices,
    make_inherited,
)
from actiondistill.models.pretrained import placed_path, resolve_pretrained
from actiondistill.models.prompts import (
    ACTIONCLIP_TEMPLATES,
    VIFICLIP_TEMPLATES,
    XCLIP_TEMPLATES,
    validate_labels,
    validate_templates,
)
from actiondistill.models.registry import create_model, list_models, register_model
from actiondistill.models.two_headed import TwoHeadedActionCLIP
from actiondistill.models.vificlip import ViFiCLIP
from actiondistill.models.xclip import XCLIP
from actiondistill.models.zeroshot import ZeroShotClassifier

__all__ = [
    "ACTIONCLIP_TEMPLATES",
    "EMBEDDED_BACKBONES",
    "FUSIONS",
    "PROJECT_BACKBONES",
    "VIFICLIP_TEMPLATES",
    "XCLIP",
    "XCLIP_TEMPLATES",
    "ActionCLIP",
    "CheckpointMismatchError",
    "InheritanceReport",
    "LoadReport",
    "TwoHeadedActionCLIP",
    "VideoCLIP",
    "ViFiCLIP",
    "ZeroShotClassifier",
    "backbone_config",
    "build_clip",
    "build_fusion",
    "checkpoint_format",
    "create_backbone",
    "create_model",
    "get_tokenizer",
    "inherit_weights",
    "intermediate_config",
    "layer_indices",
    "list_backbones",
    "list_models",
    "load_weights",
    "make_inherited",
    "placed_path",
    "read_state_dict",
    "register_model",
    "resolve_pretrained",
    "save_weights",
    "validate_labels",
    "validate_templates",
    "visual_parameter_count",
]
