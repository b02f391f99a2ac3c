"""TinyCLIP-style weight inheritance between embedded backbones (random teacher weights, CPU, seconds)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from actiondistill.models import (
    backbone_config,
    build_clip,
    create_backbone,
    get_tokenizer,
    inherit_weights,
    intermediate_config,
    layer_indices,
    make_inherited,
)

PROMPTS = [
    "a red square bouncing",
    "a blue circle spinning",
    "the man is running",
    "a photo of a dog",
    "a star growing",
    "moving to the left",
]


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return create_backbone("embedded-base")


@pytest.fixture(scope="module")
def inherited(teacher):
    return make_inherited(teacher, "embedded-tiny")


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(4, 3, 64, 64, generator=gen)
    return torch.cat([base + 0.5 * torch.randn(4, 3, 64, 64, generator=gen) for _ in range(3)])


def test_layer_indices_keep_an_even_stride():
    assert layer_indices(12, 6) == [1, 3, 5, 7, 9, 11]
    assert layer_indices(6, 6) == list(range(6))
    assert layer_indices(6, 3) == [1, 3, 5]
    assert layer_indices(6, 5) == [0, 1, 3, 4, 5]
    with pytest.raises(ValueError, match="student depth 7"):
        layer_indices(6, 7)


def test_same_config_reproduces_the_teacher_exactly(teacher, images):
    student, report = make_inherited(teacher, "embedded-base")
    assert not report.sliced and not report.interpolated
    for key, value in teacher.state_dict().items():
        assert torch.equal(student.state_dict()[key], value), key
    tokens = get_tokenizer(teacher)(PROMPTS)
    with torch.no_grad():
        assert torch.equal(student.encode_image(images), teacher.encode_image(images))
        assert torch.equal(student.encode_text(tokens), teacher.encode_text(tokens))


def test_smaller_student_holds_teacher_slices(teacher, inherited):
    student, report = inherited
    assert report.layer_map == {"visual": [0, 1, 3, 4, 5], "text": [1, 3, 5]}
    # visual block 2 of the student is teacher block 3; width 256 -> 192 keeps the first 3 of 4 heads of q, k, v
    s_attn = student.visual.transformer.resblocks[2].attn
    t_attn = teacher.visual.transformer.resblocks[3].attn
    q, k, v = t_attn.in_proj_weight.chunk(3)
    assert torch.equal(s_attn.in_proj_weight, torch.cat([q[:192, :192], k[:192, :192], v[:192, :192]]))
    assert torch.equal(s_attn.in_proj_bias, torch.cat([b[:192] for b in t_attn.in_proj_bias.chunk(3)]))
    assert torch.equal(s_attn.out_proj.weight, t_attn.out_proj.weight[:192, :192])
    # text block 0 is teacher text block 1, width 256 -> 128
    assert torch.equal(
        student.transformer.resblocks[0].mlp.c_fc.weight, teacher.transformer.resblocks[1].mlp.c_fc.weight[:512, :128]
    )
    assert torch.equal(student.visual.proj, teacher.visual.proj[:192])
    assert torch.equal(student.token_embedding.weight, teacher.token_embedding.weight[:, :128])
    assert "visual.proj" in report.sliced and "logit_scale" in report.copied


def _agreement(model, teacher, images, tokens):
    """Mean cosine between a model's embeddings and the teacher's, input by input (same 256-d space)."""
    with torch.no_grad():
        img = F.cosine_similarity(model.encode_image(images), teacher.encode_image(images), dim=-1)
        txt = F.cosine_similarity(model.encode_text(tokens), teacher.encode_text(tokens), dim=-1)
    return img.mean().item(), txt.mean().item()


def test_inherited_student_works_and_resembles_the_teacher_more_than_random(teacher, inherited, images):
    student, _ = inherited
    torch.manual_seed(2)
    random_student = create_backbone("embedded-tiny")
    tokens = get_tokenizer(teacher)(PROMPTS)
    s_img, s_txt = _agreement(student, teacher, images, tokens)
    r_img, r_txt = _agreement(random_student, teacher, images, tokens)
    assert s_img > 0.5 and abs(r_img) < 0.2
    assert s_txt > r_txt + 0.05


def test_position_grid_is_interpolated_for_another_image_size(teacher):
    student, report = make_inherited(teacher, "embedded-tiny", vision_cfg={"image_size": 32})
    assert report.interpolated == ["visual.positional_embedding"]
    assert torch.equal(student.visual.positional_embedding[0], teacher.visual.positional_embedding[0, :192])
    with torch.no_grad():
        assert student.encode_image(torch.randn(1, 3, 32, 32)).shape == (1, 256)


def _plain_vit(name: str, patch_size: int) -> dict:
    """`name`'s config with a plain patch embedding (no convolutional stem) of `patch_size`."""
    cfg = {k: v for k, v in backbone_config(name).items() if k != "conv_stem"}
    return {**cfg, "vision_cfg": {**cfg["vision_cfg"], "patch_size": patch_size}}


def test_incompatible_students_are_refused_by_name(teacher):
    plain_teacher = build_clip(_plain_vit("embedded-base", 8))
    with pytest.raises(ValueError, match="patch size"):
        make_inherited(plain_teacher, _plain_vit("embedded-tiny", 16))
    with pytest.raises(ValueError, match="visual.conv1.0.0.weight.*no teacher counterpart"):
        make_inherited(plain_teacher, "embedded-tiny")  # a stem student of a patch-embedding teacher
    bigger = create_backbone("embedded-base", vision_cfg={"width": 320, "head_width": 64})
    with pytest.raises(ValueError, match="visual.class_embedding"):
        inherit_weights(teacher, bigger)


def test_intermediate_config_is_tinyclips_75_percent_stage():
    cfg = intermediate_config("ViT-B-16", "TinyCLIP-ViT-39M-16-Text-19M", 0.5)
    assert cfg["vision_cfg"]["width"] == 640 and cfg["vision_cfg"]["layers"] == 12
    assert cfg["text_cfg"]["width"] == 512 and cfg["text_cfg"]["layers"] == 9
    assert (
        intermediate_config("embedded-base", "embedded-tiny", 1.0)["vision_cfg"]
        == backbone_config("embedded-tiny")["vision_cfg"]
    )


def test_student_takes_the_teachers_activation(images):
    from open_clip.transformer import QuickGELU

    torch.manual_seed(0)
    openai_like = create_backbone("embedded-base", quick_gelu=True)
    student, _ = make_inherited(openai_like, "embedded-tiny")
    assert any(isinstance(m, QuickGELU) for m in student.modules())
    plain, _ = make_inherited(create_backbone("embedded-base"), "embedded-tiny")
    assert not any(isinstance(m, QuickGELU) for m in plain.modules())
    forced, _ = make_inherited(openai_like, "embedded-tiny", quick_gelu=False)
    assert not any(isinstance(m, QuickGELU) for m in forced.modules())
    # same config: the inherited copy of a QuickGELU teacher computes exactly what the teacher computes
    copy, _ = make_inherited(openai_like, "embedded-base")
    openai_like.eval(), copy.eval()
    with torch.no_grad():
        torch.testing.assert_close(copy.encode_image(images), openai_like.encode_image(images))
