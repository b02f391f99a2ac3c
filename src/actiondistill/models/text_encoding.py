"""CLIP's text tower on the tokens that matter: each batch cut to its longest prompt.

Why: open_clip runs the text transformer over the full context (77 tokens, 32 for the embedded CLIPs) whatever the
prompt's length, and action labels in a template ("a video of a person zigzagging up.") are about a dozen tokens.
With a causal attention mask a token never attends to the ones after it, and CLIP pools the end-of-text token (the
highest id of the tokenizer, `argmax` pooling), so every position up to the batch's last end-of-text token is
computed exactly as over the full context: the padding is pure cost. Training the text tower every step is what
the chapters' training steps spend most of their time on, so this cut is the cheapest speed-up they have.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip import CLIP


def encode_tokens(clip: CLIP, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """`clip.encode_text(tokens, normalize)`, computed over the tokens up to the batch's last end-of-text token.

    Falls back to `clip.encode_text` for a tower it cannot cut exactly: no causal mask (bidirectional text
    transformers) or a pooling other than `argmax`.
    """
    if not _cuttable(clip):
        return clip.encode_text(tokens, normalize=normalize)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens).to(cast_dtype) + clip.positional_embedding[:length].to(cast_dtype)
    x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask[:length, :length]))
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    if clip.text_projection is not None:
        x = clip.text_projection(x) if isinstance(clip.text_projection, torch.nn.Linear) else x @ clip.text_projection
    return F.normalize(x, dim=-1) if normalize else x


def _cuttable(clip: CLIP) -> bool:
    return (isinstance(clip, CLIP) and getattr(clip, "attn_mask", None) is not None
            and getattr(clip, "text_pool_type", "argmax") == "argmax")
