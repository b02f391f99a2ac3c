"""actiondistill: distilling CLIP-based video action recognition models into real-time students."""

__version__ = "0.1.0"
