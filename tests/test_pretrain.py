"""Embedded CLIP pretraining: frame captions, objectives, the two-stage cached pipeline and its CLI (tiny world)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re

import numpy as np
import pytest
import torch

from actiondistill.cli import main as cli_main
from actiondistill.data.synth_world import action_classes, action_parts
from actiondistill.data.synthetic import load_manifest
from actiondistill.losses import affinity_mimicking_loss, clip_infonce, tinyclip_loss
from actiondistill.models import create_backbone
from actiondistill.pretrain import PretrainConfig, StageConfig, clips_dir, ensure_embedded_clips
from actiondistill.pretrain.frames import (
    CAPTION_ATTRIBUTES,
    FrameCaptionDataset,
    cached_frames,
    frame_indices,
    template_attributes,
)
from actiondistill.pretrain.objectives import (
    CLIPContrastive,
    TinyCLIPDistill,
    attach_attribute_heads,
    attribute_loss,
    caption_matches,
    detach_pretraining_heads,
    matching_infonce,
)
from actiondistill.pretrain.pipeline import inherited_student

WORLD = {"videos": 60, "size": 64, "frames": 8, "seed": 0}
STAGE = StageConfig(epochs=1, batch_size=16, lr=1e-3)
CFG = PretrainConfig(frames_per_clip=1, eval_frames_per_clip=1, base=STAGE, tiny=STAGE, workers=1)
CLI_ARGS = ["pretrain-clip", "--videos", "60", "--frames", "8", "--epochs", "1", "--batch-size", "16",
            "--frames-per-clip", "1", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 60-clip world and both CLIPs trained on it through the CLI (one epoch of a few steps each)."""
    data = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACTIONDISTILL_DATA", str(data))
        from actiondistill.data.sources import synthactions_manifest

        manifest = synthactions_manifest(**WORLD, progress=False)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli_main([*CLI_ARGS, "--json"])
        assert code == 0
        yield {"manifest": manifest, "cli": json.loads(out.getvalue()), "data": data}


@pytest.fixture(scope="module")
def frames(trained):
    return cached_frames(trained["data"] / "frames-test.npz", trained["manifest"], ["train"], 2, workers=1,
                         progress=False)


def _dataset(trained, frames, **kwargs):
    return FrameCaptionDataset(frames["frames"], frames["clip"], load_manifest(trained["manifest"]), **kwargs)


def test_cli_trains_both_clips_that_load_and_report_zero_shot_percentages(trained):
    result = trained["cli"]
    assert result["reused"] is False
    for name in ("embedded-base", "embedded-tiny"):
        model = create_backbone(name, pretrained=result["checkpoints"][name])
        assert model.visual.transformer.width == {"embedded-base": 256, "embedded-tiny": 192}[name]
        scores = result["models"][name]
        assert set(scores["zero_shot"]) == {"shape", "colour", "scene", "position"}
        assert all(0.0 <= v <= 100.0 for v in scores["zero_shot"].values())
        assert scores["chance"] == {"shape": round(100 / 7, 2), "colour": 12.5, "scene": round(100 / 6, 2),
                                    "position": round(100 / 9, 2)}
    report = json.loads(open(result["report"]).read())
    assert report["models"]["embedded-tiny"]["params"]["visual"] < report["models"]["embedded-base"]["params"]["visual"]
    assert report["models"]["embedded-base"]["steps"] >= 1 and report["models"]["embedded-tiny"]["steps"] >= 1


def test_second_call_reuses_without_training(trained, monkeypatch):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(trained["data"]))
    cfg = PretrainConfig(frames_per_clip=1, eval_frames_per_clip=1, base=STAGE, tiny=STAGE)
    paths = trained["cli"]["checkpoints"]
    mtimes = {name: os.stat(p).st_mtime_ns for name, p in paths.items()}
    result = ensure_embedded_clips(trained["manifest"], cfg, progress=False)
    assert result["reused"] is True and result["dir"] == trained["cli"]["dir"]
    assert {name: os.stat(p).st_mtime_ns for name, p in paths.items()} == mtimes
    # the finished stages dropped the Trainer's optimiser checkpoint, keeping its metrics
    run = clips_dir(trained["manifest"], cfg) / "embedded-base-run"
    assert (run / "metrics.jsonl").is_file() and not (run / "checkpoint.pt").exists()


