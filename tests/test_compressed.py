"""Compressed-domain data: motion-vector conventions on clips with known motion, accumulation, residuals, the
cache, the dataset, re-encoding, bad input and the `compressed` CLI command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from actiondistill.cli import main
from actiondistill.data.compressed import (
    BFramesError,
    CachedClip,
    cache_path,
    extract,
    extract_all,
    save_clip,
)
from actiondistill.data.compressed_codec import codec_name, decode_with_vectors, motion_summary, reencode_mpeg4
from actiondistill.data.compressed_dataset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MV_BOUND,
    CompressedVideoDataset,
    choose_p_frame,
)
from actiondistill.data.compressed_motion import reconstruct
from actiondistill.data.encode import write_video
from actiondistill.data.video import VideoDecodeError

SIZE, OBJECT, MARGIN = 96, 32, 4


def _smooth_texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Random colours on a coarse grid, cubic-upsampled: block matching needs gradients, which white noise lacks."""
    small = rng.integers(0, 256, (height // cell + 2, width // cell + 2, 3)).astype(np.float32)
    big = cv2.resize(small, (small.shape[1] * cell, small.shape[0] * cell), interpolation=cv2.INTER_CUBIC)
    return np.clip(big[:height, :width], 0, 255).astype(np.uint8)


def _moving_square(dx: int, dy: int, frames: int = 13, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A textured 32x32 square moving (dx, dy) px per frame over a static textured 96x96 background.

    Every 12 frames (at the I-frames of a GOP-12 encode) it jumps back to its start, so long clips stay in view.
    """
    rng = np.random.default_rng(seed)
    background = _smooth_texture(rng, SIZE, SIZE, 8)
    texture = _smooth_texture(rng, OBJECT, OBJECT, 4)
    clip, corners = [], []
    for t in range(frames):
        step = t if frames <= 13 else t % 12
        x, y = 32 - 6 * dx + dx * step, 32 - 6 * dy + dy * step
        frame = background.copy()
        frame[y : y + OBJECT, x : x + OBJECT] = texture
        clip.append(frame)
        corners.append((x, y))
    return np.stack(clip), corners


def _interior(field: np.ndarray, corner: tuple[int, int]) -> np.ndarray:
    x, y = corner
    return field[y + MARGIN : y + OBJECT - MARGIN, x + MARGIN : x + OBJECT - MARGIN].reshape(-1, field.shape[-1])


@pytest.fixture(scope="module")
def moving(tmp_path_factory) -> dict:
    """MPEG-4 Part 2 clip (GOP 12, no B-frames) of the square moving (+2, +1) px per frame, and its extraction."""
    frames, corners = _moving_square(2, 1)
    path = write_video(tmp_path_factory.mktemp("mv") / "square.mp4", frames, codec="mpeg4", gop=12, max_b_frames=0)
    return {"path": path, "corners": corners, "clip": extract(path), "d": (2, 1)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[tuple[Path, int]]:
    """Three short labelled clips of 64x64: two MPEG-4 with 30 frames (3 GOPs), one H.264 (re-encoded on use)."""
    folder = tmp_path_factory.mktemp("clips")
    out = []
    for label, (dx, dy, codec) in enumerate([(2, 1, "mpeg4"), (-1, 2, "mpeg4"), (1, -1, "libx264")]):
        frames, _ = _moving_square(dx, dy, frames=30, seed=label)
        frames = np.ascontiguousarray(frames[:, 16:80, 16:80])
        kwargs = {"gop": 12, "max_b_frames": 0} if codec == "mpeg4" else {}
        out.append((write_video(folder / f"clip{label}.mp4", frames, codec=codec, **kwargs), label))
    return out


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    text = folder / "notes.mp4"
    text.write_text("not a video\n")
    audio = folder / "sound.m4a"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return {"empty": empty, "text": text, "audio": audio}


# ------------------------------------------------------------------------------------------ conventions


def test_pyav_vectors_point_from_current_block_back_to_reference(moving):
    """src = dst + motion / motion_scale lies in the reference: an object moving +(2, 1) gives motion = -(2, 1)."""
    dx, dy = moving["d"]
    checked = 0
    for t, decoded in enumerate(decode_with_vectors(moving["path"], rgb=False)):
        if decoded.pict_type != "P":
            continue
        x, y = moving["corners"][t]
        v = decoded.vectors
        inside = ((v["dst_x"] - v["w"] // 2 >= x) & (v["dst_x"] + v["w"] // 2 <= x + OBJECT)
                  & (v["dst_y"] - v["h"] // 2 >= y) & (v["dst_y"] + v["h"] // 2 <= y + OBJECT))
        assert inside.any(), f"frame {t}: no block inside the object"
        block = v[inside]
        assert np.all(block["source"] < 0)
        np.testing.assert_allclose(block["motion_x"] / block["motion_scale"], -dx)
        np.testing.assert_allclose(block["motion_y"] / block["motion_scale"], -dy)
        np.testing.assert_array_equal(block["src_x"] - block["dst_x"], -dx)
        checked += 1
    assert checked == 11


def test_picture_types_and_gop_positions(moving, clips):
    clip = moving["clip"]
    assert clip.pict_types == ["I"] + ["P"] * 11 + ["I"]
    np.testing.assert_array_equal(clip.gop_positions, [*range(12), 0])
    np.testing.assert_array_equal(clip.iframe_index, [0] * 12 + [12])
    assert clip.p_frames == list(range(1, 12))
    assert np.all(clip.motion[[0, 12]] == 0) and np.all(clip.accumulated[[0, 12]] == 0)
    assert clip.vector_counts[0] == 0 and np.all(clip.vector_counts[1:12] > 0)
    long = extract(clips[0][0])
    assert [t for t, kind in enumerate(long.pict_types) if kind == "I"] == [0, 12, 24]


@pytest.mark.parametrize("d", [(2, 1), (-1, 2)])
def test_per_frame_field_matches_known_motion(tmp_path, d):
    """MPEG-4 vectors are half-pel on 16x16 / 8x8 blocks, so the object's blocks must carry exactly -(dx, dy) px
    (integer motion is representable): the median over the interior within 0.5 px, and most pixels within 0.5 px
    (blocks straddling the edge, or coded intra, may differ)."""
    frames, corners = _moving_square(*d)
    clip = extract(write_video(tmp_path / "sq.mp4", frames, codec="mpeg4", gop=12, max_b_frames=0))
    truth = -np.asarray(d, dtype=np.float32)
    for t in range(1, 12):
        inner = _interior(clip.motion[t], corners[t])
        assert np.all(np.abs(np.median(inner, axis=0) - truth) <= 0.5), t
        assert np.mean(np.abs(inner - truth).max(axis=1) <= 0.5) >= 0.6, t


def test_accumulated_field_is_k_times_displacement(moving):
    """At GOP position k every interior pixel has moved k * (dx, dy) since the I-frame."""
    clip, d = moving["clip"], np.asarray(moving["d"], dtype=np.float32)
    for k in range(1, 12):
        inner = _interior(clip.accumulated[k], moving["corners"][k])
        assert np.all(np.abs(np.median(inner, axis=0) - k * d) <= 0.5), k
        assert np.mean(np.abs(inner - k * d).max(axis=1) <= 0.5) >= 0.5, k


def test_residual_reconstructs_the_decoded_frame(moving):
    clip = moving["clip"]
    for t in clip.p_frames:
        iframe, mv, residual = clip.iframe(t), clip.accumulated[t], clip.residual(t)
        np.testing.assert_allclose(reconstruct(iframe, mv, residual), clip.frames[t], atol=1e-3)
        # Independently of the bilinear sampler: where the MV is whole pixels, I[p - mv] + residual == frame.
        ys, xs = np.nonzero(np.all(mv == np.round(mv), axis=-1))
        sx = np.clip(xs - mv[ys, xs, 0].astype(int), 0, clip.frames.shape[2] - 1)
        sy = np.clip(ys - mv[ys, xs, 1].astype(int), 0, clip.frames.shape[1] - 1)
        np.testing.assert_allclose(iframe[sy, sx] + residual[ys, xs], clip.frames[t][ys, xs], atol=1e-3)


def test_motion_compensation_shrinks_the_residual_over_the_object(moving):
    clip = moving["clip"]
    for k in (3, 8, 11):
        compensated = np.abs(_interior(clip.residual(k), moving["corners"][k])).mean()
        plain = np.abs(_interior(clip.frames[k].astype(np.float32) - clip.frames[0], moving["corners"][k])).mean()
        assert compensated < 0.5 * plain, (k, compensated, plain)


# --------------------------------------------------------------------------------------- re-encoding


def test_reencode_gives_mpeg4_with_fixed_gop_and_no_b_frames(tmp_path, clips):
    h264 = clips[2][0]
    assert codec_name(h264) == "h264"
    out = reencode_mpeg4(h264, tmp_path / "re.mp4")
    summary = motion_summary(out)
    assert summary["codec"] == "mpeg4" and summary["num_frames"] == 30
    assert [f["index"] for f in summary["frames"] if f["type"] == "I"] == [0, 12, 24]
    assert set(summary["picture_types"]) == {"I", "P"}
    with av.open(str(out)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (64, 64)


def test_reencode_crops_odd_sizes_to_even(tmp_path):
    odd = tmp_path / "odd.mkv"
    with av.open(str(odd), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 63, 65, "yuv444p"
        for array in np.random.default_rng(0).integers(0, 256, (3, 65, 63, 3), dtype=np.uint8):
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    clip = extract(reencode_mpeg4(odd, tmp_path / "even.mp4"))
    assert clip.frames.shape == (3, 64, 62, 3)


def test_extract_reencodes_h264_and_b_frames_automatically(tmp_path, clips):
    clip = extract(clips[2][0])
    assert clip.reencoded and set(clip.pict_types) == {"I", "P"} and clip.path == str(clips[2][0])
    frames, _ = _moving_square(2, 1, frames=16)
    with_b = write_video(tmp_path / "b.mp4", frames, codec="mpeg4", gop=12, max_b_frames=2)
    assert "B" in motion_summary(with_b)["picture_types"]
    with pytest.raises(BFramesError, match="b.mp4"):
        extract(with_b, reencode=False)
    again = extract(with_b)
    assert again.reencoded and "B" not in again.pict_types


@pytest.mark.parametrize("kind", ["empty", "text", "audio"])
def test_bad_input_names_the_file(bad_files, tmp_path, kind):
    path = bad_files[kind]
    with pytest.raises(VideoDecodeError, match=str(path.name)):
        extract(path)
    with pytest.raises(VideoDecodeError, match=str(path.name)):
        extract_all([path], tmp_path / "cache", workers=0, progress=False)
    with pytest.raises(VideoDecodeError, match=str(path.name)):
        CompressedVideoDataset([(path, 0)], cache_dir=tmp_path / "cache", workers=0, progress=False)
    with pytest.raises(VideoDecodeError, match=str(path.name)):
        reencode_mpeg4(path, tmp_path / "out.mp4")


# -------------------------------------------------------------------------------------------- cache


def test_cache_round_trip_matches_extraction(tmp_path, moving):
    clip = moving["clip"]
    cached = CachedClip(save_clip(clip, tmp_path / "c.npz"))
    assert cached.pict_types == clip.pict_types and cached.num_frames == 13
    np.testing.assert_array_equal(cached.p_frames, clip.p_frames)
    for t in (0, 5, 11, 12):
        iframe, mv, residual = cached.load(t)
        np.testing.assert_array_equal(iframe, clip.iframe(t))
        np.testing.assert_array_equal(mv, clip.accumulated[t])
        np.testing.assert_allclose(residual, clip.residual(t) if t not in (0, 12) else 0.0, atol=1e-4)


def test_extract_all_is_resumable_and_ignores_half_written_files(tmp_path, clips):
    cache = tmp_path / "cache"
    paths = [p for p, _ in clips]
    first = cache_path(paths[0], cache)
    cache.mkdir()
    (cache / f".{first.name}.abc.tmp").write_bytes(b"half")  # an interrupted write: never counts
    targets = extract_all(clips, cache, workers=2, progress=False)
    assert targets == [cache_path(p, cache) for p in paths] and all(t.exists() for t in targets)
    assert CachedClip(targets[2]).pict_types.count("I") == 3  # the H.264 clip was re-encoded with GOP 12
    stamps = [t.stat().st_mtime_ns for t in targets]
    targets[1].write_bytes(b"corrupt")
    extract_all(clips, cache, workers=0, progress=False)
    assert targets[0].stat().st_mtime_ns == stamps[0] and targets[2].stat().st_mtime_ns == stamps[2]
    CachedClip(targets[1])  # re-extracted, readable again
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp") and "abc" not in p.name]


def test_interrupted_save_leaves_no_cache_file(tmp_path, moving, monkeypatch):
    def fail(file, **members):
        file.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(KeyboardInterrupt):
        save_clip(moving["clip"], tmp_path / "c.npz")
    assert list(tmp_path.iterdir()) == []


def test_cache_name_changes_with_the_file(tmp_path, moving):
    before = cache_path(moving["path"], tmp_path)
    copy = tmp_path / "square.mp4"
    copy.write_bytes(Path(moving["path"]).read_bytes())
    os.utime(copy, ns=(1, 1))
    assert cache_path(copy, tmp_path) != before and cache_path(copy, tmp_path).name.startswith("square-")


# ------------------------------------------------------------------------------------------ dataset


def test_choose_p_frame():
    p = np.array([1, 2, 3, 5, 6])
    assert choose_p_frame(2, p) == 2
    assert choose_p_frame(4, p) == 3  # an I-frame steps back into the previous GOP
    assert choose_p_frame(0, p) == 1  # ... unless it is the first
    assert choose_p_frame(0, np.array([], dtype=int)) == -1


def test_dataset_shapes_and_normalisation(tmp_path, clips):
    ds = CompressedVideoDataset(clips, num_segments=3, train=False, cache_dir=tmp_path, workers=0, progress=False)
    assert len(ds) == 3 and ds.labels == [0, 1, 2]
    item = ds[0]
    assert item["iframe"].shape == (3, 3, 64, 64) and item["mv"].shape == (3, 2, 64, 64)
    assert item["residual"].shape == (3, 3, 64, 64) and item["label"] == 0 and item["index"] == 0
    clip = extract(clips[0][0])
    picks = item["frame_indices"].tolist()
    assert picks == [5, 15, 25] and all(clip.gop_positions[t] > 0 for t in picks)
    for s, t in enumerate(picks):
        mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
        expected_i = (torch.from_numpy(clip.iframe(t)).permute(2, 0, 1).float() / 255 - mean) / std
        torch.testing.assert_close(item["iframe"][s], expected_i)
        expected_mv = torch.from_numpy(clip.accumulated[t]).permute(2, 0, 1).clamp(-MV_BOUND, MV_BOUND) / MV_BOUND
        torch.testing.assert_close(item["mv"][s], expected_mv)
        torch.testing.assert_close(item["residual"][s], torch.from_numpy(clip.residual(t)).permute(2, 0, 1) / 255,
                                   atol=1e-5, rtol=0)
    assert item["mv"].abs().max() <= 1 and item["residual"].abs().max() <= 1
    # The object moves (+2, +1) px per frame: at GOP position 5 its accumulated MV is (10, 5) px, i.e. (0.5, 0.25).
    moving_x, moving_y = item["mv"][0, 0], item["mv"][0, 1]
    assert torch.median(moving_x[moving_x > 0]).item() == pytest.approx(0.5, abs=0.05)
    assert torch.median(moving_y[moving_y > 0]).item() == pytest.approx(0.25, abs=0.05)


def test_dataset_train_sampling_is_seeded_and_resizes_vectors(tmp_path, clips):
    ds = CompressedVideoDataset(clips[:1], num_segments=3, train=True, cache_dir=tmp_path, size=32, workers=0,
                                progress=False)
    picks = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        a, b = ds[0], ds[0]
        assert torch.equal(a["frame_indices"], b["frame_indices"]) and torch.equal(a["mv"], b["mv"])
        picks.append(tuple(a["frame_indices"].tolist()))
        assert a["iframe"].shape == (3, 3, 32, 32) and a["mv"].shape == (3, 2, 32, 32)
        # A random frame of each 10-frame segment; I-frames 0, 12, 24 move to 1, 11, 23, still in their segment.
        assert [t // 10 for t in picks[-1]] == [0, 1, 2] and not {0, 12, 24} & set(picks[-1])
    assert len(set(picks)) > 1
    # Halving the size halves the vectors: at GOP position k the object's MV is (k, k/2) px at 32x32.
    full = CompressedVideoDataset(clips[:1], train=False, cache_dir=tmp_path, workers=0, progress=False)[0]
    half = CompressedVideoDataset(clips[:1], train=False, cache_dir=tmp_path, size=32, workers=0, progress=False)[0]
    assert half["mv"].abs().max() == pytest.approx(full["mv"].abs().max() / 2, rel=0.25)


def test_dataset_of_intra_only_video_gives_zero_motion(tmp_path):
    frames, _ = _moving_square(2, 1, frames=4)
    path = write_video(tmp_path / "intra.mp4", frames, codec="mpeg4", gop=1, max_b_frames=0)
    item = CompressedVideoDataset([(path, 4)], num_segments=2, train=False, cache_dir=tmp_path / "c", workers=0,
                                  progress=False)[0]
    assert item["frame_indices"].tolist() == [-1, -1] and item["label"] == 4
    assert item["mv"].abs().max() == 0 and item["residual"].abs().max() == 0


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_reports_types_positions_and_motion(moving, capsys):
    assert main(["compressed", "--video", str(moving["path"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    frames = result["frames"]
    assert [f["type"] for f in frames] == ["I"] + ["P"] * 11 + ["I"]
    assert [f["gop_position"] for f in frames] == [*range(12), 0]
    assert frames[0]["vectors"] == 0 and all(f["vectors"] > 0 for f in frames[1:12])
    # The object's blocks move sqrt(5) px per frame, the background none: the max per P-frame is the object's.
    assert all(f["max_motion"] == pytest.approx(5**0.5, abs=0.6) for f in frames[1:12])
    assert result["picture_types"] == {"I": 2, "P": 11} and result["gops"] == 2 and not result["reencoded"]
    assert result["vectors"] == sum(f["vectors"] for f in frames)
    assert main(["compressed", "--video", str(moving["path"])]) == 0
    assert "2 GOPs" in capsys.readouterr().out


def test_cli_reencode_and_errors(clips, bad_files, capsys):
    h264 = str(clips[2][0])
    assert main(["compressed", "--video", h264, "--reencode", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["codec"] == "mpeg4" and result["reencoded"] and result["path"] == h264
    assert [f["index"] for f in result["frames"] if f["type"] == "I"] == [0, 12, 24]
    assert main(["compressed", "--video", str(bad_files["audio"])]) == 2
    assert "sound.m4a" in capsys.readouterr().err
