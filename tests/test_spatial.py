"""Spatial distillation: prompt ensembles, frame aggregation, the target cache, target quality, ground-truth targets,
vocabulary files, the multi-task student and objective, a short training run, and the `spatial-targets` command."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from actiondistill.cli import main
from actiondistill.config import DataConfig, ObjectiveConfig, OptimConfig, TrainConfig
from actiondistill.data.datasets import VideoDataset
from actiondistill.data.sampling import FrameSampler
from actiondistill.data.synthetic import generate
from actiondistill.data.transforms import eval_transform
from actiondistill.engine.objectives import ActionCLIPObjective, build_objective
from actiondistill.frame_cache import FrameFeatureCache, FrameFeatureDataset
from actiondistill.io import read_json
from actiondistill.models import create_backbone, create_model, get_tokenizer, load_weights, save_weights
from actiondistill.pretrain.frames import frame_indices
from actiondistill.spatial import (
    SpatialTargetCache,
    SpatialTargetDataset,
    SpatialTargets,
    Vocabulary,
    aggregate_frames,
    ensemble_text_embeddings,
    frame_probabilities,
    ground_truth_targets,
    head_quality,
    manifest_vocabularies,
    negative_text_embedding,
    quality_metrics,
    read_vocabulary,
    target_quality,
)
from actiondistill.train import Trainer, _seen_or_heldout

MICRO = "test-micro-spatial"
MICRO_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
SIZE, FRAMES, T, K = 32, 6, 4, 3


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A tiny CLIP architecture registered with open_clip, and a weight file of it."""
    folder = tmp_path_factory.mktemp("micro")
    (folder / f"{MICRO}.json").write_text(json.dumps(MICRO_CFG))
    open_clip.add_model_config(folder / f"{MICRO}.json")
    torch.manual_seed(0)
    path = folder / "weights.pt"
    torch.save(create_backbone(MICRO).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    generate(out, videos=24, size=SIZE, frames=FRAMES, workers=1, progress=False)
    return out / "manifest.json"


@pytest.fixture(scope="module")
def features(manifest, weights, tmp_path_factory):
    return FrameFeatureCache(manifest, MICRO, weights, SIZE, root=tmp_path_factory.mktemp("features"),
                             progress=False).get()


@pytest.fixture(scope="module")
def objects_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "objects.txt"
    path.write_text("# things that may be in view\ntree\n\nhouse\nball\n")
    return path


@pytest.fixture(scope="module")
def vocabularies(manifest, objects_file):
    return [*manifest_vocabularies(read_json(manifest), ("shape", "scene")).values(), read_vocabulary(objects_file)]


@pytest.fixture(scope="module")
def clip_targets(manifest, weights, features, vocabularies, tmp_path_factory):
    cache = SpatialTargetCache(manifest, vocabularies, MICRO, weights, frames=K, features=features,
                               root=tmp_path_factory.mktemp("targets"), progress=False)
    targets = cache.get()
    assert cache.computed and cache.path.is_file()
    return cache, targets


# ---------------------------------------------------------------------------------------------- the arithmetic
def test_prompt_ensemble_averages_unit_embeddings(manifest):
    vocab = Vocabulary("shape", ("circle", "star"), ("a {}", "a photo of a {}", "{} shape"))
    table = {p: torch.randn(5, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(vocab.all_prompts())}

    def encode(prompts):
        return torch.stack([table[p] * (1 + 9 * i) for i, p in enumerate(prompts)])  # norms must not matter

    got = ensemble_text_embeddings(encode, vocab)
    for c in range(2):
        units = torch.stack([F.normalize(table[p], dim=0) for p in vocab.prompts(c)])
        assert torch.allclose(got[c], F.normalize(units.mean(0), dim=0), atol=1e-6)
    assert torch.allclose(got.norm(dim=1), torch.ones(2))
    negative = negative_text_embedding(encode, ["a {}".format("circle"), "star shape"])
    expected = F.normalize(F.normalize(table["a circle"], dim=0) + F.normalize(table["star shape"], dim=0), dim=0)
    assert torch.allclose(negative, expected, atol=1e-6)

    scene = manifest_vocabularies(read_json(manifest), ("scene",))["scene"]
    beach = scene.concepts.index("beach")
    assert scene.prompts(beach) == [t.format("on the beach") for t in scene.templates] and len(scene.templates) > 1


def test_frame_probabilities_and_aggregation():
    frames = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0]])  # (K=3, D=2): two frames of concept 0, one of 1
    text = torch.eye(2)
    probs = frame_probabilities(frames, text, temperature=1.0)
    a, b = np.e / (np.e + 1), 1 / (np.e + 1)
    assert torch.allclose(probs, torch.tensor([[a, b], [a, b], [b, a]]), atol=1e-6)
    assert torch.allclose(aggregate_frames(probs, "mean"), torch.tensor([(2 * a + b) / 3, (a + 2 * b) / 3]), atol=1e-6)
    assert torch.allclose(aggregate_frames(probs, "max"), torch.tensor([0.5, 0.5]))  # renormalised peaks
    assert torch.allclose(aggregate_frames(probs, "max", multi_label=True), torch.tensor([a, a]), atol=1e-6)
    sharp = frame_probabilities(frames, text, temperature=0.01)
    assert torch.allclose(aggregate_frames(sharp, "mean"), torch.tensor([2 / 3, 1 / 3]), atol=1e-6)

    negative = torch.tensor([1.0, 1.0])  # cos 0.7071 with every frame
    multi = frame_probabilities(frames, text, temperature=0.5, negative=negative)
    c = 2 ** -0.5
    expected = torch.sigmoid((torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]) - c) / 0.5)
    assert torch.allclose(multi, expected, atol=1e-6)
    batched = frame_probabilities(torch.stack([frames, frames.flip(0)]), text, temperature=1.0)
    assert batched.shape == (2, 3, 2) and torch.allclose(aggregate_frames(batched)[0], aggregate_frames(probs))
    with pytest.raises(ValueError, match="aggregate"):
        aggregate_frames(probs, "median")
    with pytest.raises(ValueError, match="temperature"):
        frame_probabilities(frames, text, temperature=0.0)


