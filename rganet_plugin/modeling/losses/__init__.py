from .region_losses import confidence_weighted_id_loss, segmentation_loss  # noqa: F401
