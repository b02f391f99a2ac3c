"""Text prompt templates and label validation shared by every video model and the zero-shot classifier.

Label lists come from users (CLI, widgets, their own datasets), so they are checked here once, with
errors that name the offending value, instead of failing deep inside the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence

# ActionCLIP's 16 templates (REFERENCE.md): one is drawn per label in training, all are averaged at test.
ACTIONCLIP_TEMPLATES: tuple[str, ...] = (
    "a photo of action {}",
    "a picture of action {}",
    "Human action of {}",
    "{}, an action",
    "{} this is an action",
    "{}, a video of action",
    "Playing action of {}",
    "{}",
    "Playing a kind of action, {}",
    "Doing a kind of action, {}",
    "Look, the human is {}",
    "Can you recognize the action of {}?",
    "Video classification of {}",
    "A video of {}",
    "The man is {}",
    "The woman is {}",
)

# X-CLIP feeds the bare class name; its video-specific prompt generator does the rest.
XCLIP_TEMPLATES: tuple[str, ...] = ("{}",)

# ViFi-CLIP uses CLIP's classic single prompt.
VIFICLIP_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)


def validate_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """Return templates as a tuple; each must be a string holding exactly one `{}` slot for the label."""
    if isinstance(templates, str) or not isinstance(templates, Sequence) or len(templates) == 0:
        raise ValueError(f"templates: expected a non-empty list of strings with one '{{}}' each, got {templates!r}")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"template {template!r}: expected a string with exactly one '{{}}' for the label")
    return tuple(templates)


def check_label_list(labels: Sequence[str]) -> list[str]:
    """Minimal check for model calls: a non-empty list of strings (repeats allowed, e.g. one text per clip)."""
    if isinstance(labels, str) or not isinstance(labels, Sequence) or len(labels) == 0:
        raise ValueError(f"labels: expected a non-empty list of strings, got {labels!r}")
    for label in labels:
        if not isinstance(label, str):
            raise ValueError(f"label {label!r}: expected a string")
    return list(labels)


def validate_labels(labels: Sequence[str]) -> list[str]:
    """Strict check for a class list: non-empty, no blank labels, no duplicates after strip + casefold.

    Returns the stripped labels. Duplicates would make two classes share one text embedding and split
    their probability, so they are refused rather than silently merged.
    """
    labels = check_label_list(labels)
    seen: dict[str, str] = {}
    cleaned = []
    for label in labels:
        text = label.strip()
        if not text:
            raise ValueError(f"label {label!r}: empty or whitespace-only labels are not allowed")
        key = text.casefold()
        if key in seen:
            raise ValueError(f"label {label!r}: duplicate of {seen[key]!r} (labels are compared after strip/casefold)")
        seen[key] = label
        cleaned.append(text)
    return cleaned


def format_prompts(labels: Sequence[str], templates: Sequence[str]) -> list[str]:
    """All template x label prompts, template-major: row k*C + c is templates[k] applied to labels[c]."""
    return [template.format(label) for template in templates for label in labels]