# ---------------------------------------------------------------------------------------------- the cache
def test_targets_follow_the_frozen_clip(clip_targets, features, weights, manifest):
    cache, targets = clip_targets
    clips = read_json(manifest)["clips"]
    assert targets.paths == [c["path"] for c in clips] and targets.names == ["shape", "scene", "objects"]
    assert targets.head_sizes() == {"shape": 7, "scene": 6, "objects": 3} and targets.multi_label == ["objects"]
    assert np.allclose(targets.targets["shape"].sum(1), 1, atol=1e-5)
    objects = targets.targets["objects"]
    assert ((objects >= 0) & (objects <= 1)).all() and not np.allclose(objects.sum(1), 1)  # independent presences
    assert "frame features" in targets.meta["frame_embeddings"]

    model = create_backbone(MICRO, pretrained=weights)
    tokenizer = get_tokenizer(model)
    vocab = targets.vocabularies["scene"]
    with torch.no_grad():
        text = F.normalize(model.encode_text(tokenizer(vocab.all_prompts())), dim=-1).view(6, -1, 32).mean(1)
        clip = 5
        frames = features.frames(clip, frame_indices(FRAMES, K))
        probs = (F.normalize(frames, dim=-1) @ F.normalize(text, dim=-1).T / cache.temperature).softmax(-1).mean(0)
    assert np.allclose(targets.targets["scene"][clip], probs.numpy(), atol=1e-5)


def test_cache_is_reused_and_keyed(clip_targets, manifest, weights, features, vocabularies, monkeypatch):
    cache, targets = clip_targets
    monkeypatch.setattr(SpatialTargetCache, "compute", lambda self: pytest.fail("targets were recomputed"))
    monkeypatch.setattr("actiondistill.frame_cache.compute_together", lambda _: pytest.fail("frames were re-encoded"))
    again = SpatialTargetCache(manifest, vocabularies, MICRO, weights, frames=K, features=features, root=cache.root,
                               progress=False)
    loaded = again.get()
    assert not again.computed and again.key == cache.key
    assert all(np.array_equal(loaded.targets[n], targets.targets[n]) for n in targets.names)
    assert loaded.vocabularies == targets.vocabularies and loaded.meta["key"] == cache.key
    monkeypatch.undo()

    warmer = SpatialTargetCache(manifest, vocabularies, MICRO, weights, frames=K, temperature=0.05,
                                features=features, root=cache.root, progress=False)
    assert warmer.key != cache.key
    other = warmer.get()
    assert warmer.computed and warmer.path.is_file() and warmer.path != cache.path
    assert not np.allclose(other.targets["shape"], targets.targets["shape"])
    warmer.path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable spatial-target file"):
        warmer.get()
    for change in ({"frames": K + 1}, {"aggregate": "max"}, {"vocabularies": vocabularies[:2]}):
        options = {"frames": K, "vocabularies": vocabularies, **change}
        assert SpatialTargetCache(manifest, options.pop("vocabularies"), MICRO, weights, features=features,
                                  root=cache.root, **options).key != cache.key
    with pytest.raises(ValueError, match="frame size"):
        SpatialTargetCache(manifest, vocabularies, MICRO, weights, size=SIZE + 8, features=features)


