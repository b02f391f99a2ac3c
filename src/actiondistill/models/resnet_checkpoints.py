"""ResNet weights from local files, for the compressed track's networks (never downloaded).

Three layouts are read, detected from the keys themselves:
- torchvision: a plain state dict as `torchvision.models.resnet18(weights=...)` saves it (resnet18-f37072fd.pth,
  resnet50-11ad3fa6.pth, ...);
- training checkpoints of TSN and CoViAR: `{"state_dict": ...}` whose keys carry wrappers such as
  `module.` (DataParallel) and `base_model.` (the TSN model around the torchvision ResNet), with the classifier
  under another name (`new_fc`) and CoViAR's input batch norm `data_bn` beside the backbone;
- mmaction2 (Kinetics TSN checkpoints): `backbone.` keys in mmcv's ConvModule naming (`conv1.conv`, `conv1.bn`,
  `downsample.conv`), renamed here to torchvision's (`conv1`, `bn1`, `downsample.0`).

The classifier, whatever its name, is read as `fc` and loaded only when it has exactly the network's shape (a
checkpoint trained on this dataset's classes, e.g. a CoViAR network); an ImageNet or Kinetics classifier is
dropped, and the network's fc (its IC4) trains. Anything else that does not fit raises `CheckpointMismatchError`
naming the keys and, when the file holds a ResNet of another depth, which one it is.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from actiondistill.models.checkpoints import CheckpointMismatchError, read_state_dict

log = logging.getLogger(__name__)

#: Wrappers that training code puts around a torchvision ResNet's keys, stripped wherever they start a key.
KEY_PREFIXES = ("module.", "base_model.", "backbone.", "model.")
#: Top-level names of classifiers (torchvision, TSN, mmaction2, timm, pretrainedmodels), all read as `fc`.
CLASSIFIER_NAMES = ("fc", "new_fc", "cls_head", "classifier", "head", "last_linear")
#: Modules some trainers keep beside the backbone and the networks here do not have: dropped, and reported.
EXTRA_NAMES = ("data_bn",)  # CoViAR normalises MV and residual inputs with a batch norm before conv1
#: Known torchvision depths: (block, blocks per stage) -> name.
RESNET_LAYOUTS = {
    ("basic", (2, 2, 2, 2)): "ResNet-18",
    ("basic", (3, 4, 6, 3)): "ResNet-34",
    ("bottleneck", (3, 4, 6, 3)): "ResNet-50",
    ("bottleneck", (3, 4, 23, 3)): "ResNet-101",
    ("bottleneck", (3, 8, 36, 3)): "ResNet-152",
}
_MAX_NAMED = 20
# mmcv ConvModule naming -> torchvision's (stem, block convolutions, downsample).
_MMACTION_RENAMES = (
    (re.compile(r"^conv1\.conv\."), "conv1."),
    (re.compile(r"^conv1\.bn\."), "bn1."),
    (re.compile(r"^(layer\d+\.\d+)\.conv(\d)\.conv\."), r"\1.conv\2."),
    (re.compile(r"^(layer\d+\.\d+)\.conv(\d)\.bn\."), r"\1.bn\2."),
    (re.compile(r"^(layer\d+\.\d+)\.downsample\.conv\."), r"\1.downsample.0."),
    (re.compile(r"^(layer\d+\.\d+)\.downsample\.bn\."), r"\1.downsample.1."),
)
_MMACTION_STEM = re.compile(r"^(conv1|layer\d+\.\d+\.conv\d)\.conv\.weight$")
_EXPECTED = ("a torchvision ResNet state dict (e.g. resnet18-f37072fd.pth) or a training checkpoint "
             "{'state_dict': ...} of TSN, CoViAR or mmaction2 holding a ResNet")


@dataclass
class BackboneLoadReport:
    """What `load_resnet_backbone` did.

    Attributes:
        path: the file read.
        layout: "torchvision" or "mmaction2" (the key naming found).
        loaded: tensors copied into the backbone.
        adapted: keys loaded after a change (the input convolution of another channel count).
        classifier: the file's classifier keys loaded into fc (empty unless its shape fits the network's).
        skipped: the file's keys left out on purpose (a classifier of another shape, `data_bn`), named as in the
            file less DataParallel's `module.`.
        missing, unexpected: backbone keys the file lacks / file keys the backbone lacks (non-empty only when
            loading with strict=False; a strict load raises instead).
    """

    path: str
    layout: str
    loaded: int = 0
    adapted: list[str] = field(default_factory=list)
    classifier: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


@dataclass
class ResNetCheckpoint:
    """A ResNet checkpoint in torchvision key names.

    Attributes:
        backbone: every tensor but the classifier's, in torchvision names.
        classifier: {"fc.weight": ..., "fc.bias": ...} read from whichever classifier the file has (empty when it
            has none, or several candidates).
        sources: torchvision name -> the file's key (less DataParallel's `module.`), for every tensor above.
        skipped: the file's keys that belong to neither (extras such as `data_bn`, ambiguous classifiers).
        layout: "torchvision" or "mmaction2".
    """

    backbone: dict[str, Tensor]
    classifier: dict[str, Tensor]
    sources: dict[str, str]
    skipped: list[str]
    layout: str


def adapt_input_conv(weight: Tensor, in_channels: int) -> Tensor:
    """A first convolution for `in_channels` inputs from one trained on another count (usually RGB).

    TSN's cross-modality initialisation (Wang et al., 2016): average the filters over their input channels and
    replicate that mean for every new channel. The motion-vector network (2 channels) starts from RGB weights this
    way, so its filters keep the spatial patterns ImageNet/Kinetics training found, applied to each motion axis.
    """
    if weight.dim() != 4:
        raise ValueError(f"expected a conv weight (out, in, kh, kw), got shape {list(weight.shape)}")
    return weight.mean(1, keepdim=True).expand(-1, in_channels, -1, -1).clone()


def read_resnet_checkpoint(path: str | os.PathLike) -> ResNetCheckpoint:
    """Read a ResNet checkpoint file (any layout of the module docstring) into torchvision key names.

    Raises:
        FileNotFoundError: no such file (or a folder).
        ValueError: not a readable weight file; CheckpointMismatchError when nothing in it is a ResNet.
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{path}: is a folder; expected a checkpoint file, {_EXPECTED}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file; expected {_EXPECTED}")
    try:
        raw, _ = read_state_dict(path)
    except ValueError as err:
        raise ValueError(f"{path}: not a ResNet checkpoint this project reads; expected {_EXPECTED}. {err}") from err
    names = {key: _strip_wrappers(key) for key in raw}
    mmaction = any(_MMACTION_STEM.match(name) for name in names.values())
    if mmaction:
        names = {key: _mmaction_to_torchvision(name) for key, name in names.items()}
    backbone, sources, skipped, heads = {}, {}, [], {}
    for key, name in names.items():
        top, _, rest = name.partition(".")
        if top in CLASSIFIER_NAMES:
            heads.setdefault(rest.rsplit(".", 1)[-1], []).append(key)
        elif top in EXTRA_NAMES:
            skipped.append(key)
        elif name in sources:
            raise CheckpointMismatchError(f"{path}: keys {sources[name]!r} and {key!r} both name {name!r} once "
                                          f"the wrappers {list(KEY_PREFIXES)} are stripped")
        else:
            backbone[name], sources[name] = raw[key], key
    classifier = {}
    if set(heads) == {"weight", "bias"} and all(len(keys) == 1 for keys in heads.values()) \
            and raw[heads["weight"][0]].dim() == 2:
        for leaf, (key,) in heads.items():
            classifier[f"fc.{leaf}"], sources[f"fc.{leaf}"] = raw[key], key
    else:
        skipped += [key for keys in heads.values() for key in keys]
    if "conv1.weight" not in backbone and not any(n.startswith("layer1.") for n in backbone):
        shown = ", ".join(sorted(backbone)[:8]) or "none"
        raise CheckpointMismatchError(
            f"{path}: no ResNet backbone in it; expected {_EXPECTED}, with keys such as conv1.weight and "
            f"layer1.0.conv1.weight (after stripping {list(KEY_PREFIXES)}). Its other keys begin: {shown}")
    return ResNetCheckpoint(backbone, classifier, sources, skipped, "mmaction2" if mmaction else "torchvision")