def test_cache_key_follows_the_config_but_not_the_device(trained):
    base = clips_dir(trained["manifest"], CFG, root="r")
    assert clips_dir(trained["manifest"], PretrainConfig(**{**CFG.__dict__, "device": "cpu"}), root="r") == base
    assert clips_dir(trained["manifest"], PretrainConfig(**{**CFG.__dict__, "blend": 0.25}), root="r") != base
    assert base.name.startswith("standard_n60_s64_f8_seed0-")


def test_tiny_starts_from_inherited_slices_of_the_base(trained):
    base = create_backbone("embedded-base", pretrained=trained["cli"]["checkpoints"]["embedded-base"])
    tiny, report = inherited_student(base)
    assert report.layer_map == {"visual": [0, 1, 3, 4, 5], "text": [1, 3, 5]}
    torch.testing.assert_close(tiny.visual.conv1.weight, base.visual.conv1.weight[:16])  # the stem's first filters
    torch.testing.assert_close(tiny.visual.transformer.resblocks[2].mlp.c_fc.weight,
                               base.visual.transformer.resblocks[3].mlp.c_fc.weight[:768, :192])
    q_rows = base.transformer.resblocks[1].attn.in_proj_weight[:128, :128]  # the first 2 heads of q
    torch.testing.assert_close(tiny.transformer.resblocks[0].attn.in_proj_weight[:128], q_rows)
    torch.testing.assert_close(tiny.token_embedding.weight, base.token_embedding.weight[:, :128])
    torch.testing.assert_close(tiny.logit_scale, base.logit_scale)


def test_frame_captions_never_name_the_action_and_vary_with_the_epoch(trained, frames):
    data = _dataset(trained, frames, seed=3)
    action_words = {w for label in action_classes() for w in label.split()} - {"the"}
    manifest = load_manifest(trained["manifest"])
    captions = {}
    for epoch in range(3):
        data.set_epoch(epoch)
        for i in range(len(data)):
            text, template = data.caption(i)
            assert not set(text.split()) & action_words, text
            verb = action_parts(manifest["clips"][int(frames["clip"][i])]["label_text"])[0]
            if verb in ("growing", "shrinking"):
                assert "size" not in template_attributes(template)
            captions.setdefault(i, []).append(text)
    assert any(len(set(c)) > 1 for c in captions.values())
    data.set_epoch(1)
    again = [data.caption(i)[0] for i in range(len(data))]
    assert again == [c[1] for c in captions.values()]
    item = data[0]
    assert item["image"].shape == (3, 64, 64) and item["attributes"].shape == (len(CAPTION_ATTRIBUTES),)


def test_colour_jitter_keeps_hue(trained, frames):
    plain, jittered = _dataset(trained, frames), _dataset(trained, frames, jitter=0.4)
    changed = [i for i in range(8) if not torch.equal(plain[i]["image"], jittered[i]["image"])]
    assert changed
    assert jittered.jitter.hue == 0.0


def test_frames_are_cached_with_their_parameters(trained, frames, tmp_path):
    assert frames["frames"].dtype == np.uint8 and frames["frames"].shape[1:] == (64, 64, 3)
    assert frames["frame"].tolist()[:2] == frame_indices(8, 2) == [2, 6]
    again = cached_frames(trained["data"] / "frames-test.npz", trained["manifest"], ["train"], 2, progress=False)
    np.testing.assert_array_equal(again["frames"], frames["frames"])
    with pytest.raises(ValueError, match=re.escape("frames cached for")):
        cached_frames(trained["data"] / "frames-test.npz", trained["manifest"], ["train"], 1, progress=False)


