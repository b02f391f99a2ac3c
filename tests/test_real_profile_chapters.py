"""The real-data profiles' code paths, end to end: chapters 2 to 7 on an HMDB51-format dataset.

A two-class HMDB51 in HMDB51's own layout, random CLIP weights saved as files and vocabulary text files stand in
for the real thing (which needs a GPU and downloads). Each chapter runs under papermill as `--profile hmdb51`
would run it: pixels end to end, no validation split, no held-out classes, no ground truth; each later chapter
reads the records of the earlier ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_spatial_sources import write_hmdb

from actiondistill.chapter_records import record_name
from actiondistill.io import read_json
from actiondistill.models import create_backbone, save_weights

BOOK = Path(__file__).resolve().parents[1] / "book"
PROFILE = "fakereal"
VOCABULARIES = ["vocab/objects.txt", "vocab/scenes.txt"]


def chapter_parameters(base: str, tiny: str) -> dict[str, dict]:
    """Each chapter's parameters: a 2-frame, 1-epoch, batch-2 budget at the embedded CLIPs' 64 px."""
    return {
        "02_teacher": {"backbone": "embedded-base", "pretrained": base, "freeze_image_encoder": False, "num_frames": 2,
                       "epochs": 1, "batch_size": 2, "size": 64, "latency_frames": [2], "rule_frames": 2,
                       "latency_calls": 1, "fusion_layers": 1},
        "03_backbone": {"student_backbone": "embedded-tiny", "student_pretrained": tiny, "latency_frames": [2],
                        "latency_calls": 1, "size": 64},
        "04_spatial": {"teacher_pretrained": base, "student_pretrained": tiny, "vocabulary_files": VOCABULARIES,
                       "num_frames": 2, "lambdas": [0.0, 1.0], "target_frames": [1], "default_target_frames": 1,
                       "single_objectives": ["scenes"], "epochs": 1, "batch_size": 2, "feature_dtype": "fp32",
                       "size": 64},
        "05_deit": {"pretrained": base, "freeze_image_encoder": False, "variants": ["single", "gt", "hard"],
                    "fusion_layers": 1, "latency_backbones": ["embedded-base"], "latency_frames": [2],
                    "latency_calls": 1, "size": 64},
        "06_compressed": {"input_size": 16, "segments": 1, "cache_features": False, "stage0_epochs": 1, "ic_epochs": 3,
                          "batch_size": 2, "variants": ["ce", "pkd"], "example_class": "ride_bike"},
        "07_combined": {"latency_frames": 2, "throughput_batch": 1, "latency_calls": 1},
    }


@pytest.mark.slow
def test_real_profile_chapters_run_on_an_hmdb51_format_dataset(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_hmdb(data / "hmdb51")
    torch.manual_seed(0)
    weights = {name: str(save_weights(create_backbone(name), data / f"{name}.pt"))
               for name in ("embedded-base", "embedded-tiny")}
    (data / "vocab").mkdir()
    (data / "vocab" / "objects.txt").write_text("bicycle\nhair brush\nfloor\n")
    (data / "vocab" / "scenes.txt").write_text("gym\nstreet\n")
    env = {**os.environ, "ACTIONDISTILL_DATA": str(data)}
    for chapter, params in chapter_parameters(weights["embedded-base"], weights["embedded-tiny"]).items():
        params = {"profile": PROFILE, "dataset": "hmdb51", "device": "cpu", **params}
        args = [sys.executable, "-m", "papermill", str(BOOK / f"{chapter}.ipynb"), str(tmp_path / f"{chapter}.ipynb"),
                "--cwd", str(BOOK), "-k", "python3", "-y", json.dumps(params)]
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{chapter}:\n{done.stderr[-3000:]}"

    results = data / "results"
    key = record_name(PROFILE, None, "hmdb51")  # chapters run by hand: records keyed by the profile and the dataset
    assert key == f"{PROFILE}-hmdb51" and not (results / f"teacher_choice-{PROFILE}.json").exists()
    assert read_json(results / f"teacher_choice-{key}.json")["freeze_image_encoder"] is False
    spatial = read_json(results / f"spatial-{key}.json")
    assert spatial["targets"]["vocabulary_files"] == VOCABULARIES
    assert spatial["targets"]["objectives"] == ["objects", "scenes"] and spatial["targets"]["size"] == 64
    # no validation split: the protocol's default setting, never one chosen on the test split
    assert spatial["best"]["weight"] == 1.0 and spatial["best"]["objectives"] is None
    assert "no validation split" in spatial["rule"]
    executed = (tmp_path / "04_spatial.ipynb").read_text()
    assert "has no ground truth" in executed and "HMDB51" in executed
    combined = read_json(results / f"combined-{key}.json")
    assert {"swap", "swap+spatial", "swap+deit", "swap+spatial+deit"} <= {r["combination"] for r in combined["runs"]}
    assert "not measured: HMDB51 has no held-out classes" in (tmp_path / "07_combined.ipynb").read_text()
    # chapter 6 streams the official split's clips (no validation split: WISE is fitted on training logits only)
    compressed = (tmp_path / "06_compressed.ipynb").read_text()
    assert "Without a validation split" in compressed
    assert "hmdb51**: 2 classes; train 2 clips, test 2 clips" in compressed

    from actiondistill import combined as cx
    from actiondistill.config import from_dict
    from actiondistill.spatial.sources import dataset_clips

    monkeypatch.setenv("ACTIONDISTILL_DATA", str(data))
    base = from_dict(read_json(results / f"teacher_choice-{key}.json")["config"])
    targets = cx.spatial_targets_of(cx.spatial_setting(spatial, base), dataset_clips(base), progress=False)
    assert targets.names == ["objects", "scenes"] and len(targets.paths) == 4
