"""ResNets with internal classifiers: hooks, freezing, segment averaging, exit GMACs, checkpoints, the triplet."""

from __future__ import annotations

import pytest
import torch
import torchvision

from actiondistill.losses import wise_predict
from actiondistill.models.checkpoints import CheckpointMismatchError
from actiondistill.models.compressed_nets import CompressedTriplet, ICNetwork

NUM_CLASSES = 5


def _tiny(in_channels: int = 3, **kwargs) -> ICNetwork:
    torch.manual_seed(0)
    return ICNetwork("tiny", in_channels, NUM_CLASSES, width=4, **kwargs)


@pytest.mark.parametrize("in_channels", [3, 2])
def test_forward_gives_four_exits_per_video(in_channels):
    net = _tiny(in_channels).eval()
    out = net(torch.randn(2, 3, in_channels, 32, 32))
    assert len(out) == 4 and all(z.shape == (2, NUM_CLASSES) for z in out)
    assert len({tuple(z.flatten().tolist()) for z in out}) == 4  # four different classifiers
    assert net._features == {}  # hooked activations are not kept between calls
    with pytest.raises(ValueError, match=rf"\(B, S, {in_channels}, H, W\)"):
        net(torch.randn(2, 5 - in_channels, 32, 32))


def test_ic_heads_follow_pkd():
    net = _tiny()
    head = net.ics[1]
    assert head.conv.kernel_size == (3, 3) and head.conv.padding == (1, 1) and head.conv.bias is None
    assert [type(m).__name__ for m in head.children()] == ["Conv2d", "BatchNorm2d", "ReLU", "AdaptiveAvgPool2d",
                                                           "Linear"]
    assert [h.conv.in_channels for h in net.ics] == [4, 8, 16]
    assert head.fc.in_features == 8 * 16


def test_torchvision_archs_get_their_stage_widths():
    r18 = ICNetwork("resnet18", 2, NUM_CLASSES)
    assert r18.backbone.conv1.in_channels == 2 and [h.conv.in_channels for h in r18.ics] == [64, 128, 256]
    r50 = ICNetwork("resnet50", 3, NUM_CLASSES)
    assert [h.conv.in_channels for h in r50.ics] == [256, 512, 1024]
    out = r18.eval()(torch.randn(1, 2, 2, 32, 32))
    assert [z.shape for z in out] == [torch.Size([1, NUM_CLASSES])] * 4
    with pytest.raises(ValueError, match="arch='resnet34'"):
        ICNetwork("resnet34", 3, NUM_CLASSES)


def test_segment_logits_are_averaged():
    net = _tiny().eval()
    x = torch.randn(2, 3, 3, 32, 32)
    together = net(x)
    alone = [net(x[:, s : s + 1]) for s in range(3)]
    for k in range(4):
        torch.testing.assert_close(together[k], torch.stack([a[k] for a in alone]).mean(0))


def test_frozen_backbone_trains_only_the_classifiers():
    net = _tiny(freeze_backbone=True).train()
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in net.named_parameters() if n.startswith(("ics.", "backbone.fc."))}
    bn_before = net.backbone.layer2[0].bn1.running_mean.clone()
    ic_bn_before = net.ics[0].bn.running_mean.clone()
    sum(z.sum() for z in net(torch.randn(2, 2, 3, 32, 32))).backward()
    for name, param in net.named_parameters():
        if name in trainable:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    assert torch.equal(net.backbone.layer2[0].bn1.running_mean, bn_before)  # frozen statistics
    assert not torch.equal(net.ics[0].bn.running_mean, ic_bn_before)  # the ICs' own BN still learns
    assert net.ics[0].training and not net.backbone.layer1.training


def test_trainable_backbone_gets_gradients():
    net = _tiny().train()
    sum(z.sum() for z in net(torch.randn(2, 2, 3, 32, 32))).backward()
    assert net.backbone.conv1.weight.grad.abs().sum() > 0 and net.backbone.layer3[0].conv1.weight.grad is not None


def _conv(cin: int, cout: int, k: int, side: int) -> int:
    return cin * cout * k * k * side * side


