"""DeiT distillation for video transformers (chapter 5): the two-headed student's training objective.

The model is `actionclip-twohead` (`actiondistill.models.two_headed`); importing this package (or naming the
objective `deit_twohead` in a config) registers its training step with the Trainer.
"""

from actiondistill.deit.objectives import DISTILLATION_MODES, DeiTTwoHeadObjective, same_image_encoder

__all__ = ["DISTILLATION_MODES", "DeiTTwoHeadObjective", "same_image_encoder"]
