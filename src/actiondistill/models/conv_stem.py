"""A convolutional stem in place of a ViT's patch embedding (ViT-Hybrid), for the embedded CLIPs.

Why: trained from random initialisation on a 2-core CPU budget, the embedded CLIPs' plain patch-8 ViT did not learn
where the world's main object is, even when trained on its position directly (`benchmarks/bench_frame_encoders.py`:
position error at the mean predictor's after 300 steps), so its frozen frame embeddings could not carry motion. A
stack of 3x3 convolutions gives the tower the locality prior a ViT only acquires from web-scale data; with stride 16
it feeds the same transformer a 4x4 token grid, and it learnt the object's position within the same budget. The
tower is still a ViT after the stem (class token, positional embedding, transformer blocks, attention pooling), so
X-CLIP's cross-frame messages and DeiT's extra token work on it unchanged.

Each stage is two 3x3 conv-BN-ReLU pairs and a 2x2 max pool, the last one widening to the transformer's width; the
stride is 2 ** stages and must equal the config's `patch_size` (which sizes the positional embedding). Only the
project's embedded backbones use a stem (`CONV_STEMS`); the real profiles' ViT-B and TinyCLIP-ViT towers keep their
patch embeddings, as their released weights need.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

#: backbone -> channels of the stem's stages before the last (which outputs the tower's width). The tiny stem has
#: half the base's channels, so TinyCLIP inheritance keeps the leading half of every stem filter.
CONV_STEMS: dict[str, tuple[int, ...]] = {"embedded-base": (32, 64, 128), "embedded-tiny": (16, 32, 64)}


class ConvStem(nn.Sequential):
    """(B, 3, H, W) -> (B, width, H / 2**stages, W / 2**stages), the patch embedding's output layout."""

    def __init__(self, width: int, channels: Sequence[int]):
        sizes = (3, *channels, width)
        super().__init__(*(_stage(cin, cout) for cin, cout in zip(sizes[:-1], sizes[1:], strict=True)))
        self.stride: int = 2 ** len(self)  # a plain attribute, so TorchScript (the OpenAI JIT archives) can read it

    def train(self, mode: bool = True) -> ConvStem:
        """A frozen stem (no parameter requires grad) stays in eval mode: its batch norms keep their running
        statistics, so a frozen image encoder inside a model that trains stays exactly the encoder it was."""
        return super().train(mode and any(p.requires_grad for p in self.parameters()))

    @property
    def weight(self) -> Tensor:
        """The first convolution's weight: where open_clip and this project read the tower's dtype from."""
        return self[0][0].weight


def _stage(cin: int, cout: int) -> nn.Sequential:
    """Convolutions without bias (the batch norm after each has one), He-initialised as in ResNets: with PyTorch's
    default initialisation the activations shrink about 2x per stage, so an untrained tower's image signal drowned
    under its positional embedding and fp32 rounding (an ONNX export disagreed with eager at cosine 0.95)."""
    stage = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                          nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                          nn.MaxPool2d(2))
    for layer in stage:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
    return stage


def attach_conv_stem(visual: nn.Module, channels: Sequence[int]) -> nn.Module:
    """Replace an open_clip VisionTransformer's `conv1` patch embedding with a `ConvStem` of the same output grid."""
    patch = visual.conv1.stride[0] if isinstance(visual.conv1, nn.Conv2d) else None
    stem = ConvStem(visual.conv1.out_channels, channels)
    if patch != stem.stride:
        raise ValueError(f"conv stem {tuple(channels)}: stride {stem.stride} needs a patch-{stem.stride} ViT, got "
                         f"patch embedding {visual.conv1}")
    visual.conv1 = stem.to(device=visual.conv1.weight.device, dtype=visual.conv1.weight.dtype)
    return visual
