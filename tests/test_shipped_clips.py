"""Shipped embedded CLIPs: packing a trained folder into an int8 bundle and installing it instead of training."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest
import torch

from actiondistill.cli import main as cli_main
from actiondistill.models import create_backbone
from actiondistill.pretrain import PretrainConfig, StageConfig, clips_dir, ensure_embedded_clips, provenance, shipped

WORLD = {"videos": 60, "size": 64, "frames": 8, "seed": 0}
STAGE = StageConfig(epochs=1, batch_size=16, lr=1e-3)
CFG = PretrainConfig(frames_per_clip=1, eval_frames_per_clip=1, base=STAGE, tiny=STAGE)
CLI_ARGS = ["pretrain-clip", "--videos", "60", "--frames", "8", "--epochs", "1", "--batch-size", "16",
            "--frames-per-clip", "1", "--no-progress"]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A tiny world's CLIPs trained and packed through `pretrain-clip --ship` into a temporary shipped root."""
    data, root = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ACTIONDISTILL_DATA", str(data))
        mp.setattr(shipped, "shipped_root", lambda: root)
        from actiondistill.data.sources import synthactions_manifest

        manifest = synthactions_manifest(**WORLD, progress=False)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli_main([*CLI_ARGS, "--ship", "--json"]) == 0
        yield {"manifest": manifest, "cli": json.loads(out.getvalue()), "data": data, "root": root}


def test_quantization_keeps_every_row_within_half_a_step():
    weight = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    q, scale = shipped.quantize(weight)
    assert q.dtype == torch.int8 and q.shape == weight.shape and scale.shape == (8,)
    error = (shipped.dequantize(q, scale) - weight).abs().reshape(8, -1).amax(dim=1)
    assert torch.all(error <= scale / 2 + 1e-7)


def test_ship_packs_small_files_whose_report_is_measured_after_dequantization(packed):
    bundle_dir = packed["root"] / packed["cli"]["key"]
    assert packed["cli"]["bundle"] == str(bundle_dir)
    bundle = json.loads((bundle_dir / shipped.BUNDLE_NAME).read_text())
    assert set(bundle["files"]) == {"embedded-base.safetensors", "embedded-tiny.safetensors"}
    trained_bytes = sum((packed["data"] / "clips" / packed["cli"]["key"] / f"{n}.pt").stat().st_size
                        for n in ("embedded-base", "embedded-tiny"))
    assert sum(f["bytes"] for f in bundle["files"].values()) < trained_bytes / 6  # int8, no token table
    assert bundle["remake"].startswith("python -m actiondistill pretrain-clip --world standard --videos 60")
    for name, model in bundle["report"]["models"].items():
        assert set(model["zero_shot"]) == set(model["zero_shot_before_packing"])
        assert (bundle_dir / f"{name}.json").is_file()  # the stage's training log


def test_a_missing_folder_is_installed_from_the_bundle_close_to_the_trained_models(packed, monkeypatch, tmp_path):
    monkeypatch.setattr(shipped, "shipped_root", lambda: packed["root"])
    result = ensure_embedded_clips(packed["manifest"], CFG, progress=False, root=tmp_path)
    assert result["source"] == "shipped" and result["reused"] is True
    assert result["report"]["manifest"] == str(packed["manifest"])
    trained = clips_dir(packed["manifest"], CFG, root=packed["data"] / "clips")
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for name in ("embedded-base", "embedded-tiny"):
        installed = create_backbone(name, pretrained=result["checkpoints"][name])
        original = create_backbone(name, pretrained=trained / f"{name}.pt")
        torch.testing.assert_close(installed.token_embedding.weight, original.token_embedding.weight)  # exact
        with torch.no_grad():
            cosine = torch.cosine_similarity(installed.encode_image(images), original.encode_image(images))
        assert cosine.min() > 0.99
    assert provenance(result).startswith("installed by this run from the repository's shipped weights")
    again = ensure_embedded_clips(packed["manifest"], CFG, progress=False, root=tmp_path)
    assert again["source"] == "cache"
    assert provenance(again).endswith("installed by an earlier run")  # the book still says the weights are shipped
    trained_here = ensure_embedded_clips(packed["manifest"], CFG, progress=False, root=packed["data"] / "clips")
    assert provenance(trained_here) == "reused from the cache (trained by an earlier run)"


def test_a_damaged_bundle_file_is_refused_naming_it(packed, monkeypatch, tmp_path):
    root = tmp_path / "weights"
    shutil.copytree(packed["root"], root)
    monkeypatch.setattr(shipped, "shipped_root", lambda: root)
    target = root / packed["cli"]["key"] / "embedded-tiny.safetensors"
    target.write_bytes(target.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match=r"embedded-tiny\.safetensors: SHA-256 differs.*pretrain-clip"):
        ensure_embedded_clips(packed["manifest"], CFG, progress=False, root=tmp_path / "clips")


def test_a_token_table_that_cannot_be_regenerated_is_refused():
    table = torch.zeros(100, 4)
    with pytest.raises(ValueError, match="cannot be regenerated"):
        shipped.pack_state({shipped.TOKEN_TABLE: table + 1.0}, table)
    packed = shipped.pack_state({shipped.TOKEN_TABLE: torch.cat([table[:99], torch.ones(1, 4)])}, table)
    assert packed[f"{shipped.TOKEN_TABLE}.rows"].tolist() == [99]
