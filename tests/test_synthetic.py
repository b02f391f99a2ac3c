"""SynthActions: vocabulary, constructive time reversal, visible attributes, dataset writing and the CLI."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import av
import numpy as np
import pytest

from actiondistill.cli import main
from actiondistill.data.synthetic import (
    ATTRIBUTES,
    COLOURS,
    action_classes,
    action_parts,
    caption,
    frame_ground_truth,
    generate,
    load_manifest,
    render_clip,
    reverse_action,
    reversed_spec,
    sample_spec,
    zeroshot_classes,
)

SMALL = {"size": 64, "frames": 16}  # big enough that x264 non-determinism would show
CLEAN = {"distractors": 0, "occluded": False, "noise": 0.0, "jitter": 0.0, "lighting": 0.0}
HAND = (25, 25, 25)


def decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def mask_of(frame: np.ndarray, colour, tol: int = 2) -> np.ndarray:
    return np.all(np.abs(frame.astype(int) - np.array(colour)) <= tol, axis=-1)


def centroid(frame: np.ndarray, colour) -> np.ndarray:
    ys, xs = np.nonzero(mask_of(frame, colour))
    assert len(xs), f"no pixels of colour {colour}"
    return np.array([xs.mean(), ys.mean()])


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The same dataset rendered twice (pool and in-process) plus one with another seed."""
    root = tmp_path_factory.mktemp("synth")
    a = generate(root / "a", 12, seed=3, workers=2, progress=False, **SMALL)
    b = generate(root / "b", 12, seed=3, workers=1, progress=False, **SMALL)
    c = generate(root / "c", 12, seed=4, workers=1, progress=False, **SMALL)
    return root, a, b, c


def test_vocabulary_is_compositional():
    classes, held_out = action_classes(), zeroshot_classes()
    assert 24 <= len(classes) <= 30 and len(set(classes)) == len(classes)
    assert 4 <= len(held_out) <= 6 and classes[-len(held_out):] == held_out
    seen = [action_parts(c) for c in classes[: -len(held_out)]]
    for label in held_out:  # new label text, but its verb and direction were both seen
        verb, direction = action_parts(label)
        assert any(v == verb for v, _ in seen) and any(d == direction for _, d in seen)
        assert (verb, direction) not in seen
    with pytest.raises(ValueError, match="unknown action label 'flying'"):
        action_parts("flying")


def test_reverse_action_is_an_involution():
    symmetric = []
    for label in action_classes():
        partner = reverse_action(label)
        if partner is None:
            symmetric.append(label)
            continue
        assert partner != label and reverse_action(partner) == label
        assert (partner in zeroshot_classes()) == (label in zeroshot_classes())
    assert sorted(symmetric) == ["blinking", "shaking"]
    assert reverse_action("moving left") == "moving right"
    assert reverse_action("moving towards the tree") == "moving away from the tree"


@pytest.mark.parametrize("label", action_classes())
def test_reversed_spec_renders_the_time_reversal(label):
    # every nuisance switched on, so that its sequence must be reversed too
    spec = sample_spec(11, label, distractors=3, occluded=True, noise=5.0, jitter=0.03, lighting=1.0)
    back = reversed_spec(spec)
    assert back.label == (reverse_action(label) or label)
    assert reversed_spec(back) == spec
    clip = render_clip(spec, 32, 10)
    np.testing.assert_array_equal(render_clip(back, 32, 10), clip[::-1])
    assert not np.array_equal(clip[0], clip[-1])


def test_spatial_attributes_are_visible_in_one_frame():
    for colour in COLOURS:
        frame = render_clip(sample_spec(5, "moving left", colour=colour, **CLEAN), 64, 2)[0]
        assert mask_of(frame, COLOURS[colour], tol=0).sum() >= 5, colour
    means = [render_clip(sample_spec(5, "growing", scene=s, **CLEAN), 64, 2)[0].mean(axis=(0, 1))
             for s in ATTRIBUTES["scene"]]
    assert min(np.abs(a - b).max() for i, a in enumerate(means) for b in means[i + 1:]) > 8
    areas = [mask_of(render_clip(sample_spec(5, "moving up", size=s, shape="square", **CLEAN), 64, 2)[0],
                     COLOURS[sample_spec(5, "moving up").colour]).sum() for s in ATTRIBUTES["size"]]
    assert areas[0] < areas[1] < areas[2]


@pytest.mark.parametrize("seed", [0, 1])
def test_main_object_stays_in_frame(seed):
    for label in action_classes():
        spec = sample_spec(seed, label, **CLEAN)
        clip = render_clip(spec, 64, 32)
        for t, frame in enumerate(clip):
            mask = mask_of(frame, COLOURS[spec.colour], tol=60)
            if label != "blinking":
                assert mask.any(), (label, t)
            assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()), (label, t)