def test_direct_encoding_matches_the_feature_cache(clip_targets, manifest, weights, vocabularies, tmp_path):
    cache, targets = clip_targets
    direct = SpatialTargetCache(manifest, vocabularies, MICRO, weights, frames=K, reuse_features=False,
                                root=tmp_path, batch_size=5, progress=False)
    assert direct.key == cache.key  # the same numbers, however the frames were encoded
    computed = direct.compute()
    assert computed.meta["frame_embeddings"] == "encoded directly"
    for name in targets.names:
        assert np.allclose(computed.targets[name], targets.targets[name], atol=1e-4)


# ---------------------------------------------------------------------------------------------- quality, ground truth
def test_quality_metrics_on_hand_made_targets():
    truth = np.array([0, 1, 2, 2])
    perfect = quality_metrics(np.eye(3)[truth], truth)
    assert perfect["top1"] == 100.0 and perfect["true_prob"] == 1.0 and perfect["ece"] == 0.0
    uniform = quality_metrics(np.full((4, 3), 1 / 3), truth)
    assert uniform["top1"] == pytest.approx(uniform["chance"]) == pytest.approx(100 / 3)
    assert uniform["true_prob"] == pytest.approx(1 / 3) and uniform["ece"] == pytest.approx(0.0, abs=1e-9)
    assert uniform["majority"] == 50.0 and uniform["classes"] == 3 and uniform["clips"] == 4
    hedged = quality_metrics(np.array([[0.6, 0.4], [0.6, 0.4]]), np.array([0, 1]))
    assert hedged["top1"] == 50.0 and hedged["true_prob"] == pytest.approx(0.5)
    assert hedged["ece"] == pytest.approx(0.1)  # confident 0.6, right half of the time
    with pytest.raises(ValueError, match="indices"):
        quality_metrics(np.eye(3), np.array([0, 1, 3]))


def test_ground_truth_targets_are_one_hot(manifest, clip_targets):
    truth = ground_truth_targets(manifest)
    data = read_json(manifest)
    assert truth.names == ["shape", "colour", "scene", "size"] and truth.meta["source"] == "ground_truth"
    for name, array in truth.targets.items():
        assert set(np.unique(array)) == {0.0, 1.0} and (array.sum(1) == 1).all()
        values = [data["attributes"][name][i] for i in array.argmax(1)]
        assert values == [c["attributes"][name] for c in data["clips"]]
    quality = target_quality(truth, manifest)
    assert all(q["top1"] == 100.0 and q["ece"] == 0.0 for q in quality.values())

    _, targets = clip_targets
    uniform = SpatialTargets(targets.root, targets.paths, {n: np.full_like(a, 1 / a.shape[1]) for n, a in
                                                           targets.targets.items()}, targets.vocabularies)
    measured = target_quality(uniform, manifest, splits=["test"])
    assert set(measured) == {"shape", "scene"}  # objects: multi-label, no ground truth
    assert all(q["top1"] == pytest.approx(q["chance"]) for q in measured.values())
    assert measured["shape"]["clips"] == sum(c["split"] == "test" for c in data["clips"])


