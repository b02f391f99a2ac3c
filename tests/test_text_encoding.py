"""The text tower cut to the batch's longest prompt computes exactly what open_clip's full-context pass does."""

from __future__ import annotations

import pytest
import torch

from actiondistill.models import create_backbone, get_tokenizer
from actiondistill.models.text_encoding import encode_tokens

PROMPTS = ["a video of a person zigzagging towards the tree.", "spinning", "a photo of a red square at the top left"]


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return create_backbone("embedded-tiny").eval()


def test_cut_context_equals_the_full_pass(clip):
    tokens = get_tokenizer(clip)(PROMPTS)
    assert int(tokens.argmax(-1).max()) + 1 < tokens.shape[1]  # there is padding to cut
    with torch.no_grad():
        for normalize in (False, True):
            torch.testing.assert_close(encode_tokens(clip, tokens, normalize=normalize),
                                       clip.encode_text(tokens, normalize=normalize), atol=1e-5, rtol=1e-5)


def test_cut_context_trains_the_same_weights(clip):
    """Gradients flow to the same parameters with the same values: the cut is safe for training the text tower."""
    tokens = get_tokenizer(clip)(PROMPTS)
    grads = []
    for encode in (encode_tokens, lambda model, t: model.encode_text(t)):
        clip.zero_grad()
        encode(clip, tokens).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in clip.transformer.parameters()]))
    assert float((grads[0] - grads[1]).norm() / grads[1].norm()) < 1e-5  # fp32 summation order only
    clip.zero_grad()


def test_towers_it_cannot_cut_fall_back_to_open_clip(clip, monkeypatch):
    tokens = get_tokenizer(clip)(PROMPTS)
    monkeypatch.setattr(clip, "text_pool_type", "last")  # the last position depends on the context length
    calls = []
    monkeypatch.setattr(clip, "encode_text", lambda t, normalize=False: calls.append(t.shape) or t.float())
    encode_tokens(clip, tokens)
    assert calls == [tokens.shape]
