"""Backbone configs, parameter counts and tokenizers (no weights are downloaded; big models are built on meta)."""

from __future__ import annotations

import pytest
import torch

from actiondistill.models import (
    EMBEDDED_BACKBONES,
    backbone_config,
    create_backbone,
    get_tokenizer,
    list_backbones,
    visual_parameter_count,
)

# Visual parameters from REFERENCE.md, in millions (rounded to 0.1M there).
REFERENCE_VISUAL_M = {
    "ViT-B-32": 87.8,
    "ViT-B-16": 86.2,
    "TinyCLIP-ViT-40M-32-Text-19M": 39.7,
    "TinyCLIP-ViT-39M-16-Text-19M": 38.6,
    "TinyCLIP-ViT-61M-32-Text-29M": 61.4,
}


@pytest.mark.parametrize("name", sorted(REFERENCE_VISUAL_M))
def test_visual_parameter_counts_match_reference(name):
    with torch.device("meta"):
        model = create_backbone(name)
    assert abs(visual_parameter_count(model) / 1e6 - REFERENCE_VISUAL_M[name]) < 0.1


def test_project_configs_are_registered_with_open_clip():
    names = set(list_backbones())
    for name in (
        "TinyCLIP-ViT-8M-16-Text-3M",
        "TinyCLIP-ViT-39M-16-Text-19M",
        "TinyCLIP-ViT-40M-32-Text-19M",
        "TinyCLIP-ViT-61M-32-Text-29M",
        *EMBEDDED_BACKBONES,
    ):
        assert name in names
        cfg = backbone_config(name)
        assert cfg["text_cfg"]["vocab_size"] == 49408
    assert backbone_config("TinyCLIP-ViT-8M-16-Text-3M")["vision_cfg"]["layers"] == 10
    assert backbone_config("embedded-base")["vision_cfg"]["image_size"] == 64


def test_embedded_tiny_is_about_half_of_base():
    with torch.device("meta"):
        base, tiny = create_backbone("embedded-base"), create_backbone("embedded-tiny")
    ratio = visual_parameter_count(tiny) / visual_parameter_count(base)
    assert 0.4 <= ratio <= 0.5


def test_embedded_backbone_runs_on_64px_frames_and_tokenizer_uses_its_context():
    torch.manual_seed(0)
    model = create_backbone("embedded-tiny")
    assert not model.training
    tokens = get_tokenizer("embedded-tiny")(["a red square bouncing to the left"])
    assert tokens.shape == (1, 32)
    assert get_tokenizer(model) is get_tokenizer("embedded-tiny")
    with torch.no_grad():
        image = model.encode_image(torch.randn(2, 3, 64, 64))
        text = model.encode_text(tokens)
    assert image.shape == (2, 256) and text.shape == (1, 256)


def test_overrides_merge_into_tower_configs():
    with torch.device("meta"):
        model = create_backbone("embedded-tiny", vision_cfg={"layers": 2}, text_cfg={"context_length": 16})
    assert len(model.visual.transformer.resblocks) == 2
    assert model.visual.transformer.width == 192  # kept from the config: the override was merged, not replaced
    assert model.context_length == 16
    assert get_tokenizer(model)(["x"]).shape == (1, 16)


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="no-such-net"):
        create_backbone("no-such-net")
