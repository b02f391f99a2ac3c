"""Networks of the compressed track (PKD, Soufleri et al. 2024): ResNets with internal classifiers (ICs).

An `ICNetwork` is a ResNet whose stages 1-3 each feed an IC through a forward hook, and whose final fc is IC4.
Backbones: torchvision ResNet-18/50 for real runs (weights only from local files, never downloaded) and a
small-width ResNet ("tiny") for the CPU-only embedded profile. With `freeze_backbone` only the ICs (IC4 = fc
included) train and the backbone's batch-norm statistics stay fixed, as in PKD.

`CompressedTriplet` holds the I-frame, MV and residual networks, fuses their final logits as CoViAR does
(2 * I + 1 * MV + 1 * R, on logits, like the WISE fallback in `actiondistill.losses.wise`) and lists the 12 ICs
in WISE's order: residual IC1-4, MV IC1-4, I-frame IC1-4.

Costs are GMACs (multiply-adds), counted by torch.utils.flop_counter.FlopCounterMode (its FLOPs / 2). That
counter sees convolutions and matrix products only; batch norm, ReLU, pooling and additions are not counted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
import torchvision
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.resnet import BasicBlock

from actiondistill.models.resnet_checkpoints import load_resnet_backbone

ARCHS = ("resnet18", "resnet50", "tiny")
MODALITIES = ("residual", "mv", "iframe")  # WISE's order, cheapest first
MODALITY_CHANNELS = {"iframe": 3, "mv": 2, "residual": 3}
#: CoViAR's fusion of the final scores.
FUSION_WEIGHTS = {"iframe": 2.0, "mv": 1.0, "residual": 1.0}
IC_POOL = 4


class TinyResNet(nn.Module):
    """A ResNet-18 layout (BasicBlocks, 4 stages) at base width `width`, for small frames on a CPU.

    The stem is one stride-2 3x3 convolution without max-pooling, so a 64x64 frame reaches stage 4 at 4x4
    (a torchvision stem would leave 2x2). Attribute names follow torchvision's ResNet, so the same hooks,
    freezing and checkpoint code serve both.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, width: int = 16,
                 layers: Sequence[int] = (2, 2, 2, 2)):
        super().__init__()
        if width < 1 or len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"TinyResNet: expected width >= 1 and 4 stages of >= 1 block, got {width}, {layers}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        channels = width
        stages = []
        for index, blocks in enumerate(layers):
            planes, stride = width * 2**index, 1 if index == 0 else 2
            stages.append(self._stage(channels, planes, blocks, stride))
            channels = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(inplanes, planes, stride, downsample)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ICHead(nn.Module):
    """PKD's internal classifier: conv 3x3 (no bias) -> BN -> ReLU -> adaptive average pool to 4x4 -> linear."""

    def __init__(self, channels: int, num_classes: int, pool: int = IC_POOL):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.fc = nn.Linear(channels * pool * pool, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.relu(self.bn(self.conv(x)))), 1))


def _stage_channels(stage: nn.Module) -> int:
    """Output channels of a ResNet stage: the last batch norm of its last block."""
    norms = [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)]
    return norms[-1].num_features


def build_resnet(arch: str, in_channels: int, num_classes: int, width: int = 16) -> nn.Module:
    """An untrained ResNet with `in_channels` input channels; torchvision's never download (weights=None)."""
    if arch == "tiny":
        return TinyResNet(in_channels, num_classes, width=width)
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}: expected one of {ARCHS}")
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


