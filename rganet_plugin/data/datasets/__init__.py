"""Dataset loaders (real layouts) and the generated occluded dataset.

Importing this package registers, in fast-reid's ``DATASET_REGISTRY``:

* ``OccludedDuke``: ``Occluded_Duke/{bounding_box_train,query,bounding_box_test}``
* ``OccludedREID``: ``Occluded_REID/{occluded_body_images,whole_body_images}`` (test only)
* ``PartialREID``: ``Partial_REID/{partial_body_images,whole_body_images}`` (test only)
* ``PartialiLIDS``: ``Partial_iLIDS/{Probe,Gallery}`` (test only)
* ``SyntheticOccludedDuke``: generated on first use into ``<root>/synthetic/<hash>/Occluded_Duke``

Cloth-changing sets (items are :class:`~.clothes.ClothesItem`: ``(img_path, pid, camid)`` tuples
with a ``.clothes`` id):

* ``LTCC``: ``LTCC_ReID/{train,query,test}``
* ``PRCC``: ``prcc/rgb/{train,test/{A,B,C}}``
* ``CelebReID``: ``Celeb-reID/{train,query,gallery}`` (no clothes labels)
* ``DeepChange``: ``DeepChange/{train-set,test-set-query,test-set-gallery}``
* ``LaST``: ``last/{train,test/query,test/gallery}`` (clothes labels in train only)
* ``SyntheticLTCC``: generated on first use into ``<root>/synthetic_cc/<hash>/LTCC_ReID``

Layouts, accepted variants and sources: docs/datasets.md.
"""
from .common import (  # noqa: F401
    GALLERY_CAMID,
    QUERY_CAMID,
    DatasetError,
    DatasetLayoutError,
    DatasetNotFoundError,
)
from .celeb_reid import CelebReID  # noqa: F401
from .clothes import ClothesItem, clothes_of  # noqa: F401
from .deepchange import DeepChange  # noqa: F401
from .last import LaST  # noqa: F401
from .ltcc import LTCC  # noqa: F401
from .occluded_duke import OccludedDuke  # noqa: F401
from .occluded_reid import OccludedREID  # noqa: F401
from .partial_ilids import PartialiLIDS  # noqa: F401
from .partial_reid import PartialREID  # noqa: F401
from .prcc import PRCC  # noqa: F401
from .synthetic import (  # noqa: F401
    SyntheticLTCC,
    SyntheticOccludedDuke,
    ensure_synthetic_occluded_duke,
    generate_occluded_duke,
    synthetic_params,
)

__all__ = [
    "OccludedDuke",
    "OccludedREID",
    "PartialREID",
    "PartialiLIDS",
    "SyntheticOccludedDuke",
    "LTCC",
    "PRCC",
    "CelebReID",
    "DeepChange",
    "LaST",
    "SyntheticLTCC",
    "ClothesItem",
    "clothes_of",
    "generate_occluded_duke",
    "ensure_synthetic_occluded_duke",
    "synthetic_params",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetLayoutError",
    "QUERY_CAMID",
    "GALLERY_CAMID",
]
