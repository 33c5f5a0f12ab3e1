"""Dataset loaders (real layouts) and the registration of the generated occluded dataset.

Importing this package registers, in fast-reid's ``DATASET_REGISTRY``:

* ``OccludedDuke``: ``Occluded_Duke/{bounding_box_train,query,bounding_box_test}``
* ``OccludedREID``: ``Occluded_REID/{occluded_body_images,whole_body_images}`` (test only)
* ``PartialREID``: ``Partial_REID/{partial_body_images,whole_body_images}`` (test only)
* ``PartialiLIDS``: ``Partial_iLIDS/{Probe,Gallery}`` (test only)
* ``SyntheticOccludedDuke``: generated on first use into ``<root>/synthetic/<hash>/Occluded_Duke``
  (the generator, :mod:`rganet_plugin.synthetic`, is imported only then)

The cloth-changing sets (``LTCC``, ``PRCC``, ``CelebReID``, ``DeepChange``, ``LaST``,
``SyntheticLTCC``) are FIRe²'s: ``projects/FIRe2/fire2/data``, registered by ``import fire2``.

Layouts, accepted variants and sources: docs/datasets.md.
"""
from .common import (  # noqa: F401
    GALLERY_CAMID,
    QUERY_CAMID,
    DatasetError,
    DatasetLayoutError,
    DatasetNotFoundError,
)
from .occluded_duke import OccludedDuke  # noqa: F401
from .occluded_reid import OccludedREID  # noqa: F401
from .partial_ilids import PartialiLIDS  # noqa: F401
from .partial_reid import PartialREID  # noqa: F401
from .synthetic import SyntheticOccludedDuke  # noqa: F401

__all__ = [
    "OccludedDuke",
    "OccludedREID",
    "PartialREID",
    "PartialiLIDS",
    "SyntheticOccludedDuke",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetLayoutError",
    "QUERY_CAMID",
    "GALLERY_CAMID",
]