def test_exit_gmacs_match_a_hand_count():
    """Tiny width 4, layers (2, 2, 2, 2), 3x16x16 input: stem stride 2 -> 8x8, stages at 8, 4, 2, 1 px."""
    net = _tiny()
    stem = _conv(3, 4, 3, 8)
    layer1 = 4 * _conv(4, 4, 3, 8)

    def down(cin: int, cout: int, side: int) -> int:  # first block strides 2 with a 1x1 projection, second keeps
        return _conv(cin, cout, 3, side) + _conv(cout, cout, 3, side) + _conv(cin, cout, 1, side) \
            + 2 * _conv(cout, cout, 3, side)

    layers = [layer1, down(4, 8, 4), down(8, 16, 2), down(16, 32, 1)]
    heads = [_conv(c, c, 3, s) + c * 16 * NUM_CLASSES for c, s in ((4, 8), (8, 4), (16, 2))] + [32 * NUM_CLASSES]
    expected = [(stem + sum(layers[: k + 1]) + heads[k]) / 1e9 for k in range(4)]
    assert net.exit_gmacs((3, 16, 16)) == pytest.approx(expected, rel=1e-9)
    assert net.exit_gmacs((2, 3, 16, 16)) == pytest.approx([2 * g for g in expected], rel=1e-9)
    with_heads = [(stem + sum(layers[: k + 1]) + sum(heads[: k + 1])) / 1e9 for k in range(4)]
    assert net.exit_gmacs((3, 16, 16), include_earlier_heads=True) == pytest.approx(with_heads, rel=1e-9)
    with pytest.raises(ValueError, match="C = 3"):
        net.exit_gmacs((2, 16, 16))


@pytest.mark.parametrize("arch", ["tiny", "resnet18"])
def test_exit_gmacs_increase(arch):
    net = ICNetwork(arch, 2, NUM_CLASSES)
    gmacs = net.exit_gmacs((3, 2, 64, 64))
    assert all(a < b for a, b in zip(gmacs, gmacs[1:], strict=False)) and gmacs[0] > 0
    assert net.training  # the count does not leave the network in eval mode


def test_resnet18_full_cost_matches_torchvision():
    """IC4 = the whole torchvision ResNet-18 with a 2-channel conv1: 1.81 GMACs at 224 px less 1/3 of conv1."""
    gmacs = ICNetwork("resnet18", 2, 1000).exit_gmacs((2, 224, 224))[-1]
    conv1_rgb = 3 * 64 * 49 * 112 * 112 / 1e9
    assert gmacs == pytest.approx(1.814073344 - conv1_rgb / 3, rel=1e-6)


# ------------------------------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict", "both"])
def test_loads_torchvision_checkpoint_files(tmp_path, resnet18_state, wrap):
    state = dict(resnet18_state)
    if wrap in ("module", "both"):
        state = {f"module.{k}": v for k, v in state.items()}
    payload = {"state_dict": state, "epoch": 3} if wrap in ("state_dict", "both") else state
    path = tmp_path / "r18.pth"
    torch.save(payload, path)
    net = ICNetwork("resnet18", 3, NUM_CLASSES, pretrained_path=path)
    loaded = net.backbone.state_dict()
    for key in ("conv1.weight", "layer3.1.bn2.running_var", "layer4.0.downsample.0.weight"):
        assert torch.equal(loaded[key], resnet18_state[key]), key
    assert loaded["fc.weight"].shape == (NUM_CLASSES, 512)  # 1000-class fc skipped: IC4 trains from scratch


def test_two_channel_conv1_gets_the_rgb_mean(tmp_path, resnet18_state):
    path = tmp_path / "r18.pth"
    torch.save(resnet18_state, path)
    net = ICNetwork("resnet18", 2, NUM_CLASSES)
    report = net.load_backbone(path)
    assert report == {"adapted": ["conv1.weight"], "skipped": ["fc.weight", "fc.bias"]}
    mean = resnet18_state["conv1.weight"].mean(1)
    assert torch.equal(net.backbone.conv1.weight[:, 0], mean) and torch.equal(net.backbone.conv1.weight[:, 1], mean)


