"""``SyntheticLTCC``: the generated cloth-changing set as a fast-reid dataset, read with the
:class:`~fire2.data.ltcc.LTCC` loader (2-3 outfits per identity, clothes ids). The generator is
the plugin's generated world (:mod:`rganet_plugin.synthetic.cloth_changing`)."""
from __future__ import annotations

import os

from rganet_plugin.data.datasets.common import register_dataset
from rganet_plugin.synthetic.cache import MANIFEST_NAME
from rganet_plugin.synthetic.cloth_changing import CC_DATASET_DIR, ensure_synthetic_ltcc
from rganet_plugin.synthetic.params import synthetic_params

from .ltcc import LTCC, parse_ltcc_name

__all__ = ["SyntheticLTCC"]


@register_dataset
class SyntheticLTCC(LTCC):
    """The generated cloth-changing dataset, read with the LTCC loader (items carry ``.clothes``).

    Args:
        root: fast-reid's datasets root; the data is cached in
            ``<root>/synthetic_cc/<hash of params>/LTCC_ReID`` and generated on first use.
        synthetic: ``DATASETS.SYNTHETIC``: ``NUM_TRAIN_IDS``, ``NUM_TEST_IDS``, ``IMAGES_PER_ID``
            (all outfits together; >= 2 x outfits), ``SEED``, ``HEIGHT``, ``WIDTH``,
            ``OUTFITS_PER_ID`` (0: 2 or 3 per identity), ``BAGS_PERCENT``.
        corrupt_images, **kwargs: as for the real loaders.
    """

    dataset_name = "syntheticltcc"
    dataset_dir_names = (CC_DATASET_DIR,)

    def __init__(self, root="datasets", synthetic=None, corrupt_images=None, **kwargs):
        self.synthetic_params = synthetic_params(synthetic)
        dataset_dir = ensure_synthetic_ltcc(root, self.synthetic_params)
        self.manifest_path = os.path.join(dataset_dir, MANIFEST_NAME)
        parsers = {s: parse_ltcc_name for s in ("train", "query", "gallery")}
        self._build(os.path.dirname(dataset_dir), parsers, corrupt_images=corrupt_images, **kwargs)
        self.datasets_root = os.fspath(root)