def test_caption_matches_and_matching_loss_reduce_to_clip_infonce():
    attributes = torch.tensor([[0, 1, 2, 0], [0, 2, 2, 0], [1, 1, 3, 1]])
    mentions = torch.tensor([[True, True, True, True], [True, False, False, False], [False, True, False, False]])
    matches = caption_matches(attributes, mentions)
    # caption 1 says only "shape 0": true of images 0 and 1; caption 2 says only "colour 1": true of 0 and 2
    assert matches.tolist() == [[True, True, True], [False, True, False], [False, False, True]]
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    torch.testing.assert_close(matching_infonce(img, txt, 10.0, torch.eye(3, dtype=torch.bool)),
                               clip_infonce(img, txt, 10.0))
    assert matching_infonce(img, txt, 10.0, matches) != clip_infonce(img, txt, 10.0)


@pytest.mark.parametrize("distill", [False, True])
def test_loss_goes_down_on_a_fixed_batch(trained, frames, distill):
    torch.manual_seed(0)
    data = _dataset(trained, frames)
    batch = torch.utils.data.default_collate([data[i] for i in range(8)])
    student = create_backbone("embedded-tiny").train()
    teachers = {}
    if distill:
        from actiondistill.engine.teachers import Teacher

        teachers = {"teacher": Teacher("teacher", create_backbone("embedded-tiny"))}
    objective = TinyCLIPDistill(blend=0.5) if distill else CLIPContrastive()
    optimizer = torch.optim.AdamW(student.parameters(), lr=2e-4)
    losses = []
    for _ in range(4):
        loss, metrics = objective(student, batch, teachers, [])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert min(losses[-2:]) < losses[0] - 0.05, losses  # the first steps may overshoot; the trend must be down
    assert 0.0 <= float(metrics["acc"]) <= 1.0


def test_distill_objective_with_pair_positives_is_tinyclip_loss(trained, frames):
    from actiondistill.engine.teachers import Teacher

    torch.manual_seed(0)
    data = _dataset(trained, frames)
    batch = torch.utils.data.default_collate([data[i] for i in range(6)])
    student, teacher = create_backbone("embedded-tiny"), create_backbone("embedded-tiny")
    loss, metrics = TinyCLIPDistill(blend=0.3, positives="pairs")(student, batch, {"teacher": Teacher("t", teacher)},
                                                                   [])
    from actiondistill.models import get_tokenizer

    tokens = get_tokenizer(student)(batch["caption"])
    with torch.no_grad():
        s = student(batch["image"], tokens)
        t = teacher(batch["image"], tokens)
    expected = tinyclip_loss(s[0], s[1], t[0], t[1], s[2], t[2], blend=0.3)
    torch.testing.assert_close(loss.detach(), expected)
    torch.testing.assert_close(metrics["mimic"], affinity_mimicking_loss(s[0], s[1], t[0], t[1], s[2], t[2]))


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        ensure_embedded_clips(tmp_path / "nowhere.json", CFG, progress=False)
    with pytest.raises(ValueError, match="positives"):
        CLIPContrastive(positives="all")
    with pytest.raises(ValueError, match="frames per clip"):
        frame_indices(8, 9)


def test_attribute_loss_is_the_heads_cross_entropy_over_known_values():
    model = create_backbone("embedded-tiny")
    heads = attach_attribute_heads(model, [3, 2])
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(4, 256, generator=g), dim=-1)
    attributes = torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0]])
    known = torch.tensor([[True, True], [True, False], [True, True], [True, False]])
    expected = (torch.nn.functional.cross_entropy(heads[0](emb), attributes[:, 0])
                + torch.nn.functional.cross_entropy(heads[1](emb[[0, 2]]), attributes[[0, 2], 1]))
    torch.testing.assert_close(attribute_loss(model, emb, attributes, known), expected)
    detach_pretraining_heads(model)
    assert not any(k.startswith("attribute_heads") for k in model.state_dict())
    with pytest.raises(ValueError, match="attach_attribute_heads"):
        attribute_loss(model, emb, attributes, known)