def test_mismatched_checkpoint_names_the_keys(tmp_path, resnet18_state):
    state = dict(resnet18_state)
    del state["layer2.0.conv1.weight"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    state["layer1.0.bn1.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as err:
        ICNetwork("resnet18", 3, NUM_CLASSES, pretrained_path=path)
    message = str(err.value)
    assert "bad.pth" in message and "layer2.0.conv1.weight" in message and "layer5.0.conv1.weight" in message
    assert "layer1.0.bn1.weight [3] in file vs [64] in model" in message
    torch.save(resnet18_state, path)
    with pytest.raises(CheckpointMismatchError, match=r"conv1.weight \[64, 3, 7, 7\] in file vs \[16, 3, 3, 3\]"):
        ICNetwork("tiny", 3, NUM_CLASSES, pretrained_path=path)  # same layout as ResNet-18, other widths


def test_tiny_checkpoint_round_trip(tmp_path):
    source = _tiny()
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": {f"module.backbone.{k}": v for k, v in source.backbone.state_dict().items()}}, path)
    torch.manual_seed(5)
    target = ICNetwork("tiny", 3, NUM_CLASSES, width=4, pretrained_path=path, freeze_backbone=True).eval()
    x = torch.randn(1, 2, 3, 32, 32)
    torch.testing.assert_close(target(x)[-1], source.eval()(x)[-1])


# ---------------------------------------------------------------------------------------------- triplet


def test_triplet_order_fusion_and_wise_consistency():
    torch.manual_seed(0)
    triplet = CompressedTriplet.build(NUM_CLASSES, width=4).eval()
    i, m, r = torch.randn(4, 2, 3, 32, 32), torch.randn(4, 2, 2, 32, 32), torch.randn(4, 2, 3, 32, 32)
    outputs = triplet(i, m, r)
    ordered = triplet.ordered_ics(outputs)
    assert len(ordered) == 12
    assert ordered[0] is outputs["residual"][0] and ordered[4] is outputs["mv"][0]
    assert ordered[11] is outputs["iframe"][3]
    torch.testing.assert_close(outputs["iframe"][3], triplet.nets["iframe"](i)[3])
    fused = triplet.fuse(outputs)
    torch.testing.assert_close(fused, 2 * outputs["iframe"][3] + outputs["mv"][3] + outputs["residual"][3])
    # WISE's fallback (never confident at threshold 1) is the same fusion in the same order.
    weights = [torch.ones(k + 1) for k in range(12)]
    pred, exits = wise_predict(ordered, weights, threshold=1.0)
    assert torch.equal(pred, fused.argmax(1)) and torch.all(exits == 12)


def test_triplet_wise_exit_gmacs_accumulate_over_networks():
    triplet = CompressedTriplet.build(NUM_CLASSES, width=4)
    shapes = {"iframe": (2, 3, 32, 32), "mv": (2, 2, 32, 32), "residual": (2, 3, 32, 32)}
    costs = triplet.wise_exit_gmacs(shapes)
    assert len(costs) == 12 and all(a < b for a, b in zip(costs, costs[1:], strict=False))
    residual = triplet.nets["residual"].exit_gmacs(shapes["residual"], include_earlier_heads=True)
    mv = triplet.nets["mv"].exit_gmacs(shapes["mv"], include_earlier_heads=True)
    assert costs[:4] == pytest.approx(residual)
    assert costs[4] == pytest.approx(residual[-1] + mv[0])


def test_triplet_checks_its_networks():
    with pytest.raises(ValueError, match="mv network: expected 2 input channels"):
        CompressedTriplet(_tiny(3), _tiny(3), _tiny(3))
    with pytest.raises(ValueError, match="num_classes"):
        CompressedTriplet(_tiny(3), _tiny(2), ICNetwork("tiny", 3, NUM_CLASSES + 1, width=4))
    with pytest.raises(ValueError, match="unknown modalities"):
        CompressedTriplet.build(NUM_CLASSES, pretrained={"flow": "x.pt"})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_gpu():
    triplet = CompressedTriplet.build(NUM_CLASSES, width=8, freeze_backbone=True).cuda().train()
    i, m, r = (torch.randn(2, 3, c, 64, 64, device="cuda") for c in (3, 2, 3))
    outputs = triplet(i, m, r)
    sum(z.sum() for z in triplet.ordered_ics(outputs)).backward()
    assert all(z.device.type == "cuda" for z in triplet.ordered_ics(outputs))
    assert triplet.nets["mv"].ics[0].conv.weight.grad is not None
    assert len(triplet.wise_exit_gmacs({"iframe": (3, 3, 64, 64), "mv": (3, 2, 64, 64),
                                        "residual": (3, 3, 64, 64)})) == 12
