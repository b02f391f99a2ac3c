"""CLIP's text tower on the tokens that matter: each batch cut to its longest prompt.

Why: open_clip runs the text transformer over the full context (77 tokens, 32 for the embedded CLIPs) whatever the
prompt's length, and action labels in a template ("a video of a person zigzagging up.") are about a dozen tokens.
With a causal attention mask a token never attends to the ones after it, and CLIP pools the end-of-text token (the
highest id of the tokenizer, `argmax` pooling), so every position up to the batch's last end-of-text token is
computed exactly as over the full context: the padding is pure cost. Training the text tower every step is what
the chapters' training steps spend most of their time on, so this cut is the cheapest speed-up they have.

`FrozenTextPrefix` is the next one: with the token table, the positional embedding and the first text blocks frozen,
their output for a prompt never changes, so it is computed once per prompt and cached; a training step then runs
only the trainable top blocks. With the causal mask and end-of-text pooling this is exact, whatever the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip import CLIP


class FrozenTextPrefix:
    """The token and positional embeddings and the first `blocks` text blocks of `clip`, frozen, with their output
    cached per prompt (its tokens up to its end-of-text token).

    Freezing happens here (`requires_grad_(False)`); the cache is keyed by the frozen weights' version counters as
    well, so loading other weights into them afterwards cannot serve stale outputs.
    """

    def __init__(self, clip: CLIP, blocks: int):
        layers = len(clip.transformer.resblocks)
        if not _cuttable(clip) or not clip.transformer.batch_first:
            raise ValueError("frozen text blocks: expected an open_clip CLIP with a causal, argmax-pooled, batch-first "
                             "text transformer")
        if not 0 < blocks < layers:
            raise ValueError(f"frozen text blocks {blocks}: expected 1..{layers - 1} (the text tower has {layers}; "
                             "freeze the whole tower by caching class embeddings instead)")
        self.clip, self.blocks = clip, blocks
        for module in (clip.token_embedding, *clip.transformer.resblocks[:blocks]):
            module.requires_grad_(False)
        clip.positional_embedding.requires_grad_(False)
        self._cache: dict[bytes, torch.Tensor] = {}
        self._version: tuple[int, ...] = ()

    def clear(self) -> None:
        """Forget every cached output (the model moved to another device or dtype)."""
        self._cache.clear()

    def _weights_version(self) -> tuple[int, ...]:
        params = [self.clip.positional_embedding, *self.clip.token_embedding.parameters(),
                  *(p for block in self.clip.transformer.resblocks[: self.blocks] for p in block.parameters())]
        return tuple(p._version for p in params)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens cut to the batch's last end-of-text -> (B, L, D) outputs of the frozen blocks (zeros after
        each prompt's own end-of-text, which nothing downstream reads)."""
        version = self._weights_version()
        if version != self._version:
            self._cache.clear()
            self._version = version
        ends = tokens.argmax(dim=-1)
        keys = [row[: int(end) + 1].cpu().numpy().tobytes() for row, end in zip(tokens, ends, strict=True)]
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        if missing:
            with torch.no_grad():
                x = _embed(self.clip, tokens[missing])
                mask = self.clip.attn_mask[: x.shape[1], : x.shape[1]]
                for block in self.clip.transformer.resblocks[: self.blocks]:
                    x = block(x, attn_mask=mask)
            for row, i in enumerate(missing):
                self._cache[keys[i]] = x[row, : int(ends[i]) + 1].clone()
        out = tokens.new_zeros((*tokens.shape, self.clip.transformer.width), dtype=self._cache[keys[0]].dtype)
        for i, key in enumerate(keys):
            out[i, : len(self._cache[key])] = self._cache[key]
        return out


def encode_tokens(clip: CLIP, tokens: torch.Tensor, normalize: bool = False,
                  prefix: FrozenTextPrefix | None = None) -> torch.Tensor:
    """`clip.encode_text(tokens, normalize)`, computed over the tokens up to the batch's last end-of-text token.

    With `prefix`, the frozen bottom blocks come from its cache and only the blocks above run. Falls back to
    `clip.encode_text` for a tower it cannot cut exactly: no causal mask (bidirectional text transformers) or a
    pooling other than `argmax`.
    """
    if not _cuttable(clip):
        return clip.encode_text(tokens, normalize=normalize)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    mask = clip.attn_mask[:length, :length]
    if prefix is None:
        x = clip.transformer(_embed(clip, tokens), attn_mask=mask)
    else:
        x = prefix(tokens)
        for block in clip.transformer.resblocks[prefix.blocks:]:
            x = block(x, attn_mask=mask)
    x = clip.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    if clip.text_projection is not None:
        x = clip.text_projection(x) if isinstance(clip.text_projection, torch.nn.Linear) else x @ clip.text_projection
    return F.normalize(x, dim=-1) if normalize else x


def _embed(clip: CLIP, tokens: torch.Tensor) -> torch.Tensor:
    cast_dtype = clip.transformer.get_cast_dtype()
    length = tokens.shape[1]
    return clip.token_embedding(tokens).to(cast_dtype) + clip.positional_embedding[:length].to(cast_dtype)


def _cuttable(clip: CLIP) -> bool:
    return (isinstance(clip, CLIP) and getattr(clip, "attn_mask", None) is not None
            and getattr(clip, "text_pool_type", "argmax") == "argmax")