def test_vocabulary_files(tmp_path, objects_file):
    objects = read_vocabulary(objects_file)
    assert objects.name == "objects" and objects.concepts == ("tree", "house", "ball") and objects.multi_label
    scenes = tmp_path / "scenes.txt"
    scenes.write_text("kitchen\nbeach\n")
    assert not read_vocabulary(scenes).multi_label and len(read_vocabulary(scenes).templates) > 1
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        read_vocabulary(tmp_path / "nowhere.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n   \n")
    with pytest.raises(ValueError, match="empty.txt: no concepts"):
        read_vocabulary(empty)
    twice = tmp_path / "twice.txt"
    twice.write_text("Chair\ntable\nchair\n")
    with pytest.raises(ValueError, match=r"twice.txt:3: concept 'chair' repeats line 1"):
        read_vocabulary(twice)
    with pytest.raises(ValueError, match="vocabulary name"):
        read_vocabulary(scenes, name="my scenes")
    with pytest.raises(ValueError, match="no prompt templates"):
        manifest_vocabularies({"attributes": {"occluded": ["no", "yes"]}}, ("occluded",))


# ---------------------------------------------------------------------------------------------- the student
def _batch(model, targets, classes=5, batch=4):
    generator = torch.Generator().manual_seed(3)
    return {"frames": torch.randn(batch, T, model.embed_dim, generator=generator),
            "label": torch.tensor([0, 1, 2, 1])[:batch],
            "spatial_targets": {n: torch.randn(batch, c, generator=generator).softmax(1)
                                for n, c in targets.items()}}


def test_multitask_heads_and_lambda_zero(weights, tmp_path):
    heads = {"shape": 7, "scene": 6}
    model = create_model("spatial-multitask", backbone=MICRO, pretrained=weights, num_frames=T, fusion="transf",
                         fusion_layers=1, spatial_heads=heads).train()
    assert model.accepts_frame_embeddings
    texts = ["moving left", "growing", "spinning clockwise", "shrinking", "blinking"]
    batch = _batch(model, heads)
    loss, metrics = build_objective("spatial_multitask", weight=0.5, texts="classes")(model, batch, {}, texts)
    loss.backward()
    for name in heads:
        assert model.spatial_heads[name][1].weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fusion.parameters())
    assert set(metrics) >= {"loss", "action_loss", "acc", "spatial_loss", "spatial/shape", "spatial_acc/scene"}
    assert float(metrics["loss"]) == pytest.approx(float(metrics["action_loss"]) + 0.5 * float(metrics["spatial_loss"]))

    for texts_mode in ("batch", "classes"):
        model.seed_templates(0)
        action, _ = ActionCLIPObjective(texts=texts_mode)(model, batch, {}, texts)
        model.seed_templates(0)
        total, _ = build_objective("spatial_multitask", weight=0.0, texts=texts_mode)(model, batch, {}, texts)
        assert torch.equal(total, action)

    only = build_objective("spatial_multitask", objectives=["scene"], weights={"scene": 2.0})
    _, metrics = only(model, batch, {}, texts)
    assert "spatial/scene" in metrics and "spatial/shape" not in metrics
    assert float(metrics["spatial_loss"]) == pytest.approx(2 * float(metrics["spatial/scene"]))
    with pytest.raises(ValueError, match="no head"):
        build_objective("spatial_multitask", objectives=["colour"])(model, batch, {}, texts)
    with pytest.raises(ValueError, match="no spatial targets"):
        only(model, {**batch, "spatial_targets": {}}, {}, texts)
    plain = create_model("actionclip-meanp", backbone=MICRO, num_frames=T)
    with pytest.raises(ValueError, match="no spatial heads"):
        only(plain, batch, {}, texts)

    save_weights(model, tmp_path / "student.pt")
    fresh = create_model("spatial-multitask", backbone=MICRO, num_frames=T, fusion_layers=1, spatial_heads=heads)
    assert load_weights(fresh, tmp_path / "student.pt").ok
    frames_model = create_model("spatial-multitask", backbone=MICRO, num_frames=T, fusion="meanP",
                                spatial_heads={"objects": 3}, head_input="frames")
    logits, outputs = frames_model(batch["frames"], texts, heads=True)
    assert logits.shape == (4, 5) and outputs["objects"].shape == (4, 3)
    assert frames_model.predict_spatial(batch["frames"])["objects"].shape == (4, 3)
    with pytest.raises(ValueError, match="spatial_heads"):
        create_model("spatial-multitask", backbone=MICRO, num_frames=T)