def test_attribute_weight_adds_the_heads_loss_to_the_contrastive_loss(trained, frames):
    data = _dataset(trained, frames)
    batch = torch.utils.data.default_collate([data[i] for i in range(6)])
    model = create_backbone("embedded-tiny")
    attach_attribute_heads(model, [len(data.vocab[key]) for key in CAPTION_ATTRIBUTES])
    plain, _ = CLIPContrastive()(model, batch, {}, [])
    loss, metrics = CLIPContrastive(attribute_weight=0.5)(model, batch, {}, [])
    torch.testing.assert_close(loss, plain + 0.5 * attribute_loss(model, *_embed(model, batch)))
    assert float(metrics["attribute"]) > 0
    with pytest.raises(ValueError, match="attribute_weight"):
        CLIPContrastive(attribute_weight=-1)


def _embed(model, batch):
    image_emb = model.encode_image(batch["image"], normalize=True)
    return image_emb, batch["attributes"], batch["known"]


def test_size_is_unknown_only_while_the_object_grows_or_shrinks(trained, frames):
    data = _dataset(trained, frames)
    manifest = load_manifest(trained["manifest"])
    for i, clip in enumerate(frames["clip"]):
        verb = action_parts(manifest["clips"][int(clip)]["label_text"])[0]
        assert data[i]["known"].tolist() == [True, True, True, verb not in ("growing", "shrinking"), False]


def test_position_captions_place_the_object_where_the_renderer_drew_it(trained, frames):
    from actiondistill.data.synthetic import clip_spec, frame_ground_truth
    from actiondistill.pretrain.frames import POSITIONS, frame_position, frame_positions

    assert frame_position(0.1, 0.1) == "at the top left" and frame_position(0.5, 0.5) == "in the middle"
    assert frame_position(0.9, 0.5) == "on the right" and frame_position(1.2, 0.99) == "at the bottom right"
    manifest = load_manifest(trained["manifest"])
    positions = frame_positions(manifest, frames["clip"], frames["frame"])
    data = _dataset(trained, frames, positions=positions)
    column = CAPTION_ATTRIBUTES.index("position")
    named = 0
    for i, (clip, t) in enumerate(zip(frames["clip"], frames["frame"], strict=True)):
        truth = frame_ground_truth(clip_spec(manifest, manifest["clips"][int(clip)]), 64, 8)
        expected = frame_position(truth["x"][t], truth["y"][t]) if truth["visible"][t] else None
        assert positions[i] == expected
        assert data.known[i, column] == (expected is not None)
        assert int(data.attributes[i, column]) == (POSITIONS.index(expected) if expected else -1)
        for epoch in range(4):
            data.set_epoch(epoch)
            text, template = data.caption(i)
            if "position" in template_attributes(template):
                assert text.endswith(expected) or f"{expected} " in text
                named += 1
    assert named > 0
    with pytest.raises(ValueError, match="positions: 1 for"):
        _dataset(trained, frames, positions=positions[:1])


