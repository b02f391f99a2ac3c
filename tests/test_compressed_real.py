"""The compressed track on real backbones: ResNet checkpoint files of every layout (torchvision ImageNet, TSN,
CoViAR, mmaction2) into the I-frame, MV and residual networks, their errors, ResNet exits and costs, and the
experiment started from checkpoints with frames streamed from the extraction cache (random weights, tiny clips)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from actiondistill.data.encode import write_video
from actiondistill.models.checkpoints import CheckpointMismatchError
from actiondistill.models.compressed_nets import ICNetwork
from actiondistill.models.resnet_checkpoints import (
    adapt_input_conv,
    describe_resnet,
    load_resnet_backbone,
    read_resnet_checkpoint,
)
from actiondistill.pkd import CompressedExperiment, run_experiment

CLASSES = 5


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def rgb_state() -> dict[str, torch.Tensor]:
    """A torchvision ResNet-18 with random weights and non-trivial BN statistics (as ImageNet's file holds)."""
    torch.manual_seed(7)
    state = torchvision.models.resnet18(weights=None).state_dict()
    for key, value in state.items():
        if key.endswith(("running_mean", "running_var", "bn1.bias", "bn2.bias")):
            state[key] = torch.rand_like(value) + 0.5
    return state


@pytest.fixture(scope="module")
def files(tmp_path_factory, rgb_state) -> dict[str, Path]:
    """The same ResNet-18 saved in each layout the loader reads."""
    folder = tmp_path_factory.mktemp("checkpoints")
    backbone = {k: v for k, v in rgb_state.items() if not k.startswith("fc.")}
    g = torch.Generator().manual_seed(3)
    out = {"torchvision": folder / "resnet18-f37072fd.pth"}
    torch.save(rgb_state, out["torchvision"])
    out["tsn"] = folder / "tsn_resnet18_kinetics.pth.tar"
    torch.save({"epoch": 80, "arch": "resnet18", "best_prec1": 61.5,
                "state_dict": {**{f"module.base_model.{k}": v for k, v in backbone.items()},
                               "module.new_fc.weight": torch.randn(CLASSES, 512, generator=g),
                               "module.new_fc.bias": torch.randn(CLASSES, generator=g)}}, out["tsn"])
    out["coviar_mv"] = folder / "coviar_mv.pth.tar"
    mv_conv = torch.randn(64, 2, 7, 7, generator=g)
    torch.save({"state_dict": {**{f"module.base_model.{k}": v for k, v in backbone.items()},
                               "module.base_model.conv1.weight": mv_conv,
                               "module.base_model.fc.weight": torch.randn(51, 512, generator=g),
                               "module.base_model.fc.bias": torch.randn(51, generator=g),
                               "module.data_bn.weight": torch.ones(2), "module.data_bn.bias": torch.zeros(2),
                               "module.data_bn.running_mean": torch.zeros(2),
                               "module.data_bn.running_var": torch.ones(2)}}, out["coviar_mv"])
    out["mmaction"] = folder / "tsn_r18_kinetics400_mmaction.pth"
    torch.save({"meta": {"epoch": 100}, "state_dict": {_mmaction_name(k): v for k, v in rgb_state.items()}},
               out["mmaction"])
    return out


def _mmaction_name(key: str) -> str:
    """torchvision -> mmaction2's names (mmcv ConvModule: conv + bn under one name; head under cls_head)."""
    for pattern, replacement in ((r"^conv1\.", "conv1.conv."), (r"^bn1\.", "conv1.bn."),
                                 (r"^(layer\d\.\d)\.conv(\d)\.", r"\1.conv\2.conv."),
                                 (r"^(layer\d\.\d)\.bn(\d)\.", r"\1.conv\2.bn."),
                                 (r"\.downsample\.0\.", ".downsample.conv."),
                                 (r"\.downsample\.1\.", ".downsample.bn.")):
        key = re.sub(pattern, replacement, key)
    return ("cls_head.fc_cls." + key[3:]) if key.startswith("fc.") else "backbone." + key


def _assert_backbone_is(net: ICNetwork, state: dict[str, torch.Tensor], skip: tuple[str, ...] = ()) -> None:
    loaded = net.backbone.state_dict()
    keys = [k for k in state if not k.startswith(("fc.", *skip))]
    assert len(keys) > 100
    for key in keys:
        assert torch.equal(loaded[key], state[key]), key


# ----------------------------------------------------------------------------------------------- checkpoints


def test_torchvision_file_loads_every_backbone_tensor_and_leaves_the_new_classifier(files, rgb_state):
    net = ICNetwork("resnet18", 3, CLASSES)
    fc_before = net.backbone.fc.weight.clone()
    report = net.load_backbone(files["torchvision"])
    assert report == {"adapted": [], "skipped": ["fc.weight", "fc.bias"]}  # ImageNet's 1000 classes do not fit
    _assert_backbone_is(net, rgb_state)
    assert torch.equal(net.backbone.fc.weight, fc_before)


@pytest.mark.parametrize("layout", ["tsn", "mmaction"])
def test_training_checkpoints_lose_their_wrappers(files, rgb_state, layout):
    net = ICNetwork("resnet18", 3, CLASSES + 1)
    report = load_resnet_backbone(net.backbone, files[layout])
    _assert_backbone_is(net, rgb_state)
    assert report.layout == ("mmaction2" if layout == "mmaction" else "torchvision")
    assert report.classifier == [] and report.missing == [] and report.unexpected == []
    head = ["new_fc.weight", "new_fc.bias"] if layout == "tsn" else ["cls_head.fc_cls.weight", "cls_head.fc_cls.bias"]
    assert report.skipped == head  # another class count: dropped, named as in the file (less `module.`)
    ckpt = read_resnet_checkpoint(files[layout])
    assert ckpt.sources["layer2.0.downsample.1.running_var"] == (
        "base_model.layer2.0.downsample.1.running_var" if layout == "tsn"
        else "backbone.layer2.0.downsample.bn.running_var")


def test_a_classifier_of_this_class_count_loads_under_any_name(files):
    net = ICNetwork("resnet18", 3, CLASSES)
    report = load_resnet_backbone(net.backbone, files["tsn"])
    assert report.classifier == ["new_fc.weight", "new_fc.bias"] and report.skipped == []
    raw = torch.load(files["tsn"], weights_only=True)["state_dict"]
    assert torch.equal(net.backbone.fc.weight, raw["module.new_fc.weight"])


def test_mv_conv1_is_the_rgb_mean_and_rgb_networks_keep_three_channels(files, rgb_state):
    """The experiment's one-file setting: all three networks from the same ImageNet ResNet-18."""
    exp = CompressedExperiment(arch="resnet18", checkpoint=str(files["torchvision"]))
    triplet = exp.build_triplet(CLASSES)
    reports = exp.load_checkpoints(triplet)
    mv = triplet.nets["mv"].backbone.conv1.weight
    assert mv.shape == (64, 2, 7, 7) and reports["mv"].adapted == ["conv1.weight"]
    mean = rgb_state["conv1.weight"].mean(1)
    assert torch.equal(mv[:, 0], mean) and torch.equal(mv[:, 1], mean)
    torch.testing.assert_close(adapt_input_conv(rgb_state["conv1.weight"], 2), mv, rtol=0, atol=0)
    _assert_backbone_is(triplet.nets["mv"], rgb_state, skip=("conv1.",))
    for m in ("iframe", "residual"):
        assert reports[m].adapted == []
        _assert_backbone_is(triplet.nets[m], rgb_state)


def test_coviar_mv_checkpoint_keeps_its_two_channel_conv_and_drops_data_bn(files, rgb_state):
    net = ICNetwork("resnet18", 2, CLASSES)
    report = net.load_backbone(files["coviar_mv"])
    raw = torch.load(files["coviar_mv"], weights_only=True)["state_dict"]
    assert torch.equal(net.backbone.conv1.weight, raw["module.base_model.conv1.weight"])
    assert report["adapted"] == []
    assert report["skipped"] == ["data_bn.weight", "data_bn.bias", "data_bn.running_mean", "data_bn.running_var",
                                 "base_model.fc.weight", "base_model.fc.bias"]
    _assert_backbone_is(net, rgb_state, skip=("conv1.",))


def test_missing_and_unexpected_keys_are_named_or_reported(tmp_path, rgb_state, caplog):
    state = {f"module.{k}": v for k, v in rgb_state.items() if k != "layer3.1.bn2.running_mean"}
    state["module.layer3.1.se.fc1.weight"] = torch.zeros(4, 256)
    path = tmp_path / "partial.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        ICNetwork("resnet18", 3, CLASSES, pretrained_path=path)
    message = str(err.value)
    assert str(path) in message and "missing (1): layer3.1.bn2.running_mean" in message
    assert "unexpected (1): layer3.1.se.fc1.weight" in message
    net = ICNetwork("resnet18", 3, CLASSES)
    before = net.backbone.layer3[1].bn2.running_mean.clone()
    with caplog.at_level(logging.WARNING, logger="actiondistill.models.resnet_checkpoints"):
        report = net.load_backbone(path, strict=False)
    assert report["missing"] == ["layer3.1.bn2.running_mean"] and report["unexpected"] == ["layer3.1.se.fc1.weight"]
    assert "layer3.1.bn2.running_mean" in caplog.text
    assert torch.equal(net.backbone.layer3[1].bn2.running_mean, before)
    assert torch.equal(net.backbone.layer2[0].conv1.weight, rgb_state["layer2.0.conv1.weight"])


def test_wrong_files_fail_naming_the_file_and_what_was_expected(tmp_path, files):
    net = ICNetwork("resnet18", 3, CLASSES)
    with pytest.raises(FileNotFoundError, match="nowhere.pth: no such checkpoint file"):
        net.load_backbone(tmp_path / "nowhere.pth")
    with pytest.raises(FileNotFoundError, match="is a folder"):
        net.load_backbone(tmp_path)
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(ValueError, match=r"notes.pth: not a ResNet checkpoint .* torchvision ResNet state dict"):
        net.load_backbone(text)
    clip = tmp_path / "clip_like.pt"
    torch.save({"visual.conv1.weight": torch.zeros(768, 3, 16, 16), "logit_scale": torch.zeros(())}, clip)
    with pytest.raises(CheckpointMismatchError, match=r"clip_like.pt: no ResNet backbone in it"):
        net.load_backbone(clip)
    with pytest.raises(CheckpointMismatchError) as err:
        ICNetwork("resnet50", 3, CLASSES, pretrained_path=files["torchvision"])
    message = str(err.value)
    assert "the file holds ResNet-18 (BasicBlock blocks 2-2-2-2, width 64)" in message
    assert "the network is ResNet-50 (Bottleneck blocks 3-4-6-3, width 64)" in message
    with pytest.raises(CheckpointMismatchError, match=r"takes 2 channels .* 3-channel \(RGB\) weights"):
        ICNetwork("resnet18", 3, CLASSES, pretrained_path=files["coviar_mv"])  # an MV file for the I-frame network
    twice = tmp_path / "twice.pth"
    torch.save({"conv1.weight": torch.zeros(1), "base_model.conv1.weight": torch.zeros(1)}, twice)
    with pytest.raises(CheckpointMismatchError, match="both name 'conv1.weight'"):
        net.load_backbone(twice)


def test_experiment_names_a_missing_checkpoint_and_where_it_goes(tmp_path):
    exp = CompressedExperiment(arch="resnet18", checkpoint={"iframe": str(tmp_path / "absent.pth")})
    with pytest.raises(FileNotFoundError, match=r"absent.pth: the iframe network's checkpoint is not there"):
        exp.load_checkpoints(exp.build_triplet(CLASSES))
    with pytest.raises(ValueError, match="every network needs one"):
        CompressedExperiment(arch="resnet18", checkpoint={"iframe": "a.pth"}, finetune_backbone=False)
    with pytest.raises(ValueError, match="arch='resnet34'"):
        CompressedExperiment(arch="resnet34")
    assert CompressedExperiment(arch={"iframe": "resnet50", "mv": "resnet18", "residual": "resnet18"},
                                checkpoint="checkpoints/x.pth").describe_backbones() == (
        "ResNet-50 (I-frame), ResNet-18 (MV, residual), started from checkpoint files (I-frame, MV, residual)")


def test_describe_resnet_names_depths():
    torch.manual_seed(0)
    assert describe_resnet(torchvision.models.resnet50(weights=None).state_dict()).startswith("ResNet-50 ")
    assert describe_resnet(ICNetwork("tiny", 3, CLASSES, width=8).backbone.state_dict()) == (
        "a ResNet (BasicBlock blocks 2-2-2-2, width 8)")


# --------------------------------------------------------------------------------------- exits and costs


def test_resnet18_exits_on_112_pixels_and_costs_grow_per_exit():
    torch.manual_seed(0)
    net = ICNetwork("resnet18", 3, 51).eval()
    out = net(torch.randn(2, 3, 3, 112, 112))
    assert [tuple(z.shape) for z in out] == [(2, 51)] * 4
    gmacs = net.exit_gmacs((3, 3, 112, 112))
    assert gmacs[0] > 0 and all(a < b for a, b in zip(gmacs, gmacs[1:], strict=False))
    ensemble = net.exit_gmacs((3, 3, 112, 112), include_earlier_heads=True)
    assert ensemble[0] == gmacs[0] and all(e > g for e, g in zip(ensemble[1:], gmacs[1:], strict=True))


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_last_exit_costs_the_torchvision_network(arch):
    """IC4's count is the torchvision network's own (FLOPs / 2): the IC hooks add nothing to the trunk. With
    earlier heads counted (WISE's ensembles) costs grow exit by exit; alone they need not on ResNet-50, whose
    stage-3 IC (a 3x3 conv over 1024 channels at 1/16 resolution) costs more than stage 4 and the fc."""
    net = ICNetwork(arch, 3, 51)
    reference = getattr(torchvision.models, arch)(weights=None, num_classes=51).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        reference(torch.zeros(1, 3, 112, 112))
    gmacs = net.exit_gmacs((3, 112, 112))
    assert gmacs[-1] == pytest.approx(counter.get_total_flops() / 2 / 1e9, rel=1e-9)
    ensembles = net.exit_gmacs((3, 112, 112), include_earlier_heads=True)
    assert all(a < b for a, b in zip(ensembles, ensembles[1:], strict=False))
    assert (gmacs[2] > gmacs[3]) == (arch == "resnet50")


def test_frozen_pretrained_backbone_trains_only_heads(files, rgb_state):
    net = ICNetwork("resnet18", 3, CLASSES, pretrained_path=files["torchvision"], freeze_backbone=True).train()
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("ics.", "backbone.fc.")) for n in trainable)
    assert not net.backbone.bn1.training and net.ics[0].bn.training
    net(torch.randn(2, 1, 3, 64, 64))
    _assert_backbone_is(net, rgb_state)  # running statistics untouched by a training-mode pass
    tuned = ICNetwork("resnet18", 3, CLASSES, pretrained_path=files["torchvision"]).train()
    assert all(p.requires_grad for p in tuned.parameters()) and tuned.backbone.bn1.training


