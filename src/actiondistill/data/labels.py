"""Class folder names to the words a text encoder reads: "ApplyEyeMakeup" -> "apply eye makeup".

Rules, in order: underscores and runs of whitespace become single spaces; a word breaks where a lowercase
letter meets an uppercase one ("eyeMakeup"), where an acronym meets a capitalised word ("TVShow" -> "tv show"),
and where digits meet a capitalised word ("Mp3Player" -> "mp3 player"); digits otherwise stay with their
word ("Top10" -> "top10", "3DPrinting" -> "3d printing"); everything is lowercased (CLIP's tokenizer
lowercases anyway). Hyphens and other punctuation are kept. Lowercase label text that is already words
("bouncing to the left") passes unchanged, so the function can be applied to any class list.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[_\s]+")
_BREAKS = (
    re.compile(r"(?<=[a-z])(?=[A-Z])"),  # camelCase
    re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])"),  # acronym followed by a word
    re.compile(r"(?<=[0-9])(?=[A-Z][a-z])"),  # digits followed by a word
)


def class_name_to_text(name: str) -> str:
    """Readable lowercase words for a dataset class name (rules in the module docstring)."""
    text = _SEPARATORS.sub(" ", name).strip()
    if not text:
        raise ValueError(f"class name {name!r}: expected a non-empty name")
    for pattern in _BREAKS:
        text = pattern.sub(" ", text)
    return text.lower()
