"""The compressed-video track: PKD and WISE on the I-frame, motion-vector and residual networks (chapter 6).

Importing this package registers the objectives `compressed_ce` and `pkd` with the Trainer.
"""

from actiondistill.pkd.experiment import (
    VARIANT_LABELS,
    VARIANTS,
    CompressedExperiment,
    CompressedResults,
    closed_set_videos,
    freeze_final_classifiers,
    ic_logits,
    run_experiment,
)
from actiondistill.pkd.features import ICHeads, ViewBank, decoded_views, stage_features
from actiondistill.pkd.objectives import CompressedCEObjective, PKDObjective, triplet_outputs
from actiondistill.pkd.tradeoff import DEFAULT_THRESHOLDS, fixed_points, wise_sweep, wise_tradeoff
from actiondistill.pkd.visual import compressed_strips, mv_to_rgb, residual_to_rgb

__all__ = [
    "DEFAULT_THRESHOLDS",
    "VARIANTS",
    "VARIANT_LABELS",
    "CompressedCEObjective",
    "CompressedExperiment",
    "CompressedResults",
    "ICHeads",
    "PKDObjective",
    "ViewBank",
    "closed_set_videos",
    "compressed_strips",
    "decoded_views",
    "fixed_points",
    "freeze_final_classifiers",
    "ic_logits",
    "mv_to_rgb",
    "residual_to_rgb",
    "run_experiment",
    "stage_features",
    "triplet_outputs",
    "wise_sweep",
    "wise_tradeoff",
]