# ------------------------------------------------------------------------------------------- experiment


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACTIONDISTILL_DATA", str(root))
        yield root


@pytest.fixture(scope="module")
def videos(data_root) -> dict[str, list[tuple[Path, int]]]:
    """Label 0: a square moving right, 1: moving left; 4 training and 2 test clips of 12 frames (MPEG-4)."""
    out: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for i in range(6):
        rng = np.random.default_rng(i)
        frames = np.full((12, 32, 32, 3), 90, np.uint8) + rng.integers(0, 20, (1, 32, 32, 3), dtype=np.uint8)
        for t in range(12):
            x = 2 + 2 * t if i % 2 == 0 else 22 - 2 * t
            frames[t, 10:20, x : x + 8] = (220, 60, 40)
        path = write_video(data_root / "videos" / f"clip{i}.mp4", frames, codec="mpeg4", gop=12, max_b_frames=0)
        out["train" if i < 4 else "test"].append((path, i % 2))
    return out


def _streamed(files: dict[str, Path], **overrides) -> CompressedExperiment:
    settings = {"size": 32, "segments": 2, "batch_size": 2, "stage0_epochs": 1, "ic_epochs": 3, "arch": "resnet18",
                "checkpoint": {"iframe": str(files["tsn"]), "mv": str(files["tsn"]),
                               "residual": str(files["torchvision"])},
                "cache_features": False, "device": "cpu", "eval_batch_size": 4}
    return CompressedExperiment(**{**settings, **overrides})


