"""The frame-feature cache: exact embeddings, reuse from disk, cache keys, the dataset over it, and the models and
engine running on embeddings instead of pixels (the frozen-image-encoder regime of chapter 2)."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from actiondistill import frame_cache
from actiondistill.config import DataConfig, ModelConfig, ObjectiveConfig, OptimConfig, TrainConfig
from actiondistill.data.datasets import VideoDataset
from actiondistill.data.sampling import FrameSampler
from actiondistill.data.synthetic import generate
from actiondistill.data.transforms import eval_transform
from actiondistill.data.video import open_video
from actiondistill.evaluate import evaluate
from actiondistill.frame_cache import FrameFeatureCache, FrameFeatureDataset, frame_indices, get_together
from actiondistill.models import create_backbone, create_model
from actiondistill.train import Trainer

MICRO = "test-micro-features"
MICRO_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
SIZE, FRAMES, T = 32, 6, 4
VIDEO_MODELS = ["actionclip-meanp", "actionclip-conv1d", "actionclip-lstm", "actionclip-transf",
                "actionclip-transf_cls", "vificlip"]


def micro_recipe(manifest, weights, tmp_path, **model) -> TrainConfig:
    """The chapter tests' recipe on the micro world: 1 epoch, 2 frames, batch 8, ActionCLIP's loss; `model` adds
    ModelConfig fields (name, kwargs) to the micro CLIP with `weights`."""
    return TrainConfig(epochs=1, device="cpu", results_dir=str(tmp_path / "results"),
                       data=DataConfig(manifest=str(manifest), num_frames=2, size=SIZE, batch_size=8, eval_split=None,
                                       flip=False),
                       model=ModelConfig(backbone=MICRO, pretrained=str(weights), **model),
                       optim=OptimConfig(lr=1e-3, warmup_epochs=0.0, amp=False),
                       objective=ObjectiveConfig("actionclip", {"texts": "classes"}))


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """A tiny CLIP architecture registered with open_clip, and two weight files of it."""
    folder = tmp_path_factory.mktemp("micro")
    (folder / f"{MICRO}.json").write_text(json.dumps(MICRO_CFG))
    open_clip.add_model_config(folder / f"{MICRO}.json")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(folder / f"weights{seed}.pt")
        torch.save(create_backbone(MICRO).state_dict(), paths[-1])
    return paths


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate(out, videos=36, size=SIZE, frames=FRAMES, workers=1, progress=False)
    return out / "manifest.json"


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def features(manifest, micro, cache_root):
    cache = FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root, batch_size=7, progress=False)
    result = cache.get()
    assert cache.computed and cache.path.is_file()
    return result


@pytest.fixture(scope="module")
def backbone(micro):
    return create_backbone(MICRO, pretrained=micro[0])


def test_features_equal_the_backbones_own_encoding(features, manifest, backbone):
    clips = json.loads(manifest.read_text())["clips"]
    assert features.paths == [c["path"] for c in clips]
    assert int(features.offsets[-1]) == features.features.shape[0] == len(clips) * FRAMES
    for clip in (0, 5, len(clips) - 1):
        with open_video(manifest.parent / clips[clip]["path"]) as reader:
            pixels = eval_transform(SIZE)(reader.read(range(reader.num_frames)))
        with torch.no_grad():
            direct = backbone.encode_image(pixels)
        assert torch.allclose(features.frames(clip), direct, atol=1e-5)
        assert torch.allclose(features.frames(clip, [3, 0]), direct[[3, 0]], atol=1e-5)


def test_second_call_loads_from_disk(features, manifest, micro, cache_root, monkeypatch):
    monkeypatch.setattr(frame_cache, "compute_together", lambda caches: pytest.fail("features were recomputed"))
    again = FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root, progress=False)
    loaded = again.get()
    assert not again.computed
    assert torch.equal(loaded.features, features.features) and torch.equal(loaded.offsets, features.offsets)
    assert loaded.meta["key"] == again.key


def test_caches_of_one_world_decode_each_clip_once(features, manifest, micro, cache_root, tmp_path, monkeypatch):
    opened = []
    real_open = open_video

    def counting_open(path, *args, **kwargs):
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("actiondistill.data.video.open_video", counting_open)
    caches = [FrameFeatureCache(manifest, MICRO, weights, SIZE, root=tmp_path, batch_size=5, progress=False)
              for weights in (micro[0], micro[1], micro[0])]  # the same key twice: computed once
    together = get_together(caches)
    clips = len(json.loads(manifest.read_text())["clips"])
    assert len(opened) == clips
    assert [cache.computed for cache in caches] == [True, True, True]
    assert torch.allclose(together[0].features, features.features, atol=1e-5)  # as computed alone
    assert not torch.allclose(together[1].features, features.features, atol=1e-3)  # the other weights' own
    assert together[2] is together[0] and all(f.meta["compute_s"] > 0 for f in together)
    again = [FrameFeatureCache(manifest, MICRO, micro[1], SIZE, root=tmp_path, progress=False)]
    assert torch.equal(get_together(again)[0].features, together[1].features) and not again[0].computed
    with pytest.raises(ValueError, match="caches decode differently"):
        frame_cache.compute_together([caches[0], FrameFeatureCache(manifest, MICRO, micro[0], SIZE + 8,
                                                                   root=tmp_path)])


def test_key_follows_weights_manifest_and_size(manifest, micro, cache_root, tmp_path):
    key = FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root).key
    assert FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root).key == key
    assert FrameFeatureCache(manifest, MICRO, micro[1], SIZE, root=cache_root).key != key
    assert FrameFeatureCache(manifest, MICRO, micro[0], SIZE + 8, root=cache_root).key != key
    edited = tmp_path / "manifest.json"
    edited.write_text(manifest.read_text() + "\n")
    assert FrameFeatureCache(edited, MICRO, micro[0], SIZE, root=cache_root).key != key
    with pytest.raises(ValueError, match="pretrained=None"):
        FrameFeatureCache(manifest, MICRO, None, SIZE)


def test_dataset_sees_the_frames_a_video_dataset_would(features, manifest, backbone):
    sampler = FrameSampler("tsn", frames=T, train=True)
    cached = FrameFeatureDataset(features, manifest, "train", sampler=sampler, seed=5)
    pixels = VideoDataset.from_manifest(manifest, "train", sampler=sampler, transform=eval_transform(SIZE), seed=5)
    assert len(cached) == len(pixels) and cached.labels == pixels.labels and cached.classes == pixels.classes
    for epoch in (0, 3):
        cached.set_epoch(epoch)
        pixels.set_epoch(epoch)
        for i in (0, len(cached) - 1):
            a, b = cached[i], pixels[i]
            assert a["frames"].shape == (T, MICRO_CFG["embed_dim"]) and a["label"] == b["label"] and a["index"] == i
            with torch.no_grad():
                assert torch.allclose(a["frames"], backbone.encode_image(b["frames"]), atol=1e-5)


@pytest.mark.parametrize("name", VIDEO_MODELS)
def test_encode_video_on_embeddings_equals_pixels(name, backbone):
    torch.manual_seed(0)
    model = create_model(name, backbone=backbone, num_frames=T, **({"fusion_layers": 1} if "transf" in name else {}))
    pixels = torch.randn(2, T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        direct = model.encode_video(pixels)
        cached = model.encode_video(model.encode_frames(pixels))
        labels = ["spinning clockwise", "growing"]
        assert torch.allclose(model.predict_proba(model.encode_frames(pixels), labels),
                              model.predict_proba(pixels, labels), atol=1e-5)
    assert model.accepts_frame_embeddings
    assert torch.allclose(direct, cached, atol=1e-5)
    with pytest.raises(ValueError, match="frame embeddings"):
        model.encode_video(torch.randn(2, T, 7))


def test_xclip_refuses_embeddings(backbone):
    model = create_model("xclip", backbone=backbone, num_frames=T)
    assert not model.accepts_frame_embeddings
    with pytest.raises(ValueError, match="pixel frames"):
        model.encode_video(torch.randn(2, T, MICRO_CFG["embed_dim"]))
    with pytest.raises(ValueError, match="pixel frames"):
        model(torch.randn(2, T, MICRO_CFG["embed_dim"]), ["growing", "shrinking"])


def test_trainer_and_evaluate_run_on_features(features, manifest, micro, tmp_path):
    torch.manual_seed(0)
    model = create_model("actionclip-transf", backbone=MICRO, pretrained=micro[0], num_frames=T, fusion_layers=1)
    model.backbone.visual.requires_grad_(False)
    train = FrameFeatureDataset(features, manifest, "train", sampler=FrameSampler("tsn", T, train=True))
    cfg = TrainConfig(epochs=6, device="cpu", out_dir=str(tmp_path / "run"), results_dir=str(tmp_path / "results"),
                      data=DataConfig(num_frames=T, batch_size=8, eval_split=None),
                      optim=OptimConfig(lr=1e-3, fusion_lr_mult=1.0, warmup_epochs=0.0, amp=False),
                      objective=ObjectiveConfig("actionclip", {"texts": "classes"}))
    trainer = Trainer(cfg, model, train, progress=False)
    visual_before = [p.clone() for p in model.backbone.visual.parameters()]
    trainer.fit()
    losses = [h["loss"] for h in trainer.history if h["split"] == "train"]
    assert losses[-1] < losses[0]
    assert all(torch.equal(a, b) for a, b in zip(visual_before, model.backbone.visual.parameters(), strict=True))

    test_sampler = FrameSampler("tsn", T, train=False)
    on_features = evaluate(model, FrameFeatureDataset(features, manifest, "test", sampler=test_sampler),
                           batch_size=4, progress=False)
    pixels = VideoDataset.from_manifest(manifest, "test", sampler=test_sampler, transform=eval_transform(SIZE))
    on_pixels = evaluate(model, pixels, batch_size=4, progress=False)
    assert on_features["num_samples"] == on_pixels["num_samples"] > 0
    assert on_features["top1"] == on_pixels["top1"]
    assert on_features["nll"] == pytest.approx(on_pixels["nll"], abs=1e-4)

    dense = FrameSampler("dense", frames=2, num_clips=2)
    views = evaluate(model, FrameFeatureDataset(features, manifest, "test", sampler=dense), views=2, batch_size=4,
                     progress=False)
    assert views["views"] == 2 and views["num_samples"] == on_features["num_samples"]


def test_bf16_features_are_close_and_keyed_apart(features, manifest, micro, cache_root):
    cache = FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root, dtype="bf16", progress=False)
    assert cache.key != FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root).key
    half = cache.get()
    assert half.features.dtype == torch.float32 and half.meta["dtype"] == "bf16"
    similarity = torch.nn.functional.cosine_similarity(half.features, features.features)
    assert similarity.min() > 0.99 and not torch.equal(half.features, features.features)
    assert cache.agreement(half) == pytest.approx(float(similarity[: 2 * FRAMES].min()), abs=1e-5)
    assert FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root).agreement(features) > 0.99999
    with pytest.raises(ValueError, match="dtype"):
        FrameFeatureCache(manifest, MICRO, micro[0], SIZE, dtype="int8")


def test_max_frames_caches_segment_centres(manifest, micro, cache_root, features, backbone):
    """Fewer cached frames: the segment centres of each clip, and a key of their own."""
    full = FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root, progress=False)
    half = FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root, max_frames=FRAMES // 2,
                             progress=False)
    assert half.key != full.key and f"-n{FRAMES // 2}-" in half.key and "-n" not in full.key
    assert frame_indices(FRAMES, FRAMES // 2) == list(range(1, FRAMES, 2))
    assert frame_indices(FRAMES, None) == frame_indices(FRAMES, FRAMES) == list(range(FRAMES))
    fewer = half.get()
    assert fewer.num_frames(0) == FRAMES // 2
    assert torch.allclose(fewer.frames(0), features.frames(0, frame_indices(FRAMES, FRAMES // 2)), atol=1e-5)
    with pytest.raises(ValueError, match="max_frames=0"):
        FrameFeatureCache(manifest, MICRO, micro[0], SIZE, root=cache_root, max_frames=0)
