"""Zero-shot attribute recognition on held-out frames: the check that an embedded CLIP learnt its world.

For each attribute (shape, colour, scene, and where the object is) every value is written into a few prompts, the prompt
embeddings are averaged per value (CLIP's prompt ensembling), and each frame is assigned the value whose text embedding
is closest to the frame's embedding: no classifier is trained, the text alone defines the classes. Accuracies are
percentages, as in `actiondistill.evaluate`, beside the chance level 100 / (number of values).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from open_clip import CLIP
from tqdm.auto import tqdm

from actiondistill.data.synth_world import SCENES
from actiondistill.models import get_tokenizer
from actiondistill.pretrain.frames import CAPTION_ATTRIBUTES, frames_to_images

#: Prompt ensembles per attribute; a scene value becomes its place phrase ("on the beach").
ZERO_SHOT_PROMPTS: dict[str, tuple[str, ...]] = {
    "shape": ("a photo of a {}", "a {}"),
    "colour": ("a photo of a {} object", "a {} object"),
    "scene": ("a photo of something {}", "an object {}"),
    "position": ("a photo of something {}", "an object {}"),
}


def prompt_texts(attribute: str, value: str) -> list[str]:
    """The prompts of one attribute value."""
    phrase = SCENES[value] if attribute == "scene" else value
    return [template.format(phrase) for template in ZERO_SHOT_PROMPTS[attribute]]


@torch.no_grad()
def class_embeddings(model: CLIP, attribute: str, values: Sequence[str]) -> torch.Tensor:
    """(C, D) unit-norm text embeddings of the values of `attribute`, each the mean over its prompts."""
    device = next(model.parameters()).device
    tokenizer = get_tokenizer(model)
    rows = [F.normalize(model.encode_text(tokenizer(prompt_texts(attribute, v)).to(device)), dim=-1).mean(0)
            for v in values]
    return F.normalize(torch.stack(rows), dim=-1)


@torch.no_grad()
def image_embeddings(model: CLIP, frames: np.ndarray, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """(N, D) unit-norm embeddings of uint8 (N, H, W, 3) frames, computed in batches."""
    device = next(model.parameters()).device
    out = []
    for start in tqdm(range(0, len(frames), batch_size), desc="zero-shot frames", disable=not progress, leave=False):
        images = frames_to_images(frames[start:start + batch_size]).to(device)
        out.append(F.normalize(model.encode_image(images), dim=-1).float().cpu())
    return torch.cat(out)


def zero_shot_accuracy(model: CLIP, frames: np.ndarray, attributes: torch.Tensor, vocab: dict[str, list[str]],
                       batch_size: int = 256, progress: bool = False) -> dict[str, dict[str, float]]:
    """{attribute: {"top1": %, "chance": %, "classes": C}} for every attribute with prompts.

    Args:
        frames: uint8 (N, H, W, 3) held-out frames.
        attributes: (N, A) value ids in the order of `CAPTION_ATTRIBUTES` (as `FrameCaptionDataset.attributes`);
            -1 where a frame has no value (a hidden object's position), left out of that attribute's accuracy.
        vocab: the values of each attribute, indexed by those ids (the manifest's "attributes").
    """
    if attributes.shape != (len(frames), len(CAPTION_ATTRIBUTES)):
        raise ValueError(f"attributes: expected shape ({len(frames)}, {len(CAPTION_ATTRIBUTES)}), "
                         f"got {tuple(attributes.shape)}")
    was_training = model.training
    model.eval()
    try:
        images = image_embeddings(model, frames, batch_size, progress)
        result = {}
        for attribute in ZERO_SHOT_PROMPTS:
            values = vocab[attribute]
            truth = attributes[:, CAPTION_ATTRIBUTES.index(attribute)]
            if not bool((truth >= 0).any()):
                continue
            predicted = (images @ class_embeddings(model, attribute, values).cpu().T).argmax(dim=1)
            hit = (predicted == truth)[truth >= 0]
            result[attribute] = {"top1": round(100.0 * float(hit.float().mean()), 2),
                                 "chance": round(100.0 / len(values), 2), "classes": len(values)}
        return result
    finally:
        model.train(was_training)