def test_motion_follows_the_label():
    def track(label):
        spec = sample_spec(2, label, scene="kitchen", size="large", shape="circle", **CLEAN)
        clip = render_clip(spec, 96, 16)
        return spec, np.array([centroid(f, COLOURS[spec.colour]) for f in clip]), clip

    for label, axis, sign in [("moving left", 0, -1), ("moving right", 0, 1), ("moving up", 1, -1),
                              ("moving down", 1, 1), ("rolling right", 0, 1)]:
        _, path, _ = track(label)
        assert sign * (path[-1, axis] - path[0, axis]) > 15, label
    for label, near in [("moving towards the tree", True), ("moving away from the house", False)]:
        spec, path, _ = track(label)
        landmark = np.array(spec.landmarks[0 if "tree" in label else 1]) * 96
        change = np.hypot(*(path[-1] - landmark)) - np.hypot(*(path[0] - landmark))
        assert (change < -10) if near else (change > 10), label
    for label, sign in [("spinning clockwise", 1), ("spinning counterclockwise", -1), ("rolling right", 1)]:
        spec, path, clip = track(label)
        hands = np.array([centroid(f, HAND) for f in clip]) - path
        turned = np.diff(np.unwrap(np.arctan2(hands[:, 1], hands[:, 0])))  # image y down: clockwise is positive
        assert np.all(sign * turned > 0), label
    spec, path, _ = track("circling counterclockwise")
    around = path - np.array(spec.centre) * 96
    assert np.all(np.diff(np.unwrap(np.arctan2(around[:, 1], around[:, 0]))) < 0)
    spec, _, clip = track("growing")
    areas = [mask_of(f, COLOURS[spec.colour]).sum() for f in clip]
    assert areas[-1] > 2 * areas[0]


def test_sample_spec_is_deterministic_and_checked():
    assert sample_spec(9) == sample_spec(9) and sample_spec(9) != sample_spec(10)
    spec = sample_spec(9, "shaking", shape="star", colour="red", scene="beach", size="small")
    assert caption(spec) == "a small red star shaking on the beach"
    with pytest.raises(ValueError, match="unknown fields"):
        sample_spec(1, "moving left", texture="wood")
    with pytest.raises(ValueError, match="unknown colour 'teal'"):
        sample_spec(1, "moving left", colour="teal")
    with pytest.raises(ValueError, match="even"):
        render_clip(spec, 33, 4)


def test_render_sizes():
    spec = sample_spec(4, "zigzagging up")
    for size in (64, 80, 112):
        clip = render_clip(spec, size, 6)
        assert clip.shape == (6, size, size, 3) and clip.dtype == np.uint8


def test_generate_is_deterministic(datasets):
    root, a, b, c = datasets
    assert (root / "a/manifest.json").read_bytes() == (root / "b/manifest.json").read_bytes()
    assert (root / "a/manifest.json").read_bytes() != (root / "c/manifest.json").read_bytes()
    assert a == b == load_manifest(root / "a") and a != c
    for clip in a["clips"]:  # rendered by other processes in another order, yet the same bytes
        assert (root / "a" / clip["path"]).read_bytes() == (root / "b" / clip["path"]).read_bytes(), clip["path"]
    first = a["clips"][0]["path"]
    np.testing.assert_array_equal(decode(root / "a" / first), decode(root / "b" / first))
    assert not np.array_equal(decode(root / "a" / first), decode(root / "c" / first))


def test_every_clip_decodes(datasets):
    root, a, _, _ = datasets
    for clip in a["clips"]:
        frames = decode(root / "a" / clip["path"])
        assert frames.shape == (SMALL["frames"], SMALL["size"], SMALL["size"], 3)
        assert clip["caption"].startswith(f"a {clip['attributes']['size']} {clip['attributes']['colour']}")
        assert clip["label_text"] in clip["caption"]


def test_splits_hold_out_the_zeroshot_compositions(tmp_path):
    classes = action_classes()
    manifest = generate(tmp_path, 3 * len(classes), size=16, frames=2, workers=1, progress=False)
    seen = manifest["num_seen_classes"]
    assert manifest["classes"] == classes and manifest["zeroshot_classes"] == zeroshot_classes()
    by_split = {split: Counter(c["label"] for c in manifest["clips"] if c["split"] == split)
                for split in ("train", "val", "test", "zeroshot")}
    assert set(by_split["train"]) == set(range(seen))  # every seen class is trained on
    assert all(label < seen for split in ("train", "val", "test") for label in by_split[split])
    assert set(by_split["zeroshot"]) == set(range(seen, len(classes)))
    assert sum(by_split["zeroshot"].values()) == round(0.15 * len(manifest["clips"]))
    assert set(by_split["val"]) and set(by_split["test"])
    tiny = Counter(c["split"] for c in generate(tmp_path / "tiny", 12, size=16, frames=2, workers=1,
                                                progress=False)["clips"])
    assert tiny["val"] >= 1 and tiny["test"] >= 1 and tiny["zeroshot"] >= 1


