"""Weight files in every supported format, named mismatch errors, and the offline behaviour of tags."""

from __future__ import annotations

import pytest
import torch
from open_clip import convert_weights_to_lp

from actiondistill.models import (
    CheckpointMismatchError,
    checkpoint_format,
    create_backbone,
    load_weights,
    placed_path,
    read_state_dict,
    save_weights,
)
from actiondistill.models import pretrained as pretrained_mod

# A very small CLIP keeps every file written here to a few hundred kB.
SMALL = {
    "embed_dim": 32,
    "vision_cfg": {"width": 64, "layers": 1, "image_size": 32, "patch_size": 16},
    "text_cfg": {"width": 64, "heads": 1, "layers": 1, "vocab_size": 500, "context_length": 8},
}


def small(**extra):
    return create_backbone("embedded-tiny", **SMALL, **extra)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return small()


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], msg=key)


def test_open_clip_state_dict_round_trip(tmp_path, teacher):
    path = save_weights(teacher, tmp_path / "w.pt")
    assert checkpoint_format(path) == "state_dict"
    torch.manual_seed(1)
    assert_same_weights(create_backbone("embedded-tiny", pretrained=path, **SMALL), teacher)


def test_safetensors_round_trip(tmp_path, teacher):
    path = save_weights(teacher, tmp_path / "w.safetensors")
    assert checkpoint_format(path) == "safetensors"
    assert_same_weights(create_backbone("embedded-tiny", pretrained=str(path), **SMALL), teacher)


def test_tinyclip_release_format(tmp_path, teacher):
    """TinyCLIP checkpoints wrap the state dict as {"state_dict": ...} with DDP's "module." prefix."""
    wrapped = {"epoch": 25, "state_dict": {f"module.{k}": v for k, v in teacher.state_dict().items()}}
    path = tmp_path / "TinyCLIP-test.pt"
    torch.save(wrapped, path)
    assert checkpoint_format(path) == "tinyclip"
    state_dict, fmt = read_state_dict(path)
    assert fmt == "tinyclip" and not any(k.startswith("module.") for k in state_dict)
    assert_same_weights(create_backbone("embedded-tiny", pretrained=path, **SMALL), teacher)


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_openai_jit_archive(tmp_path, teacher):
    """A scripted CLIP stands in for OpenAI's archive: same key names, fp16 weights, metadata entries.

    OpenAI's real archives are scripted CLIP modules too; ours is scripted from open_clip's CLIP (whose
    keys are OpenAI's), converted to fp16 as OpenAI ships them, with input_resolution / context_length /
    vocab_size entries added the way OpenAI's state dicts carry them.
    """
    source = small(quick_gelu=True)
    source.load_state_dict(teacher.state_dict())
    for name, value in (("input_resolution", 32), ("context_length", 8), ("vocab_size", 500)):
        if hasattr(source, name):
            delattr(source, name)  # plain attributes in open_clip, tensors in OpenAI's archives
        source.register_buffer(name, torch.tensor(value))
    convert_weights_to_lp(source, dtype=torch.float16)
    path = tmp_path / "ViT-test.pt"
    torch.jit.script(source).save(str(path))
    assert checkpoint_format(path) == "openai-jit"

    loaded = create_backbone("embedded-tiny", pretrained=path, **SMALL)
    assert type(loaded.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"  # OpenAI's activation
    assert loaded.visual.conv1.weight.dtype == torch.float32
    assert source.visual.conv1.weight.dtype == torch.float16
    expected = source.state_dict()
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, expected[key].to(value.dtype), msg=key)  # fp16 -> fp32; BN counters stay int
    torch.testing.assert_close(loaded.visual.proj, teacher.visual.proj, atol=1e-3, rtol=1e-3)


def test_mismatched_keys_are_named(tmp_path, teacher):
    state_dict = dict(teacher.state_dict())
    del state_dict["visual.ln_post.weight"]
    state_dict["visual.extra_head.weight"] = torch.zeros(3)
    state_dict["text_projection"] = torch.zeros(64, 16)
    path = tmp_path / "bad.pt"
    torch.save(state_dict, path)
    with pytest.raises(CheckpointMismatchError) as err:
        create_backbone("embedded-tiny", pretrained=path, **SMALL)
    message = str(err.value)
    assert str(path) in message
    assert "missing keys (1): visual.ln_post.weight" in message
    assert "unexpected keys (1): visual.extra_head.weight" in message
    assert "text_projection [64, 16] in file vs [64, 32] in model" in message


def test_non_strict_load_reports_and_loads_the_rest(teacher):
    target = small()
    state_dict = dict(teacher.state_dict())
    del state_dict["visual.ln_post.weight"]
    report = load_weights(target, state_dict, strict=False)
    assert report.missing == ["visual.ln_post.weight"] and not report.ok
    torch.testing.assert_close(target.visual.proj, teacher.visual.proj)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "weights.pt"
    with pytest.raises(FileNotFoundError, match="weights.pt"):
        create_backbone("embedded-tiny", pretrained=path)


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        read_state_dict(path)


def test_offline_tag_fails_fast_with_placement_message(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(pretrained_mod.socket, "create_connection", _no_network)
    with pytest.raises(RuntimeError) as err:
        create_backbone("ViT-B-32", pretrained="openai")
    message = str(err.value)
    assert "'openai'" in message and "offline" in message
    assert str(tmp_path / "checkpoints" / "ViT-B-32-openai.pt") in message


def test_unreachable_host_fails_within_the_probe_timeout(monkeypatch, tmp_path):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("ACTIONDISTILL_OFFLINE", raising=False)
    probed = []

    def probe(address, timeout):
        probed.append(address)
        _no_network()

    monkeypatch.setattr(pretrained_mod.socket, "create_connection", probe)
    with pytest.raises(RuntimeError, match="TinyCLIP-ViT-39M-16-Text-19M-yfcc15m.pt"):
        create_backbone("TinyCLIP-ViT-39M-16-Text-19M", pretrained="yfcc15m")
    assert probed == [("github.com", 443)]


def test_placed_file_satisfies_a_tag_without_network(monkeypatch, tmp_path, teacher):
    monkeypatch.setenv("ACTIONDISTILL_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(pretrained_mod.PROJECT_TAGS, "embedded-tiny", {"synth": "https://example.org/w.pt"})
    save_weights(teacher, placed_path("embedded-tiny", "synth"))
    assert_same_weights(create_backbone("embedded-tiny", pretrained="synth", **SMALL), teacher)


def test_unknown_tag_lists_known_ones():
    with pytest.raises(ValueError, match="laion400m"):
        create_backbone("TinyCLIP-ViT-40M-32-Text-19M", pretrained="imaginary-tag")


def test_resized_position_grid_is_interpolated(tmp_path, teacher):
    """Weights for 32 px images load into a 64 px model: open_clip's grid interpolation, not an error."""
    path = save_weights(teacher, tmp_path / "w.pt")
    model = create_backbone(
        "embedded-tiny", pretrained=path, **{**SMALL, "vision_cfg": {**SMALL["vision_cfg"], "image_size": 64}}
    )
    assert model.visual.positional_embedding.shape == (17, 64)


def _no_network(*args, **kwargs):
    raise OSError("network is unreachable")
