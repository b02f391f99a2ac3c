"""Spatial distillation (chapter 4): CLIP-based spatial targets and the multi-task student's training step.

- `vocab`: vocabularies of spatial concepts (from a SynthActions manifest or from objects.txt / scenes.txt files)
  with their prompt ensembles and single- or multi-label setting;
- `scoring` / `targets`: a frozen CLIP scores K frames per clip against them; soft targets per clip, cached;
  `ground_truth_targets` gives the one-hot alternative of the synthetic world;
- `quality`: how good the targets (and a trained student's heads) are against the synthetic ground truth;
- `dataset`: items gain their clip's targets; `objective`: the `spatial_multitask` loss. The student itself is the
  model `spatial-multitask` (actiondistill.models.spatial).
"""

from actiondistill.spatial.clips import ClipList, dataset_clip_paths
from actiondistill.spatial.dataset import SpatialTargetDataset
from actiondistill.spatial.objective import SpatialMultiTaskObjective
from actiondistill.spatial.quality import head_quality, quality_metrics, target_quality
from actiondistill.spatial.scoring import (
    AGGREGATIONS,
    aggregate_frames,
    ensemble_text_embeddings,
    frame_probabilities,
    negative_text_embedding,
)
from actiondistill.spatial.targets import (
    DEFAULT_TEMPERATURE,
    TARGETS_VERSION,
    SpatialTargetCache,
    SpatialTargets,
    ground_truth_targets,
    load_targets,
    save_targets,
    spatial_targets,
)
from actiondistill.spatial.vocab import (
    MANIFEST_OBJECTIVES,
    Vocabulary,
    as_vocabularies,
    manifest_vocabularies,
    read_vocabulary,
)

__all__ = [
    "AGGREGATIONS",
    "DEFAULT_TEMPERATURE",
    "MANIFEST_OBJECTIVES",
    "TARGETS_VERSION",
    "ClipList",
    "SpatialMultiTaskObjective",
    "SpatialTargetCache",
    "SpatialTargetDataset",
    "SpatialTargets",
    "Vocabulary",
    "aggregate_frames",
    "as_vocabularies",
    "dataset_clip_paths",
    "ensemble_text_embeddings",
    "frame_probabilities",
    "ground_truth_targets",
    "head_quality",
    "load_targets",
    "manifest_vocabularies",
    "negative_text_embedding",
    "quality_metrics",
    "read_vocabulary",
    "save_targets",
    "spatial_targets",
    "target_quality",
]