def test_frame_states_are_the_renderers_ground_truth_of_each_frame(trained, frames):
    from actiondistill.data.synthetic import frame_ground_truth, sample_spec
    from actiondistill.pretrain.state import STATE_FIELDS, frame_states

    manifest = load_manifest(trained["manifest"])
    states = frame_states(manifest, frames["clip"], frames["frame"])
    assert states.shape == (len(frames["frames"]), len(STATE_FIELDS)) and states.dtype == np.float32
    k = 3
    entry = manifest["clips"][int(frames["clip"][k])]
    truth = frame_ground_truth(sample_spec(entry["seed"], entry["label_text"]), manifest["size"], manifest["frames"])
    t = int(frames["frame"][k])
    expected = [truth["x"][t], truth["y"][t], np.cos(truth["angle"][t]), np.sin(truth["angle"][t]),
                8 * truth["radius"][t], float(truth["visible"][t])]
    np.testing.assert_allclose(states[k], expected, rtol=1e-6, atol=1e-6)
    data = _dataset(trained, frames, states=states)
    torch.testing.assert_close(data[k]["state"], torch.from_numpy(states[k]))
    assert "state" not in _dataset(trained, frames)[k]
    tampered = {**manifest, "clips": [{**c, "attributes": {**c["attributes"], "shape": "nothing"}}
                                      for c in manifest["clips"]]}
    with pytest.raises(ValueError, match="does not reproduce"):
        frame_states(tampered, frames["clip"][:1], frames["frame"][:1])
    with pytest.raises(ValueError, match="one row per frame"):
        _dataset(trained, frames, states=states[:2])


def test_state_weight_adds_the_state_heads_regression_loss(trained, frames):
    from actiondistill.pretrain.objectives import attach_state_head, state_loss
    from actiondistill.pretrain.state import frame_states

    states = frame_states(load_manifest(trained["manifest"]), frames["clip"], frames["frame"])
    data = _dataset(trained, frames, states=states)
    batch = torch.utils.data.default_collate([data[i] for i in range(6)])
    model = create_backbone("embedded-tiny")
    head = attach_state_head(model, states.shape[1])
    image_emb = model.encode_image(batch["image"], normalize=True)
    expected = torch.nn.functional.smooth_l1_loss(head(image_emb * 256**0.5), batch["state"], beta=0.1)
    torch.testing.assert_close(state_loss(model, image_emb, batch["state"]), expected)
    plain, _ = CLIPContrastive()(model, batch, {}, [])
    loss, metrics = CLIPContrastive(state_weight=2.0)(model, batch, {}, [])
    torch.testing.assert_close(loss, plain + 2.0 * expected)
    torch.testing.assert_close(metrics["state"], expected.detach())
    with pytest.raises(ValueError, match="'state'"):
        CLIPContrastive(state_weight=1.0)(model, {k: v for k, v in batch.items() if k != "state"}, {}, [])
    with pytest.raises(ValueError, match="state_weight"):
        TinyCLIPDistill(state_weight=-1)
    detach_pretraining_heads(model)
    assert not any(k.startswith("state_head") for k in model.state_dict())
    with pytest.raises(ValueError, match="attach_state_head"):
        state_loss(model, image_emb, batch["state"])


def test_cli_state_weight_zero_trains_both_stages_without_the_state_head(trained, monkeypatch, capsys):
    def records(result):
        report = json.loads(open(result["report"]).read())
        for name, path in result["checkpoints"].items():
            create_backbone(name, pretrained=path)  # strict: the heads were detached before saving
        return report, [json.loads(open(os.path.join(result["dir"], f"{name}.json")).read())
                        for name in result["checkpoints"]]

    report, stages = records(trained["cli"])  # the default recipe: the state head is on
    assert report["config"]["state_weight"] == PretrainConfig().state_weight == 4.0
    assert all(stage["history"][0]["state"] > 0 for stage in stages)
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(trained["data"]))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main([*CLI_ARGS, "--state-weight", "0", "--json"]) == 0
    result = json.loads(out.getvalue())
    assert result["reused"] is False and result["dir"] != trained["cli"]["dir"]
    report, stages = records(result)
    assert report["config"]["state_weight"] == 0.0
    assert not any("state" in stage["history"][0] for stage in stages)
    capsys.readouterr()
    assert cli_main([*CLI_ARGS, "--state-weight", "-1"]) == 2
    assert "--state-weight -1.0: expected 0 (off)" in capsys.readouterr().err
    assert cli_main([*CLI_ARGS, "--attribute-weight", "-0.5"]) == 2
    assert "--attribute-weight -0.5: expected 0 (off)" in capsys.readouterr().err