def test_dataset_wrapper_over_pixels_and_features(features, manifest, clip_targets):
    _, targets = clip_targets
    sampler = FrameSampler("tsn", frames=T, train=False)
    on_features = SpatialTargetDataset(FrameFeatureDataset(features, manifest, "test", sampler=sampler), targets)
    pixels = VideoDataset.from_manifest(manifest, "test", sampler=sampler, transform=eval_transform(SIZE))
    on_pixels = SpatialTargetDataset(pixels, targets, objectives=["scene"])
    assert len(on_features) == len(on_pixels) > 0 and on_features.classes == pixels.classes
    rows = targets.rows([p.path for p in pixels.samples])
    for i in range(len(on_pixels)):
        a, b = on_features[i], on_pixels[i]
        assert set(b["spatial_targets"]) == {"scene"} and a["label"] == b["label"]
        assert torch.equal(a["spatial_targets"]["scene"], b["spatial_targets"]["scene"])
        assert np.array_equal(a["spatial_targets"]["objects"].numpy(), targets.targets["objects"][rows[i]])
    partial = SpatialTargets(targets.root, targets.paths[:2], {n: a[:2] for n, a in targets.targets.items()},
                             targets.vocabularies)
    with pytest.raises(KeyError, match="no spatial targets"):
        SpatialTargetDataset(FrameFeatureDataset(features, manifest, "train"), partial)


def test_training_decreases_the_spatial_loss(features, manifest, weights, tmp_path):
    truth = ground_truth_targets(manifest)
    torch.manual_seed(0)
    model = create_model("spatial-multitask", backbone=MICRO, pretrained=weights, num_frames=T, fusion="transf",
                         fusion_layers=1, spatial_heads=truth.head_sizes())
    model.backbone.requires_grad_(False)
    train = FrameFeatureDataset(features, manifest, "train", sampler=FrameSampler("tsn", T, train=True))
    train = SpatialTargetDataset(_seen_or_heldout(train, manifest, "train", zero_shot=False), truth)
    cfg = TrainConfig(epochs=6, device="cpu", out_dir=str(tmp_path / "run"), results_dir=str(tmp_path / "results"),
                      data=DataConfig(num_frames=T, batch_size=4, eval_split=None),
                      optim=OptimConfig(lr=1e-2, fusion_lr_mult=1.0, warmup_epochs=0.0, weight_decay=0.0, amp=False),
                      objective=ObjectiveConfig("spatial_multitask", {"weight": 1.0, "texts": "classes",
                                                                       "weights": {"size": 0.5}}))
    trainer = Trainer(cfg, model, train, progress=False)
    trainer.fit()
    epochs = [h for h in trainer.history if h["split"] == "train"]
    uniform = sum(0.5 * np.log(c) if n == "size" else np.log(c) for n, c in truth.head_sizes().items())
    assert epochs[-1]["spatial_loss"] < min(epochs[0]["spatial_loss"], uniform) - 0.3  # below a uniform guess's
    assert {"spatial/shape", "spatial_acc/colour", "action_loss"} <= set(epochs[-1])

    seen = FrameFeatureDataset(features, manifest, "train", sampler=FrameSampler("tsn", T, train=False))
    heads = head_quality(model, SpatialTargetDataset(seen, truth), batch_size=5, progress=False)
    assert set(heads) == set(truth.names) and model.training  # the model's mode is restored
    assert np.mean([q["true_prob"] * q["classes"] for q in heads.values()]) > 1.0  # better than uniform on average


# ---------------------------------------------------------------------------------------------- the command
def test_cli_computes_then_reuses(manifest, weights, objects_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path / "data"))
    argv = ["spatial-targets", "--manifest", str(manifest), "--clip", str(weights), "--backbone", MICRO,
            "--frames", "2", "--temperature", "0.05", "--vocab", str(objects_file), "--split", "test",
            "--no-progress", "--json", str(tmp_path / "out.json")]
    assert main(argv) == 0
    result = read_json(tmp_path / "out.json")
    assert not result["reused"] and result["frames"] == 2 and result["clips"] == 24
    assert set(result["objectives"]) == {"shape", "colour", "scene", "size", "objects"}
    assert set(result["quality"]) == {"shape", "colour", "scene", "size"}
    assert all(0 <= q["top1"] <= 100 for q in result["quality"].values())
    assert (tmp_path / "data" / "cache" / "spatial_targets").is_dir()
    assert "quality against the ground truth (test)" in capsys.readouterr().out
    assert main(argv) == 0 and read_json(tmp_path / "out.json")["reused"]
    assert main([*argv[:-2], "--attributes", "", "--vocab", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: no such vocabulary file" in capsys.readouterr().err
