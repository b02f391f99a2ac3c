"""The embedded CLIPs' convolutional stem: built from the backbone name, a drop-in for the patch embedding, kept
through saving, loading and TinyCLIP inheritance; real ViT backbones keep their patch embedding."""

import pytest
import torch
from torch import nn

from actiondistill.models import create_backbone, make_inherited
from actiondistill.models.backbones import backbone_config, build_clip
from actiondistill.models.checkpoints import save_weights
from actiondistill.models.conv_stem import CONV_STEMS, ConvStem, attach_conv_stem
from actiondistill.models.inheritance import intermediate_config


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return create_backbone("embedded-base")


def test_embedded_backbones_have_a_stem_with_the_patch_grid(base):
    for name in ("embedded-base", "embedded-tiny"):
        model = base if name == "embedded-base" else create_backbone(name)
        stem, cfg = model.visual.conv1, backbone_config(name)
        assert isinstance(stem, ConvStem) and stem.stride == cfg["vision_cfg"]["patch_size"]
        assert cfg["conv_stem"] == list(CONV_STEMS[name])
        grid = stem(torch.zeros(2, 3, 64, 64))
        assert grid.shape == (2, cfg["vision_cfg"]["width"], 4, 4)
        assert model.visual.positional_embedding.shape[0] == 4 * 4 + 1
        assert model.encode_image(torch.randn(2, 3, 64, 64)).shape == (2, cfg["embed_dim"])


def test_stem_is_local_a_pixel_change_moves_only_its_own_cell(base):
    """The locality prior the stem exists for: an edit in the top-left corner leaves the far cells' features alone."""
    stem = base.visual.conv1.eval()
    image = torch.randn(1, 3, 64, 64)
    edited = image.clone()
    edited[..., :8, :8] += 3.0
    with torch.no_grad():
        change = (stem(edited) - stem(image)).abs().sum(1)[0]
    assert change[0, 0] > 0 and torch.all(change[3:, :] == 0) and torch.all(change[:, 3:] == 0)


def test_other_backbones_keep_their_patch_embedding():
    model = create_backbone("TinyCLIP-ViT-8M-16-Text-3M", device="meta")
    assert isinstance(model.visual.conv1, nn.Conv2d) and "conv_stem" not in backbone_config("ViT-B-32")


def test_a_stem_of_the_wrong_stride_is_refused_by_name(base):
    with pytest.raises(ValueError, match=r"stride 8 needs a patch-8 ViT"):
        attach_conv_stem(create_backbone("ViT-B-32", device="meta").visual, (32, 64))


def test_weights_round_trip_with_the_stem(base, tmp_path):
    path = tmp_path / "base.pt"
    save_weights(base, path)
    loaded = create_backbone("embedded-base", pretrained=path)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.encode_image(images), base.eval().encode_image(images))


def test_inheritance_keeps_the_leading_stem_filters(base):
    student, report = make_inherited(base, "embedded-tiny")
    teacher_sd, student_sd = base.state_dict(), student.state_dict()
    key = "visual.conv1.0.0.weight"  # first stage's first convolution: (16, 3, 3, 3) of (32, 3, 3, 3)
    assert student_sd[key].shape == (16, 3, 3, 3) and torch.equal(student_sd[key], teacher_sd[key][:16])
    assert key in report.sliced
    assert isinstance(student.visual.conv1, ConvStem)


def test_intermediate_stage_has_an_intermediate_stem():
    cfg = intermediate_config("embedded-base", "embedded-tiny", 0.5)
    assert cfg["conv_stem"] == [24, 48, 96]
    model = build_clip(cfg)
    assert isinstance(model.visual.conv1, ConvStem) and model.visual.conv1[0][0].out_channels == 24


def test_a_frozen_stem_keeps_its_statistics_in_a_training_model():
    model = create_backbone("embedded-tiny")
    model.visual.requires_grad_(False)
    before = {k: v.clone() for k, v in model.visual.conv1.state_dict().items()}
    model.train()
    assert not model.visual.conv1.training and model.visual.transformer.training
    model.encode_image(torch.randn(4, 3, 64, 64))
    assert all(torch.equal(before[k], v) for k, v in model.visual.conv1.state_dict().items())
    model.visual.requires_grad_(True)
    assert model.train().visual.conv1.training