def test_load_manifest_names_the_file(tmp_path, datasets):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_manifest(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        load_manifest(broken)
    bad = dict(datasets[1])
    bad["clips"] = [dict(bad["clips"][0], label=99)]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="bad.json: clip 0 .*label 99"):
        load_manifest(tmp_path / "bad.json")


def test_resume_reuses_existing_clips(tmp_path, datasets):
    root = datasets[0]
    folder = tmp_path / "copy"
    shutil.copytree(root / "a", folder)
    expected = (folder / "manifest.json").read_bytes()
    (folder / "manifest.json").unlink()
    lost = folder / "videos/000003.mp4"
    lost_bytes = lost.read_bytes()
    lost.unlink()
    before = {p: p.stat().st_mtime_ns for p in (folder / "videos").glob("*.mp4")}
    generate(folder, 12, seed=3, workers=1, progress=False, **SMALL)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())
    assert lost.read_bytes() == lost_bytes
    assert (folder / "manifest.json").read_bytes() == expected
    with pytest.raises(ValueError, match="generation.json.*other arguments"):
        generate(folder, 12, seed=3, workers=1, progress=False, size=48, frames=16)


def test_cli_json(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), "--videos", "5", "--size", "16", "--frames", "4", "--workers", "1",
            "--no-progress", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["clips"] == 5 and sum(result["splits"].values()) == 5 and result["reused"] == 0
    assert result["classes"] == len(action_classes()) and result["manifest"] == str(out / "manifest.json")
    assert main(["synth", "--out", str(tmp_path / "bad"), "--videos", "0", "--json"]) == 2
    assert "videos=0" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize("label", ["moving towards the tree", "moving away from the tree",
                                   "moving towards the house", "moving away from the house"])
def test_a_landmark_path_names_one_landmark_only(label):
    # "towards the tree" must not be equally "away from the house": the named landmark's distance changes by at
    # least twice the other's, either way (world revision 2 bounded the other's change from one side only)
    named = 0 if "tree" in label else 1
    for seed in range(25):
        truth = frame_ground_truth(sample_spec(seed, label, **CLEAN), 64, 8)
        centre = np.stack([truth["x"], truth["y"]], axis=1)
        landmarks = truth["landmarks"]
        change = [np.hypot(*(centre[-1] - landmarks[-1, k])) - np.hypot(*(centre[0] - landmarks[0, k])) for k in (0, 1)]
        assert abs(change[1 - named]) <= 0.5 * abs(change[named]) + 1e-6, (seed, change)
        assert (change[named] < 0) == ("towards" in label), (seed, change)


@pytest.mark.parametrize("label", ["moving left", "spinning clockwise", "circling counterclockwise", "growing"])
def test_frame_ground_truth_matches_the_pixels(label):
    # camera jitter on: the state must be given in the frame's coordinates, not the canvas's
    spec = sample_spec(7, label, shape="circle", colour="red", **{**CLEAN, "jitter": 0.05})
    clip = render_clip(spec, 64, 12)
    truth = frame_ground_truth(spec, 64, 12)
    assert truth["visible"].all() and truth["landmarks"].shape == (12, 2, 2)
    for t in range(12):
        # 0.6 radius behind the dark stripe: inside the circle, off the stripe (and its rounded end)
        back = np.array([truth["x"][t], truth["y"][t]]) - 0.6 * truth["radius"][t] * np.array(
            [np.cos(truth["angle"][t]), np.sin(truth["angle"][t])])
        col, row = np.floor(back * 64).astype(int)
        assert np.abs(clip[t, row, col].astype(int) - COLOURS["red"]).max() <= 3, (t, clip[t, row, col])
    back = frame_ground_truth(reversed_spec(spec), 64, 12)
    np.testing.assert_allclose(back["x"], truth["x"][::-1])
    np.testing.assert_allclose(back["landmarks"], truth["landmarks"][::-1])


def test_every_class_is_in_both_val_and_test():
    """Plan 1 alternated val and test over a class order of even length, so each got half of the classes."""
    from actiondistill.data.synthetic import _plan

    plan = _plan(2400, 0, (0.7, 0.15, 0.15), 0.15)
    seen = len(action_classes()) - len(zeroshot_classes())
    counts = {split: Counter(label for label, s in plan if s == split) for split in ("val", "test")}
    assert set(counts["val"]) == set(counts["test"]) == set(range(seen))
    assert sum(counts["val"].values()) == sum(counts["test"].values()) == 306
    assert all(abs(counts["val"][c] - counts["test"][c]) <= 1 for c in range(seen))
