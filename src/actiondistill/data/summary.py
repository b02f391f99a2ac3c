"""Tabular views of datasets, so chapters can count classes, splits and attributes with pandas."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from actiondistill.data.datasets import VideoDataset


def clips_table(datasets: Mapping[str, VideoDataset]) -> pd.DataFrame:
    """One row per clip of every split: path, label, label text, split, and each spatial attribute as a column."""
    rows = []
    for split, dataset in datasets.items():
        for sample in dataset.samples:
            row = {"path": str(sample.path), "label": sample.label, "label_text": sample.label_text, "split": split}
            row.update(sample.attributes or {})
            rows.append(row)
    if not rows:
        raise ValueError(f"no clips in splits {list(datasets)}: nothing to tabulate")
    return pd.DataFrame(rows)
