"""The video model registry on a tiny random backbone: shapes, gradients, fusion maths, templates, caching."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from actiondistill.models import (
    ACTIONCLIP_TEMPLATES,
    VideoCLIP,
    create_backbone,
    create_model,
    list_models,
    register_model,
)
from actiondistill.models import base as base_module
from actiondistill.models import registry as registry_mod
from actiondistill.models.fusion import MeanFusion, TemporalConvFusion, TransformerFusion
from actiondistill.models.xclip import XCLIP

LABELS = ["bouncing to the left", "spinning clockwise", "growing"]
B, T = 2, 4


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return create_backbone("embedded-tiny")


@pytest.fixture(scope="module")
def frames():
    return torch.randn(B, T, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def build(name, backbone, **cfg):
    if name.startswith("actionclip"):
        cfg.setdefault("fusion_layers", 2)
    torch.manual_seed(3)
    return create_model(name, backbone=backbone, num_frames=T, **cfg)


def test_registry_lists_every_model():
    assert {
        "actionclip-meanp",
        "actionclip-conv1d",
        "actionclip-lstm",
        "actionclip-transf",
        "actionclip-transf_cls",
        "xclip",
        "vificlip",
    } <= set(list_models())


@pytest.mark.parametrize(
    "name",
    [
        "actionclip-meanp",
        "actionclip-conv1d",
        "actionclip-lstm",
        "actionclip-transf",
        "actionclip-transf_cls",
        "xclip",
        "vificlip",
    ],
)
def test_shapes_and_gradient_flow(name, backbone, frames):
    model = build(name, backbone)
    assert isinstance(model, VideoCLIP) and model.backbone is backbone and not model.training
    model.train()
    model.zero_grad(set_to_none=True)
    assert model.encode_video(frames).shape == (B, 256)
    assert model.encode_text(LABELS).shape == (3, 256)
    logits = model(frames, LABELS)
    assert logits.shape == (B, 3)
    logits.logsumexp(dim=-1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    assert backbone.visual.conv1.weight.grad.abs().sum() > 0
    assert backbone.token_embedding.weight.grad.abs().sum() > 0
    for p in model.fusion_parameters():
        assert p.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert model(frames, LABELS).abs().max() <= 100.0 + 1e-4
        probs = model.predict_proba(frames, LABELS)
    torch.testing.assert_close(probs.sum(dim=-1), torch.ones(B))


def test_parameter_groups_partition_the_model(backbone):
    for name in ("actionclip-meanp", "actionclip-transf", "xclip"):
        model = build(name, backbone)
        fusion = {id(p) for p in model.fusion_parameters()}
        core = {id(p) for p in model.backbone_parameters()}
        assert not fusion & core and fusion | core == {id(p) for p in model.parameters()}
        assert (len(fusion) == 0) == (name == "actionclip-meanp")


def test_meanp_is_exactly_the_mean(backbone, frames):
    model = build("actionclip-meanp", backbone)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(frames), model.encode_frames(frames).mean(dim=1))
    x = torch.randn(3, 5, 8)
    assert torch.equal(MeanFusion()(x), x.mean(dim=1))


def test_conv1d_starts_as_the_temporal_shift():
    x = torch.randn(2, 5, 8)
    shifted = torch.zeros_like(x)
    shifted[:, 1:, :2] = x[:, :-1, :2]  # first quarter: previous frame (zero at t=0)
    shifted[:, :, 2:6] = x[:, :, 2:6]  # middle half: unchanged
    shifted[:, :-1, 6:] = x[:, 1:, 6:]  # last quarter: next frame (zero at the end)
    fusion = TemporalConvFusion(8)
    with torch.no_grad():
        assert torch.equal(fusion.temporal(x), shifted)
        torch.testing.assert_close(fusion(x), (x + shifted).mean(dim=1))


def test_transformer_fusion_handles_other_clip_lengths():
    fusion = TransformerFusion(64, num_frames=4, layers=1)
    cls_fusion = TransformerFusion(64, num_frames=4, layers=1, cls_token=True)
    x = torch.randn(2, 6, 64)
    assert fusion(x).shape == cls_fusion(x).shape == (2, 64)
    assert torch.equal(fusion.positions(4), fusion.frame_position)
    torch.testing.assert_close(fusion.positions(7)[[0, -1]], fusion.frame_position[[0, -1]])


def test_predict_proba_is_the_average_over_the_16_templates(backbone, frames):
    model = build("actionclip-meanp", backbone)
    assert model.templates == ACTIONCLIP_TEMPLATES and len(model.templates) == 16
    with torch.no_grad():
        probs = model.predict_proba(frames, LABELS)
        video = F.normalize(model.encode_video(frames), dim=-1)
        manual = torch.zeros(B, 3)
        texts = []
        for template in ACTIONCLIP_TEMPLATES:
            text = F.normalize(model.encode_prompts([template.format(label) for label in LABELS]), dim=-1)
            texts.append(text)
            manual += (100.0 * video @ text.t()).softmax(dim=-1)
        torch.testing.assert_close(probs, manual / 16)
        mean_text = torch.stack(texts).mean(dim=0)
        torch.testing.assert_close(model(frames, LABELS), 100.0 * video @ F.normalize(mean_text, dim=-1).t())


def test_eval_text_cache_is_reused_and_invalidated(backbone, monkeypatch):
    model = build("actionclip-meanp", backbone)
    calls = []
    original = base_module.encode_tokens

    def counting(clip, tokens, normalize=False, prefix=None):
        calls.append(tokens.shape[0])
        return original(clip, tokens, normalize=normalize, prefix=prefix)

    monkeypatch.setattr(base_module, "encode_tokens", counting)
    first = model.encode_text(LABELS)
    assert calls == [16 * 3]
    assert torch.equal(model.encode_text(LABELS), first) and len(calls) == 1  # cached: text encoder not run
    model.encode_text(LABELS[:2])
    assert len(calls) == 2  # another label list is another cache entry

    model.train()
    model.encode_text(LABELS)
    model.encode_text(LABELS)
    assert len(calls) == 4  # training: never cached, one random template per label per call
    model.eval()
    model.encode_text(LABELS)
    assert len(calls) == 5  # train() dropped the cache

    model.load_state_dict(model.state_dict())
    model.encode_text(LABELS)
    assert len(calls) == 6  # reloaded weights are new weights
    with torch.no_grad():
        backbone.text_projection.mul_(1.0)  # an in-place update (as an optimizer step does)
    model.encode_text(LABELS)
    assert len(calls) == 7


def test_training_templates_are_random_and_seedable(backbone, monkeypatch):
    model = build("actionclip-meanp", backbone).train()
    seen = []
    monkeypatch.setattr(model, "encode_prompts", lambda prompts: seen.append(prompts) or torch.zeros(len(prompts), 8))
    labels = [f"action {i}" for i in range(6)]
    model.seed_templates(0)
    model.encode_text(labels)
    model.encode_text(labels)
    model.seed_templates(0)
    model.encode_text(labels)
    assert seen[0] == seen[2] != seen[1]
    assert all(any(p == t.format(label) for t in ACTIONCLIP_TEMPLATES) for p, label in zip(seen[0], labels))


def test_logit_scale_learnable_in_training_and_fixed_in_eval(backbone, frames):
    model = build("vificlip", backbone)
    assert model.logit_scale is backbone.logit_scale
    torch.testing.assert_close(model.logit_scale.exp().item(), 1 / 0.07)
    model.train()
    with torch.no_grad():
        video = F.normalize(model.encode_video(frames), dim=-1)
        text = F.normalize(model.encode_prompts([f"a photo of a {label}." for label in LABELS]), dim=-1)
        torch.testing.assert_close(model(frames, LABELS), (1 / 0.07) * video @ text.t())
        saved = backbone.logit_scale.clone()
        backbone.logit_scale.fill_(10.0)
        assert model.current_logit_scale().item() == 100.0  # exp(10) clamped
        backbone.logit_scale.copy_(saved)
    model.eval()
    assert model.current_logit_scale().item() == 100.0
    assert create_model("vificlip", backbone=backbone, eval_logit_scale=50.0).current_logit_scale().item() == 50.0


def test_xclip_frames_communicate_and_share_clips_plumbing(backbone, frames, monkeypatch):
    model = build("xclip", backbone)
    changed = frames.clone()
    changed[:, 1] = torch.randn_like(changed[:, 1])
    with torch.no_grad():
        emb, _ = model.frame_features(frames)
        emb_changed, _ = model.frame_features(changed)
        assert not torch.allclose(emb[:, 0], emb_changed[:, 0])  # frame 0 heard about frame 1
        clip_frames = model.encode_frames(frames)
        assert torch.equal(clip_frames[:, 0], model.encode_frames(changed)[:, 0])  # plain CLIP: frames independent
        monkeypatch.setattr(XCLIP, "_block", staticmethod(lambda block, x, message: block(x)))
        plain, patches = model.frame_features(frames)
    torch.testing.assert_close(plain, clip_frames, atol=1e-5, rtol=1e-5)  # same pieces as the open_clip ViT
    grid = backbone.visual.grid_size  # 4 x 4 tokens: the embedded towers' conv stem has stride 16 on 64 px frames
    assert patches.shape == (B, grid[0] * grid[1], 256)


def test_xclip_text_is_video_specific(backbone, frames):
    model = build("xclip", backbone)
    assert model.templates == ("{}",)
    torch.testing.assert_close(model.prompt.alpha, torch.full((256,), 0.1))
    with torch.no_grad():
        video, context = model.video_context(frames)
        text = model.adapt_text(model.encode_text(LABELS), context)
    assert text.shape == (B, 3, 256) and not torch.allclose(text[0], text[1])


def test_frames_are_validated(backbone):
    model = build("vificlip", backbone)
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model.encode_video(torch.randn(4, 3, 64, 64))
    with pytest.raises(ValueError, match="uint8"):
        model.encode_video(torch.zeros(1, 2, 3, 64, 64, dtype=torch.uint8))


def test_create_model_arguments(backbone, monkeypatch):
    with pytest.raises(ValueError, match="actionclip-transf"):
        create_model("no-such-model")
    with pytest.raises(ValueError, match="built backbone"):
        create_model("vificlip", backbone=backbone, pretrained="openai")
    model = create_model("actionclip-transf", backbone="embedded-tiny", num_frames=2, fusion_layers=1)
    assert model.config == {
        "name": "actionclip-transf",
        "backbone": "embedded-tiny",
        "num_frames": 2,
        "pretrained": None,
        "fusion_layers": 1,
    }
    assert len(model.fusion.transformer.resblocks) == 1

    monkeypatch.setattr(registry_mod, "_BUILDERS", dict(registry_mod._BUILDERS))

    @register_model("test-head", clip_backbone=False)
    def build_test_head(backbone, num_frames, pretrained, width=3):
        return torch.nn.Linear(num_frames, width)

    assert "test-head" in list_models()
    assert create_model("test-head", num_frames=5, width=2).weight.shape == (2, 5)
    with pytest.raises(ValueError, match="already registered"):
        register_model("test-head")(build_test_head)


def test_moving_the_model_drops_cached_text(backbone):
    model = build("vificlip", copy.deepcopy(backbone))
    assert model.encode_text(LABELS).dtype == torch.float32
    model.to(torch.float64)
    assert model.encode_text(LABELS).dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", ["actionclip-transf", "actionclip-conv1d", "xclip", "vificlip"])
def test_models_run_on_cuda(name, backbone, frames):
    model = build(name, copy.deepcopy(backbone))
    model.encode_text(LABELS)  # cached on the CPU, must not leak into the CUDA run
    model.cuda().train()
    model(frames.cuda(), LABELS).sum().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in model.parameters())
    model.eval()
    with torch.no_grad():
        probs = model.predict_proba(frames.cuda(), LABELS)
    assert probs.is_cuda
    torch.testing.assert_close(probs.sum(dim=-1).cpu(), torch.ones(B))


def test_logit_scale_init_sets_the_training_scale_that_a_loaded_checkpoint_then_overrides(tmp_path):
    from actiondistill.models import create_model, load_weights, save_weights

    model = create_model("actionclip-meanp", "embedded-tiny", logit_scale_init=100.0)
    assert model.train().current_logit_scale().item() == pytest.approx(100.0, rel=1e-5)
    fresh = create_model("actionclip-meanp", "embedded-tiny")
    assert fresh.logit_scale.exp().item() == pytest.approx(1 / 0.07, rel=1e-4)  # CLIP's initial temperature
    save_weights(fresh, tmp_path / "w.pt")
    loaded = create_model("actionclip-meanp", "embedded-tiny", logit_scale_init=100.0)
    load_weights(loaded, tmp_path / "w.pt")
    assert loaded.logit_scale.exp().item() == pytest.approx(1 / 0.07, rel=1e-4)
    with pytest.raises(ValueError, match="logit_scale_init=200.0: expected a scale in"):
        create_model("actionclip-meanp", "embedded-tiny", logit_scale_init=200.0)
