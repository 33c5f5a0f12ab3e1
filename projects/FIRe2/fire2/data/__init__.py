"""FIRe²'s datasets: the cloth-changing loaders (real layouts) and the generated cloth-changing set.

Importing this package registers, in fast-reid's ``DATASET_REGISTRY`` (items are
:class:`~.clothes.ClothesItem`: ``(img_path, pid, camid)`` tuples with a ``.clothes`` id):

* ``LTCC``: ``LTCC_ReID/{train,query,test}``
* ``PRCC``: ``prcc/rgb/{train,test/{A,B,C}}``
* ``CelebReID``: ``Celeb-reID/{train,query,gallery}`` (no clothes labels)
* ``DeepChange``: ``DeepChange/{train-set,test-set-query,test-set-gallery}``
* ``LaST``: ``last/{train,test/query,test/gallery}`` (clothes labels in train only)
* ``SyntheticLTCC``: generated on first use into ``<root>/synthetic_cc/<hash>/LTCC_ReID``
  (the generator is :mod:`rganet_plugin.synthetic.cloth_changing`)

The loaders share the plugin's layout machinery (``rganet_plugin.data.datasets.common``).
Layouts, accepted variants and sources: docs/datasets.md.
"""
from .celeb_reid import CelebReID  # noqa: F401
from .clothes import ClothesItem, clothes_of  # noqa: F401
from .deepchange import DeepChange  # noqa: F401
from .last import LaST  # noqa: F401
from .ltcc import LTCC  # noqa: F401
from .prcc import PRCC  # noqa: F401
from .synthetic import SyntheticLTCC  # noqa: F401

__all__ = ["LTCC", "PRCC", "CelebReID", "DeepChange", "LaST", "SyntheticLTCC", "ClothesItem",
           "clothes_of"]