def test_streamed_experiment_from_checkpoints(files, rgb_state, videos, data_root):
    """Frozen pretrained backbones (finetune_backbone=False): stage 0 trains only the final classifiers, then the
    ICs train behind the frozen networks on frames decoded every epoch; results are cached by checkpoint content."""
    run = lambda exp: run_experiment(exp, videos["train"], {"test": videos["test"]},  # noqa: E731
                                     ["right", "left"], seeds=[0], variants=["ce", "pkd"],
                                     cache_root=data_root / "pkd", progress=False)
    exp = _streamed(files, finetune_backbone=False, checkpoint=str(files["torchvision"]))
    first = run(exp)
    assert {"extraction", "stage0", "ics"} <= set(first.seconds) and "features" not in first.seconds
    assert first.logits[("pkd", 0)]["test"].shape == (12, 2, 2) and first.logits[("ce", 0)]["train"].shape[1] == 4
    backbones = torch.load(first.cache_dir / "stage0.pt", weights_only=True)["backbones"]
    for m in ("iframe", "residual"):
        for key in ("conv1.weight", "layer4.1.bn2.running_var"):
            assert torch.equal(backbones[m][key], rgb_state[key]), (m, key)
    assert torch.equal(backbones["mv"]["conv1.weight"][:, 1], rgb_state["conv1.weight"].mean(1))
    ce, pkd = first.logits[("ce", 0)]["test"], first.logits[("pkd", 0)]["test"]
    finals = [3, 7, 11]
    torch.testing.assert_close(ce[finals], pkd[finals])  # the same frozen final classifiers in both variants
    assert not torch.allclose(ce[:3], pkd[:3])
    assert len(first.wise_gmacs) == 12 and all(a < b for a, b in zip(first.wise_gmacs, first.wise_gmacs[1:]))
    assert run(exp).seconds == {}  # cached
    (data_root / "copy.pth").write_bytes(files["torchvision"].read_bytes())
    moved = run(_streamed(files, finetune_backbone=False, checkpoint=str(data_root / "copy.pth")))
    assert moved.seconds == {} and moved.cache_dir == first.cache_dir  # same content elsewhere: same experiment


def test_streamed_experiment_uses_checkpoint_classifiers_as_they_are(files, videos, data_root):
    """stage0_epochs=0: networks already trained on these classes (PKD's setting) are used unchanged."""
    tsn = torch.load(files["tsn"], weights_only=True)["state_dict"]
    exp = _streamed(files, stage0_epochs=0, checkpoint=str(files["tsn"]))
    with pytest.raises(ValueError, match=r"hold none for 2 classes"):
        run_experiment(exp, videos["train"], {"test": videos["test"]}, ["right", "left"], seeds=[0],
                       variants=["ce"], cache_root=data_root / "pkd0", progress=False)
    classes = [f"c{i}" for i in range(CLASSES)]
    result = run_experiment(exp, videos["train"], {"test": videos["test"]}, classes, seeds=[0], variants=["ce"],
                            cache_root=data_root / "pkd0", progress=False)
    backbones = torch.load(result.cache_dir / "stage0.pt", weights_only=True)["backbones"]
    assert torch.equal(backbones["iframe"]["fc.weight"], tsn["module.new_fc.weight"])
    assert "extraction" in result.seconds and result.logits[("ce", 0)]["test"].shape == (12, 2, CLASSES)
