from .region_losses import (SEG_TARGETS, confidence_weighted_id_loss, patch_targets,  # noqa: F401
                            segmentation_loss, soft_segmentation_loss)
