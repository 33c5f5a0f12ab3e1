"""The generated datasets as fast-reid datasets (registered in ``DATASET_REGISTRY``).

* ``SyntheticOccludedDuke``: the occluded set, in the real Occluded-Duke layout, read with the
  :class:`~rganet_plugin.data.datasets.occluded_duke.OccludedDuke` loader.
* ``SyntheticLTCC``: the cloth-changing set (2-3 outfits per identity, clothes ids), in LTCC's
  layout, read with the :class:`~rganet_plugin.data.datasets.ltcc.LTCC` loader.

What is drawn and how it is cached: :mod:`rganet_plugin.data.synthetic` (one module per concern).
The names other modules used from here before the split (``generate_occluded_duke``,
``MANIFEST_NAME``, ``DRAWING_VERSION``, the drawing functions, ...) are re-exported unchanged.
"""
from __future__ import annotations

import os

from ..synthetic import cache as _cache
from ..synthetic.cloth_changing import CC_DATASET_DIR, ensure_synthetic_ltcc
from ..synthetic.occluded_duke import (  # noqa: F401  (re-exported)
    DATASET_DIR,
    JPEG_QUALITY,
    NUM_CAMERAS,
    OCCLUSION_RATIOS,
    SPLIT_DIRS,
    _plan,
    _write_dataset,
    ensure_synthetic_occluded_duke,
    generate_occluded_duke,
)
from ..synthetic.occluders import OCCLUDED_AREA, _make_occluder, _occluder  # noqa: F401
from ..synthetic.params import (  # noqa: F401
    _LATER_KEYS,
    DRAWING_VERSION,
    GENERATOR_VERSION,
    SYNTHETIC_DEFAULTS,
    params_hash as _params_hash,
    synthetic_cache_dir,
    synthetic_params,
)
from ..synthetic.people import (  # noqa: F401
    PART_LABELS,
    _colourise,
    _draw_person,
    _hsv,
    _identity,
    _pattern,
)
from ..synthetic.render import _render  # noqa: F401
from ..synthetic.scenes import _camera  # noqa: F401
from .common import register_dataset
from .ltcc import LTCC, parse_ltcc_name
from .occluded_duke import OccludedDuke, parse_duke_name

MANIFEST_NAME = _cache.MANIFEST_NAME
_read_manifest = _cache.read_manifest

__all__ = [
    "GENERATOR_VERSION",
    "DRAWING_VERSION",
    "SYNTHETIC_DEFAULTS",
    "PART_LABELS",
    "OCCLUSION_RATIOS",
    "MANIFEST_NAME",
    "generate_occluded_duke",
    "ensure_synthetic_occluded_duke",
    "synthetic_params",
    "synthetic_cache_dir",
    "SyntheticOccludedDuke",
    "SyntheticLTCC",
]


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
    dataset_dir_names = (DATASET_DIR,)

    def __init__(self, root="datasets", synthetic=None, corrupt_images=None, **kwargs):
        self.synthetic_params = synthetic_params(synthetic)
        dataset_dir = ensure_synthetic_occluded_duke(root, self.synthetic_params)
        self.manifest_path = os.path.join(dataset_dir, MANIFEST_NAME)
        parsers = {s: parse_duke_name for s in ("train", "query", "gallery")}
        self._build(os.path.dirname(dataset_dir), parsers, corrupt_images=corrupt_images, **kwargs)
        self.datasets_root = os.fspath(root)


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