class ICNetwork(nn.Module):
    """A ResNet with ICs after stages 1, 2, 3 (forward hooks) and its fc as IC4.

    Args:
        arch: "resnet18", "resnet50" (torchvision) or "tiny" (`TinyResNet`).
        in_channels: 3 (I-frame, residual) or 2 (motion vectors).
        num_classes: classes of every IC.
        width: base width of the tiny ResNet (ignored by torchvision archs).
        pretrained_path: a local ResNet checkpoint for the backbone (torchvision ImageNet, or a TSN / CoViAR /
            mmaction2 training checkpoint); see `load_backbone`.
        freeze_backbone: train only the ICs (IC4 = fc included), with the backbone's BN statistics fixed.
    """

    def __init__(self, arch: str, in_channels: int, num_classes: int, width: int = 16,
                 pretrained_path: str | os.PathLike | None = None, freeze_backbone: bool = False):
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"expected in_channels >= 1 and num_classes >= 1, got {in_channels}, {num_classes}")
        self.arch, self.in_channels, self.num_classes = arch, in_channels, num_classes
        self.backbone = build_resnet(arch, in_channels, num_classes, width)
        stages = [self.backbone.layer1, self.backbone.layer2, self.backbone.layer3]
        self.ics = nn.ModuleList(ICHead(_stage_channels(s), num_classes) for s in stages)
        self._features: dict[int, Tensor] = {}
        for index, stage in enumerate(stages):
            stage.register_forward_hook(self._keeper(index))
        if pretrained_path is not None:
            self.load_backbone(pretrained_path)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for name, param in self.backbone.named_parameters():
                param.requires_grad_(name.startswith("fc."))
            self.train(self.training)

    def _keeper(self, index: int) -> Callable[[nn.Module, tuple, Tensor], None]:
        def keep(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            self._features[index] = output

        return keep

    def train(self, mode: bool = True) -> ICNetwork:
        """Like nn.Module.train, but a frozen backbone keeps its batch norms in eval mode (fixed statistics)."""
        super().train(mode)
        if getattr(self, "freeze_backbone", False):
            for name, module in self.backbone.named_children():
                if name != "fc":
                    module.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, S, C, H, W) segments -> [IC1, IC2, IC3, IC4] logits, each (B, num_classes), averaged over S."""
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(f"expected input (B, S, {self.in_channels}, H, W), got {tuple(x.shape)}")
        batch, segments = x.shape[:2]
        self._features.clear()
        final = self.backbone(x.flatten(0, 1))
        try:
            logits = [head(self._features[i]) for i, head in enumerate(self.ics)] + [final]
        finally:
            self._features.clear()
        return [z.view(batch, segments, -1).mean(1) for z in logits]

    def _stem(self, x: Tensor) -> Tensor:
        b = self.backbone
        return b.maxpool(b.relu(b.bn1(b.conv1(x))))

    def _classifier(self, x: Tensor) -> Tensor:
        return self.backbone.fc(torch.flatten(self.backbone.avgpool(x), 1))

    @torch.no_grad()
    def exit_gmacs(self, input_shape: Sequence[int], include_earlier_heads: bool = False) -> list[float]:
        """GMACs to reach each exit for one input: backbone up to the exit's stage plus the exit's head.

        Args:
            input_shape: (C, H, W) for one frame or (S, C, H, W) for one video of S segments.
            include_earlier_heads: also count IC1..k-1's heads for exit k (the cost of an ensemble of the
                first k exits, as WISE evaluates them).

        Returns:
            4 cumulative GMACs (IC1, IC2, IC3, IC4 = full network), FlopCounterMode FLOPs / 2.
        """
        shape = tuple(input_shape)
        if len(shape) == 3:
            shape = (1, *shape)
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"input_shape {tuple(input_shape)}: expected (C, H, W) or (S, C, H, W) with "
                             f"C = {self.in_channels}")
        was_training = self.training
        self.eval()
        try:
            x = torch.zeros(shape, device=next(self.parameters()).device)
            trunk, heads = [], []
            x, cost = _count(self._stem, x)
            b = self.backbone
            for index, stage in enumerate((b.layer1, b.layer2, b.layer3, b.layer4)):
                x, stage_cost = _count(stage, x)
                cost += stage_cost
                trunk.append(cost)
                head = self.ics[index] if index < 3 else self._classifier
                heads.append(_count(head, x)[1])
        finally:
            self.train(was_training)
        exits = []
        for k in range(4):
            head_cost = sum(heads[: k + 1]) if include_earlier_heads else heads[k]
            exits.append((trunk[k] + head_cost) / 1e9)
        return exits

    def load_backbone(self, path: str | os.PathLike, strict: bool = True) -> dict[str, list[str]]:
        """Load a local ResNet checkpoint into the backbone (see `actiondistill.models.resnet_checkpoints`).

        Accepted: torchvision state dicts (ImageNet), training checkpoints of TSN / CoViAR / mmaction2 (Kinetics)
        with their wrappers (`module.`, `base_model.`, `backbone.`) and classifier names (`new_fc`, ...). A
        3-channel conv1 loads into the MV network's 2-channel one as the mean over RGB repeated (TSN's
        cross-modality initialisation); the classifier loads only when it has this network's class count (it is
        IC4, and otherwise trains from scratch); BN `num_batches_tracked` counters may be absent. Anything else
        that does not fit raises `CheckpointMismatchError` naming the keys.

        Args:
            path: the checkpoint file.
            strict: with False, missing and unexpected backbone keys are loaded around and returned, not raised.

        Returns:
            {"adapted": [...], "skipped": [...]} keys (skipped: the file's, less DataParallel's `module.`), plus
            "missing" and "unexpected" with strict=False.
        """
        description = f"a {self.arch} backbone with {self.in_channels} input channels"
        report = load_resnet_backbone(self.backbone, path, strict=strict, description=description)
        out = {"adapted": report.adapted, "skipped": report.skipped}
        if not strict:
            out.update(missing=report.missing, unexpected=report.unexpected)
        return out


def _count(fn: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, float]:
    """Output of fn(x) and the MACs it took (FlopCounterMode's FLOPs / 2)."""
    with FlopCounterMode(display=False) as counter:
        out = fn(x)
    return out, counter.get_total_flops() / 2


class CompressedTriplet(nn.Module):
    """The I-frame, MV and residual ICNetworks of PKD, with CoViAR's fusion and WISE's IC order.

    Build with `CompressedTriplet.build(num_classes, ...)` or from three networks.
    """

    def __init__(self, iframe: ICNetwork, mv: ICNetwork, residual: ICNetwork):
        super().__init__()
        classes = {iframe.num_classes, mv.num_classes, residual.num_classes}
        if len(classes) != 1:
            raise ValueError(f"the three networks must share num_classes, got {sorted(classes)}")
        for name, net in (("iframe", iframe), ("mv", mv), ("residual", residual)):
            if net.in_channels != MODALITY_CHANNELS[name]:
                raise ValueError(f"{name} network: expected {MODALITY_CHANNELS[name]} input channels, "
                                 f"got {net.in_channels}")
        self.nets = nn.ModuleDict({"iframe": iframe, "mv": mv, "residual": residual})
        self.num_classes = classes.pop()

    @classmethod
    def build(cls, num_classes: int, iframe_arch: str = "tiny", mv_arch: str = "tiny", residual_arch: str = "tiny",
              width: int = 16, pretrained: dict[str, str | os.PathLike] | None = None,
              freeze_backbone: bool = False) -> CompressedTriplet:
        """Three networks: PKD uses iframe_arch="resnet50", mv_arch=residual_arch="resnet18"; the embedded
        profile "tiny" for all. `pretrained` maps modality names ("iframe", "mv", "residual") to local files."""
        pretrained = dict(pretrained or {})
        unknown = sorted(set(pretrained) - set(MODALITIES))
        if unknown:
            raise ValueError(f"pretrained: unknown modalities {unknown}; expected keys among {list(MODALITIES)}")
        archs = {"iframe": iframe_arch, "mv": mv_arch, "residual": residual_arch}
        nets = {name: ICNetwork(archs[name], MODALITY_CHANNELS[name], num_classes, width=width,
                                pretrained_path=pretrained.get(name), freeze_backbone=freeze_backbone)
                for name in MODALITIES}
        return cls(**nets)

    def forward(self, iframe: Tensor, mv: Tensor, residual: Tensor) -> dict[str, list[Tensor]]:
        """(B, S, C, H, W) inputs per modality -> {modality: [IC1..IC4 logits (B, num_classes)]}."""
        inputs = {"iframe": iframe, "mv": mv, "residual": residual}
        return {name: self.nets[name](inputs[name]) for name in MODALITIES}

    @staticmethod
    def ordered_ics(outputs: dict[str, list[Tensor]]) -> list[Tensor]:
        """The 12 ICs' logits in WISE's order: residual IC1-4, MV IC1-4, I-frame IC1-4."""
        return [z for name in MODALITIES for z in outputs[name]]

    @staticmethod
    def fuse(outputs: dict[str, list[Tensor]]) -> Tensor:
        """CoViAR's fused score on the final classifiers' logits: 2 * I + 1 * MV + 1 * R."""
        return sum(FUSION_WEIGHTS[name] * outputs[name][-1] for name in MODALITIES)

    def wise_exit_gmacs(self, input_shapes: dict[str, Sequence[int]]) -> list[float]:
        """Cumulative GMACs of the 12 exits in WISE order, for one video.

        Exit k's cost is that of every network before it in the order run in full with all its heads, plus its own
        network up to the exit with its heads IC1..k (WISE's ensemble at exit k uses all of them).

        Args:
            input_shapes: per modality (S, C, H, W) of one video, e.g. {"iframe": (3, 3, 64, 64), ...}.
        """
        missing = [name for name in MODALITIES if name not in input_shapes]
        if missing:
            raise ValueError(f"input_shapes: missing modalities {missing}")
        costs, spent = [], 0.0
        for name in MODALITIES:
            exits = self.nets[name].exit_gmacs(input_shapes[name], include_earlier_heads=True)
            costs += [spent + g for g in exits]
            spent += exits[-1]
        return costs
