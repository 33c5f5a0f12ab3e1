"""The registration of the generated occluded dataset (``SyntheticOccludedDuke`` in fast-reid's
``DATASET_REGISTRY``): the one piece of the generated world the core imports.

The set is written in the real Occluded-Duke layout and read with the
:class:`~rganet_plugin.data.datasets.occluded_duke.OccludedDuke` loader. What is drawn and how it
is cached lives in :mod:`rganet_plugin.synthetic` (one module per concern), imported only when a
dataset is built, so ``import rganet_plugin`` and a training on real data do not load it.
The cloth-changing set (``SyntheticLTCC``, read with FIRe²'s LTCC loader) is registered by FIRe²
(``projects/FIRe2/fire2/data``).
"""
from __future__ import annotations

import os

from .common import register_dataset
from .occluded_duke import OccludedDuke, parse_duke_name

__all__ = ["SyntheticOccludedDuke"]


@register_dataset
class SyntheticOccludedDuke(OccludedDuke):
    """The generated occluded dataset, read with the Occluded-Duke loader.

    Args:
        root: fast-reid's datasets root (``$FASTREID_DATASETS``); the data is cached in
            ``<root>/synthetic/<hash of params>/Occluded_Duke`` and generated on first use.
        synthetic: ``DATASETS.SYNTHETIC`` (CfgNode) or a dict with ``NUM_TRAIN_IDS``,
            ``NUM_TEST_IDS``, ``IMAGES_PER_ID``, ``SEED`` (any case; optional ``HEIGHT``, ``WIDTH``,
            ``BAGS_PERCENT``).
        corrupt_images: as for the real loaders.
        **kwargs: passed to fast-reid's ``ImageDataset``; unknown keys are ignored.

    Attributes: ``synthetic_params``, ``manifest_path``, ``masks_dir`` (pseudo part masks of the
    training images: ``masks/bounding_box_train/<stem>.png``).
    """

    dataset_name = "syntheticoccludedduke"
    dataset_dir_names = ("Occluded_Duke",)  # rganet_plugin.synthetic.occluded_duke.DATASET_DIR

    def __init__(self, root="datasets", synthetic=None, corrupt_images=None, **kwargs):
        from ...synthetic.cache import MANIFEST_NAME
        from ...synthetic.occluded_duke import ensure_synthetic_occluded_duke
        from ...synthetic.params import synthetic_params

        self.synthetic_params = synthetic_params(synthetic)
        dataset_dir = ensure_synthetic_occluded_duke(root, self.synthetic_params)
        self.manifest_path = os.path.join(dataset_dir, MANIFEST_NAME)
        parsers = {s: parse_duke_name for s in ("train", "query", "gallery")}
        self._build(os.path.dirname(dataset_dir), parsers, corrupt_images=corrupt_images, **kwargs)
        self.datasets_root = os.fspath(root)
