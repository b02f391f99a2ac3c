"""The pretraining pool: extra rendered clips outside the world's splits, cached, and joined to the training pairs."""

from __future__ import annotations

import numpy as np
import pytest

from actiondistill.data.synthetic import load_manifest, render_clip, sample_spec
from actiondistill.pretrain import PretrainConfig, clip_key, ensure_embedded_clips
from actiondistill.pretrain.frames import FrameCaptionDataset, frame_indices
from actiondistill.pretrain.pool import POOL_SPLIT, cached_pool, pool_clips, pool_seed, render_pool, with_pool

WORLD = {"videos": 30, "size": 64, "frames": 8, "seed": 0}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACTIONDISTILL_DATA", str(data))
        from actiondistill.data.sources import synthactions_manifest

        path = synthactions_manifest(**WORLD, progress=False)
    return {"path": path, "manifest": load_manifest(path), "data": data}


def test_pool_clips_use_fresh_seeds_and_seen_classes_only(world):
    manifest = world["manifest"]
    entries = pool_clips(manifest, 50)
    world_seeds = {clip["seed"] for clip in manifest["clips"]}
    assert not world_seeds & {entry["seed"] for entry in entries}
    assert len({entry["seed"] for entry in entries}) == 50
    seen = manifest["classes"][: manifest["num_seen_classes"]]
    assert {entry["label_text"] for entry in entries} == set(seen)  # 50 clips cycle over all 22 seen classes
    assert all(entry["split"] == POOL_SPLIT and entry["label"] == seen.index(entry["label_text"]) for entry in entries)
    assert pool_seed(0, 3) != pool_seed(1, 3) and pool_clips(manifest, 50) == entries


def test_pool_frames_are_the_rendered_clips_after_the_codec(world):
    manifest = world["manifest"]
    pool = render_pool(manifest, 3, per_clip=2, workers=1, progress=False)
    assert pool["frames"].shape == (6, 64, 64, 3) and pool["frames"].dtype == np.uint8
    indices = frame_indices(manifest["frames"], 2)
    assert pool["frame"].tolist() == indices * 3 and pool["pool_clip"].tolist() == [0, 0, 1, 1, 2, 2]
    entry = pool["clips"][1]
    rendered = render_clip(sample_spec(entry["seed"], entry["label_text"]), 64, 8)[indices].astype(int)
    error = np.abs(pool["frames"][2:4].astype(int) - rendered).mean()
    assert 0 < error < 8  # the same picture, with H.264's losses like the world's decoded frames


def test_cached_pool_is_reused_and_refuses_another_count(world, tmp_path):
    manifest = world["manifest"]
    first = cached_pool(tmp_path / "pool.npz", manifest, 2, 1, workers=1, progress=False)
    again = cached_pool(tmp_path / "pool.npz", manifest, 2, 1, workers=1, progress=False)
    assert np.array_equal(first["frames"], again["frames"]) and first["clips"] == again["clips"]
    with pytest.raises(ValueError, match="pool.npz: pool made for .*count.: 2"):
        cached_pool(tmp_path / "pool.npz", manifest, 3, 1, progress=False)
    with pytest.raises(ValueError, match="pool clips: 0"):
        render_pool(manifest, 0, 1)


def test_pool_pairs_caption_their_own_attributes(world):
    manifest = world["manifest"]
    pool = render_pool(manifest, 2, per_clip=1, workers=1, progress=False)
    merged, clips = with_pool(manifest, pool)
    assert clips.tolist() == [len(manifest["clips"]), len(manifest["clips"]) + 1]
    data = FrameCaptionDataset(pool["frames"], clips, merged)
    for i, entry in enumerate(pool["clips"]):
        attributes = entry["attributes"]
        assert data[i]["attributes"].tolist() == [manifest["attributes"][k].index(attributes[k])
                                                  for k in ("shape", "colour", "scene", "size")] + [-1]  # no position


def test_extra_clips_change_the_key_and_add_training_frames(world, monkeypatch):
    from actiondistill.pretrain import StageConfig

    assert clip_key(world["path"], PretrainConfig(extra_clips=4)) != clip_key(world["path"], PretrainConfig())
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(world["data"]))
    stage = StageConfig(epochs=1, batch_size=32)
    cfg = PretrainConfig(frames_per_clip=1, eval_frames_per_clip=1, base=stage, tiny=stage, workers=1, extra_clips=12)
    report = ensure_embedded_clips(world["path"], cfg, progress=False)["report"]
    train_clips = sum(clip["split"] == "train" for clip in world["manifest"]["clips"])
    assert report["pool_clips"] == 12 and report["train_frames"] == train_clips + 12


def test_map_jobs_keeps_order_in_and_out_of_a_process_pool():
    import io

    from tqdm import tqdm

    from actiondistill.parallel import map_jobs

    jobs = [-3, 1, -4, 1, -5, 9]
    for workers in (1, 2):
        with tqdm(total=len(jobs), file=io.StringIO()) as bar:
            assert map_jobs(abs, jobs, workers, bar, max_chunk=1) == [3, 1, 4, 1, 5, 9]
            assert bar.n == len(jobs)


def test_cli_refuses_a_negative_pool(capsys):
    from actiondistill.cli import main as cli_main

    assert cli_main(["pretrain-clip", "--extra-clips", "-1", "--no-progress"]) == 2
    assert "--extra-clips -1" in capsys.readouterr().err
