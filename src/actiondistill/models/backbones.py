"""CLIP backbones: open_clip models plus the project's own configs (TinyCLIP, embedded sizes).

The JSON files in `configs/` are registered with open_clip on import, so every open_clip entry point
(create_model, get_tokenizer, get_model_config) knows `TinyCLIP-ViT-39M-16-Text-19M` or `embedded-base`.
Weights are loaded by this project's loader (checkpoints.py), which understands more formats than
open_clip's and names every key that does not fit.
"""

from __future__ import annotations

import copy
import logging
import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import open_clip
import torch
from open_clip import CLIP

from actiondistill.models.checkpoints import load_weights, read_state_dict
from actiondistill.models.conv_stem import CONV_STEMS, attach_conv_stem
from actiondistill.models.pretrained import resolve_pretrained

CONFIG_DIR = Path(__file__).parent / "configs"
PROJECT_BACKBONES = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
EMBEDDED_BACKBONES = ("embedded-base", "embedded-tiny")

open_clip.add_model_config(CONFIG_DIR)

log = logging.getLogger(__name__)


def list_backbones() -> list[str]:
    """Every architecture name create_backbone accepts (open_clip's and the project's)."""
    return open_clip.list_models()


def backbone_config(name: str) -> dict:
    """A copy of the architecture config of `name` (embed_dim, vision_cfg, text_cfg, ...).

    The embedded backbones' configs also name their convolutional stem (`conv_stem`, see `models.conv_stem`), which
    open_clip's config schema has no field for.
    """
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise ValueError(f"backbone {name!r}: unknown architecture (see list_backbones(); e.g. {PROJECT_BACKBONES})")
    cfg = copy.deepcopy(cfg)
    if name in CONV_STEMS:
        cfg["conv_stem"] = list(CONV_STEMS[name])
    return cfg


def build_clip(cfg: dict, device: str | torch.device | None = None) -> CLIP:
    """An open_clip CLIP from a config dict such as `backbone_config`'s, with its convolutional stem if it names one."""
    cfg = dict(cfg)
    stem = cfg.pop("conv_stem", None)
    model = CLIP(**cfg).to(device)
    if stem is not None:
        attach_conv_stem(model.visual, stem)
    return model


def create_backbone(
    name: str,
    pretrained: str | os.PathLike | None = None,
    *,
    strict: bool = True,
    device: str | torch.device | None = None,
    **overrides,
) -> CLIP:
    """Build the open_clip model `name`, optionally with weights, in eval mode on `device`.

    Args:
        name: an open_clip architecture (`ViT-B-32`), a TinyCLIP architecture or `embedded-base/-tiny`.
        pretrained: a weight file (open_clip state dict, TinyCLIP checkpoint, OpenAI JIT archive,
            .safetensors) or a pretrained tag (placed under data/checkpoints/<name>-<tag>.pt, else
            downloaded when online; offline it fails within seconds, saying where to place the file).
        strict: refuse weights with missing/unexpected/mis-shaped keys (named in the error).
        device: where to build; default torch's current default device (so `with torch.device("meta")`
            builds a weightless model instantly, e.g. to count parameters).
        **overrides: top-level config keys (`quick_gelu`, `embed_dim`, ...); `vision_cfg` / `text_cfg`
            dicts are merged into the config's rather than replacing them.

    An OpenAI JIT archive or an OpenAI tag switches on QuickGELU (what those weights were trained with)
    unless `quick_gelu` is given explicitly.
    """
    cfg = backbone_config(name)
    weights, fmt, path = None, "", None
    if pretrained is not None:
        path, tag_cfg = resolve_pretrained(name, pretrained)
        weights, fmt = read_state_dict(path)
        if "quick_gelu" not in overrides and (fmt == "openai-jit" or tag_cfg.get("quick_gelu")):
            overrides["quick_gelu"] = True
    for tower in ("vision_cfg", "text_cfg"):
        if tower in overrides:
            overrides[tower] = {**cfg[tower], **overrides[tower]}
    device = torch.get_default_device() if device is None else torch.device(device)
    with _quiet_random_init_warning():
        model = open_clip.create_model(name, device=device, pretrained_text=False, **overrides)
    if name in CONV_STEMS:
        attach_conv_stem(model.visual, CONV_STEMS[name])
    if weights is not None:
        report = load_weights(model, weights, strict=strict, origin=str(path), fmt=fmt)
        log.info("loaded %d tensors into %s from %s", report.loaded, name, pretrained)
    return model.eval()


def get_tokenizer(name_or_model: str | CLIP):
    """The tokenizer for a backbone name or built model, at that backbone's context length.

    CLIP-family models share one BPE tokenizer (cached per context length); names whose config asks for
    another tokenizer (Hugging Face, SigLIP) get open_clip's choice.
    """
    if not isinstance(name_or_model, str):
        return _simple_tokenizer(int(name_or_model.context_length))
    text_cfg = backbone_config(name_or_model)["text_cfg"]
    if text_cfg.get("hf_tokenizer_name") or "siglip" in name_or_model.lower():
        return open_clip.get_tokenizer(name_or_model)
    return _simple_tokenizer(int(text_cfg.get("context_length", 77)))


def visual_parameter_count(model: CLIP) -> int:
    """Parameters of the image tower: the quantity TinyCLIP's and this project's size claims refer to."""
    return sum(p.numel() for p in model.visual.parameters())


@lru_cache(maxsize=8)
def _simple_tokenizer(context_length: int):
    """CLIP's BPE tokenizer; built once per context length because reading the merges takes a while."""
    return open_clip.SimpleTokenizer(context_length=context_length)


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextmanager
def _quiet_random_init_warning():
    """open_clip warns 'initialized randomly' before we load our own weights; that warning would mislead."""
    root = logging.getLogger()
    flt = _DropRandomInitWarning()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)