def _strip_wrappers(key: str) -> str:
    while key.startswith(KEY_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _mmaction_to_torchvision(name: str) -> str:
    for pattern, replacement in _MMACTION_RENAMES:
        name = pattern.sub(replacement, name)
    return name


def describe_resnet(state: dict[str, Tensor]) -> str:
    """Name the ResNet a torchvision-named state dict holds, e.g. 'ResNet-50 (Bottleneck blocks 3-4-6-3, width
    64)', from its keys: which block type, how many blocks per stage, the stem's width."""
    blocks = [1 + max((int(m.group(1)) for k in state if (m := re.match(rf"^layer{s}\.(\d+)\.", k))), default=-1)
              for s in range(1, 5)]
    kind = "bottleneck" if any(re.match(r"^layer\d+\.\d+\.conv3\.weight$", k) for k in state) else "basic"
    stem = state.get("conv1.weight")
    width = int(stem.shape[0]) if stem is not None and stem.dim() == 4 else None
    name = RESNET_LAYOUTS.get((kind, tuple(blocks)), "a ResNet") if width in (64, None) else "a ResNet"
    layout = f"{'Bottleneck' if kind == 'bottleneck' else 'BasicBlock'} blocks {'-'.join(map(str, blocks))}"
    return f"{name} ({layout}" + (f", width {width}" if width is not None else "") + ")"


def load_resnet_backbone(backbone: nn.Module, path: str | os.PathLike, strict: bool = True,
                         description: str = "the backbone") -> BackboneLoadReport:
    """Load a ResNet checkpoint file into a torchvision-named ResNet (`backbone`).

    The first convolution is adapted with `adapt_input_conv` when the backbone takes another channel count than
    the file (the motion-vector network's 2 channels from RGB weights); a 3-channel backbone (I-frame, residual)
    takes 3-channel weights only. The classifier is loaded only when its shape is the backbone fc's. BN
    `num_batches_tracked` counters may be absent.

    Args:
        backbone: a torchvision ResNet or one with its attribute names (`TinyResNet`).
        path: the checkpoint file.
        strict: raise on missing or unexpected keys (default). With False they are loaded around, listed in the
            report and logged. Shape mismatches always raise.
        description: what the backbone is, for messages (e.g. "the mv network's resnet18").

    Raises:
        CheckpointMismatchError: naming every key that does not fit, and the ResNet the file holds.
    """
    ckpt = read_resnet_checkpoint(path)
    state = dict(ckpt.backbone)
    report = BackboneLoadReport(path=str(path), layout=ckpt.layout, skipped=list(ckpt.skipped))
    full = backbone.state_dict()
    expected = {k: v for k, v in full.items() if not k.startswith("fc.")}
    conv, target = state.get("conv1.weight"), expected.get("conv1.weight")
    if (conv is not None and target is not None and conv.dim() == 4 and conv.shape[1] != target.shape[1]
            and target.shape[1] != 3 and conv.shape[0] == target.shape[0] and conv.shape[2:] == target.shape[2:]):
        state["conv1.weight"] = adapt_input_conv(conv, target.shape[1])
        report.adapted.append("conv1.weight")
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = sorted(f"{k} {list(v.shape)} in file vs {list(expected[k].shape)} in model"
                        for k, v in state.items() if k in expected and v.shape != expected[k].shape)
    if mismatched or (strict and (missing or unexpected)):
        lines = [f"{path} ({ckpt.layout} layout) does not fit {description}: the file holds "
                 f"{describe_resnet(state)}, the network is {describe_resnet(expected)}."]
        if conv is not None and target is not None and conv.dim() == 4 and target.shape[1] == 3 != conv.shape[1]:
            lines.append(f"  Its input convolution takes {conv.shape[1]} channels (a motion or optical-flow "
                         "network's?); the I-frame and residual networks take 3-channel (RGB) weights.")
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatches", mismatched)):
            if keys:
                more = f", ... ({len(keys) - _MAX_NAMED} more)" if len(keys) > _MAX_NAMED else ""
                lines.append(f"  {label} ({len(keys)}): {', '.join(keys[:_MAX_NAMED])}{more}")
        raise CheckpointMismatchError("\n".join(lines))
    fitting = {k: v for k, v in state.items() if k in expected}
    if ckpt.classifier and all(k in full and v.shape == full[k].shape for k, v in ckpt.classifier.items()):
        fitting.update(ckpt.classifier)
        report.classifier = [ckpt.sources[k] for k in ckpt.classifier]
    else:
        report.skipped += [ckpt.sources[k] for k in ckpt.classifier]
    backbone.load_state_dict(fitting, strict=False)
    report.loaded, report.missing, report.unexpected = len(fitting), missing, unexpected
    log.info("%s: %d tensors loaded into %s (%s layout; input conv adapted: %s; classifier %s; skipped: %s)", path,
             report.loaded, description, ckpt.layout, "yes" if report.adapted else "no",
             "loaded" if report.classifier else "not loaded", ", ".join(report.skipped) or "none")
    if missing or unexpected:
        log.warning("%s: loaded into %s without %d missing keys (%s) and %d unexpected ones (%s)", path,
                    description, len(missing), ", ".join(missing[:_MAX_NAMED]), len(unexpected),
                    ", ".join(unexpected[:_MAX_NAMED]))
    return report
