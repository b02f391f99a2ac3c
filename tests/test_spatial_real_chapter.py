"""Chapter 4 on a real-format dataset: vocabulary files, pixels, no validation split, no ground truth.

A two-class HMDB51 in HMDB51's own layout, random CLIP weights saved as files, and a chapter-2 record written
by hand stand in for the real thing; the chapter runs end to end on them and its record rebuilds the same
targets for chapter 7.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from actiondistill.io import atomic_write_json, read_json
from actiondistill.models import create_backbone, save_weights
from tests.test_spatial_sources import write_hmdb

BOOK = Path(__file__).resolve().parents[1] / "book"
PROFILE = "fakereal"


def chapter2_record(data: Path, teacher_weights: Path) -> dict:
    config = {
        "seed": 0, "epochs": 1, "device": "cpu",
        "data": {"dataset": "hmdb51", "root": "hmdb51", "fold": 1, "eval_split": None, "num_frames": 2, "size": 64,
                 "batch_size": 2, "flip": False, "sampler": "tsn"},
        "model": {"name": "actionclip-transf", "backbone": "embedded-base", "pretrained": str(teacher_weights),
                  "kwargs": {"fusion_layers": 1}},
        "objective": {"name": "actionclip", "kwargs": {"texts": "classes"}},
        "optim": {"lr": 1e-4, "fusion_lr_mult": 10.0, "warmup_epochs": 0.5},
    }
    summary = {"model": "actionclip-transf", "seeds": 1, "top1_mean": 50.0, "zs_top1_mean": float("nan")}
    return {"config": config, "freeze_image_encoder": False, "teacher": "actionclip-transf",
            "label": "ActionCLIP Transf", "profile": PROFILE, "summary": [summary],
            "model": {"name": "actionclip-transf", "backbone": "embedded-base", "pretrained": str(teacher_weights),
                      "kwargs": {"fusion_layers": 1}, "num_frames": 2}}


def test_chapter4_runs_on_a_real_format_dataset(tmp_path):
    data = tmp_path / "data"
    write_hmdb(data / "hmdb51")
    torch.manual_seed(0)
    weights = {name: save_weights(create_backbone(name), data / f"{name}.pt") for name in ("embedded-base",
                                                                                           "embedded-tiny")}
    atomic_write_json(data / "results" / f"teacher_choice-{PROFILE}.json",
                      chapter2_record(data, weights["embedded-base"]))
    (data / "vocab").mkdir()
    (data / "vocab" / "objects.txt").write_text("bicycle\nhair brush\nfloor\n")
    (data / "vocab" / "scenes.txt").write_text("gym\nstreet\n")
    params = {"profile": PROFILE, "dataset": "hmdb51", "teacher_pretrained": str(weights["embedded-base"]),
              "student_pretrained": str(weights["embedded-tiny"]),
              "vocabulary_files": ["vocab/objects.txt", "vocab/scenes.txt"], "num_frames": 2, "lambdas": [0.0, 1.0],
              "target_frames": [1], "default_target_frames": 1, "single_objectives": ["scenes"], "seeds": [0],
              "ablation_seeds": [0], "epochs": 1, "batch_size": 2, "feature_dtype": "fp32"}
    out = tmp_path / "out.ipynb"
    env = {**os.environ, "ACTIONDISTILL_DATA": str(data)}
    args = [sys.executable, "-m", "papermill", str(BOOK / "04_spatial.ipynb"), str(out), "--cwd", str(BOOK),
            "-k", "python3", "-y", json.dumps(params)]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    record = read_json(data / "results" / f"spatial-{PROFILE}.json")
    assert record["targets"]["vocabulary_files"] == ["vocab/objects.txt", "vocab/scenes.txt"]
    assert record["targets"]["objectives"] == ["objects", "scenes"] and record["targets"]["size"] == 64
    # no validation split: the protocol's default setting, never one chosen on the test split
    assert record["best"]["weight"] == 1.0 and record["best"]["objectives"] is None
    assert "no validation split" in record["rule"]
    executed = out.read_text()
    assert "has no ground truth" in executed and "HMDB51" in executed

    from actiondistill import combined as cx
    from actiondistill.config import from_dict
    from actiondistill.spatial.sources import dataset_clips

    os.environ["ACTIONDISTILL_DATA"] = str(data)
    try:
        base = from_dict(chapter2_record(data, weights["embedded-base"])["config"])
        spatial = cx.spatial_setting(record, base)
        targets = cx.spatial_targets_of(spatial, dataset_clips(base), dtype="fp32", progress=False)
    finally:
        del os.environ["ACTIONDISTILL_DATA"]
    assert targets.names == ["objects", "scenes"] and len(targets.paths) == 4
