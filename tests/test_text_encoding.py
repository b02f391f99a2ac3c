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


def test_frozen_prefix_gives_the_full_pass_and_trains_only_the_top_blocks():
    from actiondistill.models.text_encoding import FrozenTextPrefix

    torch.manual_seed(0)
    clip = create_backbone("embedded-tiny").eval()
    tokens = get_tokenizer(clip)(PROMPTS)
    with torch.no_grad():
        full = clip.encode_text(tokens)
    prefix = FrozenTextPrefix(clip, blocks=2)
    assert not clip.token_embedding.weight.requires_grad and not clip.positional_embedding.requires_grad
    assert [block.attn.in_proj_weight.requires_grad for block in clip.transformer.resblocks] == [False, False, True]
    for order in (tokens, tokens[[2, 0, 1]]):  # a second call, in another batch order, is served from the cache
        out = encode_tokens(clip, order, prefix=prefix)
        torch.testing.assert_close(out, clip.encode_text(order).detach(), atol=1e-5, rtol=1e-5)
    assert len(prefix._cache) == len(PROMPTS)
    torch.testing.assert_close(encode_tokens(clip, tokens, prefix=prefix), full, atol=1e-5, rtol=1e-5)
    out.square().sum().backward()
    top = clip.transformer.resblocks[2].attn.in_proj_weight
    assert top.grad is not None and top.grad.abs().sum() > 0


def test_frozen_prefix_recomputes_after_its_weights_change():
    from actiondistill.models.text_encoding import FrozenTextPrefix

    torch.manual_seed(0)
    clip = create_backbone("embedded-tiny").eval()
    tokens = get_tokenizer(clip)(PROMPTS[:1])
    prefix = FrozenTextPrefix(clip, blocks=1)
    encode_tokens(clip, tokens, prefix=prefix)
    with torch.no_grad():
        clip.transformer.resblocks[0].mlp.c_fc.weight.mul_(2.0)  # e.g. load_state_dict into the frozen block
        torch.testing.assert_close(encode_tokens(clip, tokens, prefix=prefix), clip.encode_text(tokens))
    with pytest.raises(ValueError, match="frozen text blocks 3: expected 1..2"):
        FrozenTextPrefix(clip, blocks=3)


def test_trainable_text_blocks_is_a_model_option_every_candidate_of_a_recipe_gets(tmp_path):
    from actiondistill import teacher_choice as tc
    from actiondistill.config import from_dict
    from actiondistill.models import create_model

    model = create_model("actionclip-meanp", "embedded-tiny", trainable_text_blocks=1)
    assert model.frozen_text_blocks == 2
    assert [p.requires_grad for p in model.backbone.transformer.resblocks[2].parameters()][0]
    assert create_model("actionclip-meanp", "embedded-tiny", trainable_text_blocks=3).frozen_text_blocks == 0
    with pytest.raises(ValueError, match="trainable_text_blocks=0: expected 1..3"):
        create_model("actionclip-meanp", "embedded-tiny", trainable_text_blocks=0)
    base = from_dict({"model": {"backbone": "embedded-tiny", "kwargs": {"trainable_text_blocks": 1}}})
    cfg = tc.candidate_config(base, "actionclip-transf", 0, "t", 2, tmp_path)
    assert cfg.model.kwargs == {"trainable_text_blocks": 1, "fusion_layers": 2}

