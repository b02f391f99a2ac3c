"""Work done once: fixed views of the clips in memory, and frozen backbones' stage features with an IC-only model.

Decoding a compressed-domain item (three npz members, a motion-compensated residual, a resize) costs more than a
tiny network's step, so the chapter draws a few fixed views per clip once (`decoded_views`) and cycles through
them by epoch (`ViewBank`), instead of decoding every epoch. With the backbone and final classifier frozen, as in
PKD, an IC's input for a view never changes either: `stage_features` runs each backbone once per view, and
`ICHeads` trains the ICs on those features with exactly the outputs of the `CompressedTriplet` they belong to
(the heads are the triplet's own modules, shared) at the cost of the heads alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from actiondistill.models.compressed_nets import MODALITIES, CompressedTriplet
from actiondistill.parallel import torch_threads

Tree = Tensor | dict[str, Any] | list[Any]


def _leaves(tree: Tree) -> Iterator[Tensor]:
    if isinstance(tree, Tensor):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from _leaves(value)
    elif isinstance(tree, list | tuple):
        for value in tree:
            yield from _leaves(value)
    else:
        raise TypeError(f"expected tensors in dicts and lists, got {type(tree).__name__}")


def _take(tree: Tree, index: int) -> Tree:
    """One clip of a view; stored floats (often float16) come back as float32."""
    if isinstance(tree, Tensor):
        item = tree[index]
        return item.float() if item.is_floating_point() else item
    if isinstance(tree, dict):
        return {key: _take(value, index) for key, value in tree.items()}
    return [_take(value, index) for value in tree]


class ViewBank(Dataset):
    """Precomputed views of N clips, cycled by epoch: after `set_epoch(e)` items come from view e % V.

    A view is a dict of tensors, or lists of tensors, whose first dimension is the clip (decoded inputs
    {"iframe", "mv", "residual"}, or per modality the stage features and final logits). An item is that structure
    at one clip, floats as float32, plus "label" and "index".

    Args:
        views: V views of the same N clips, in the same order.
        labels: the N labels.
        classes: class names (the Trainer reads them as the training set's class texts).
    """

    def __init__(self, views: Sequence[dict[str, Any]], labels: Sequence[int] | Tensor,
                 classes: Sequence[str] | None = None):
        if not views:
            raise ValueError("views: expected at least one view")
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        n = len(self.labels)
        for v, view in enumerate(views):
            sizes = {leaf.shape[0] if leaf.dim() else -1 for leaf in _leaves(view)}
            if sizes != {n}:
                raise ValueError(f"view {v}: expected every tensor to have {n} clips (one per label) in its first "
                                 f"dimension, got sizes {sorted(sizes)}")
        self.views = list(views)
        self.classes = list(classes) if classes is not None else None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def view(self) -> dict[str, Any]:
        """The view served in the current epoch."""
        return self.views[self.epoch % len(self.views)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        index %= len(self)
        return {**_take(self.view, index), "label": int(self.labels[index]), "index": index}


def decoded_views(dataset: Dataset, epochs: Sequence[int], batch_size: int = 32, dtype: torch.dtype = torch.float16,
                  progress: bool = True, desc: str = "decoding views") -> tuple[list[dict[str, Tensor]], Tensor]:
    """Read every item of a compressed-video dataset once per entry of `epochs` (its per-epoch randomness).

    Args:
        dataset: a `CompressedVideoDataset` (or anything with its item keys and `set_epoch`).
        epochs: the epoch numbers whose views to draw (a test-style dataset gives the same view for any).
        batch_size: items per collation.
        dtype: storage type of the views (float16 halves the memory; `ViewBank` serves float32).
        progress: a progress bar over all items.

    Returns:
        (views, labels): one {"iframe", "mv", "residual"} dict of (N, S, C, H, W) tensors per epoch, and (N,) labels.
    """
    if not epochs:
        raise ValueError("epochs: expected at least one epoch to draw a view from")
    views, labels = [], None
    bar = tqdm(total=len(dataset) * len(epochs), desc=desc, unit="clip", disable=not progress, leave=False)
    with torch_threads(1):  # per-item decoding ops are tiny
        for epoch in epochs:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            parts: dict[str, list[Tensor]] = {m: [] for m in MODALITIES}
            view_labels = []
            for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
                for m in MODALITIES:
                    parts[m].append(batch[m].to(dtype))
                view_labels.append(torch.as_tensor(batch["label"]).long())
                bar.update(len(view_labels[-1]))
            views.append({m: torch.cat(chunks) for m, chunks in parts.items()})
            labels = torch.cat(view_labels)
    bar.close()
    return views, labels


@torch.no_grad()
def stage_features(triplet: CompressedTriplet, view: dict[str, Tensor], batch_size: int = 64,
                   dtype: torch.dtype = torch.float16, progress: bool = True,
                   desc: str = "stage features") -> dict[str, list[Tensor]]:
    """Per modality [stage-1, stage-2, stage-3 outputs (N, S, C_k, H_k, W_k), final logits (N, classes)].

    The backbones run in eval mode (fixed batch-norm statistics), as a frozen backbone does in training. Features
    are stored as `dtype`; the final logits, which are teachers, stay float32.
    """
    was_training = triplet.training
    triplet.eval()
    device = next(triplet.parameters()).device
    out: dict[str, list[Tensor]] = {}
    total = sum(len(view[m]) for m in MODALITIES)
    bar = tqdm(total=total, desc=desc, unit="clip", disable=not progress, leave=False)
    kept: list[Tensor] = []
    try:
        for m in MODALITIES:
            backbone = triplet.nets[m].backbone
            handles = [stage.register_forward_hook(lambda module, inputs, output: kept.append(output))
                       for stage in (backbone.layer1, backbone.layer2, backbone.layer3)]
            chunks: list[list[Tensor]] = [[] for _ in range(4)]
            try:
                for start in range(0, len(view[m]), batch_size):
                    x = view[m][start : start + batch_size].to(device).float()
                    b, s = x.shape[:2]
                    kept.clear()
                    final = backbone(x.flatten(0, 1))
                    for k, feature in enumerate(kept):
                        chunks[k].append(feature.view(b, s, *feature.shape[1:]).to("cpu", dtype))
                    chunks[3].append(final.view(b, s, -1).mean(1).to("cpu", torch.float32))
                    bar.update(b)
            finally:
                for handle in handles:
                    handle.remove()
            out[m] = [torch.cat(c) for c in chunks]
    finally:
        bar.close()
        triplet.train(was_training)
    return out


class ICHeads(nn.Module):
    """The ICs of a `CompressedTriplet`, run on `stage_features` output: the triplet's outputs without backbones.

    The heads are the triplet's own modules, so training this model trains the triplet's ICs. IC4 is the cached
    final logits, which the backbone's frozen fc produced.
    """

    def __init__(self, triplet: CompressedTriplet):
        super().__init__()
        self.ics = nn.ModuleDict({m: triplet.nets[m].ics for m in MODALITIES})

    def forward(self, iframe: Sequence[Tensor], mv: Sequence[Tensor], residual: Sequence[Tensor]
                ) -> dict[str, list[Tensor]]:
        """Per modality [stage features..., final logits] (batched) -> {modality: [IC1..IC4 logits (B, classes)]}."""
        inputs = {"iframe": iframe, "mv": mv, "residual": residual}
        outputs = {}
        for m in MODALITIES:
            heads = self.ics[m]
            if len(inputs[m]) != len(heads) + 1:
                raise ValueError(f"{m}: expected {len(heads)} stage features and the final logits, got "
                                 f"{len(inputs[m])} tensors")
            *stages, final = inputs[m]
            logits = []
            for head, feature in zip(heads, stages, strict=True):
                b, s = feature.shape[:2]
                logits.append(head(feature.flatten(0, 1).float()).view(b, s, -1).mean(1))
            outputs[m] = [*logits, final.float()]
        return outputs
