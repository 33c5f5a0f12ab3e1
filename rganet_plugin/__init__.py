"""RGANet as a fast-reid plugin.

``import rganet_plugin`` patches fast-reid for modern Python/PyTorch (see ``compat``) and
registers every component into fast-reid's registries:

* ``BACKBONE_REGISTRY``: ``build_clip_vit_backbone``
* ``REID_HEADS_REGISTRY``: ``RGANetRegionHead``
* ``META_ARCH_REGISTRY``: ``RGANet``
* ``DATASET_REGISTRY``: ``OccludedDuke``, ``OccludedREID``, ``PartialREID``, ``PartialiLIDS``,
  ``SyntheticOccludedDuke``
"""
from . import compat

compat.apply()

from . import config  # noqa: E402
from . import data  # noqa: E402,F401  (registers datasets)
from . import modeling  # noqa: E402,F401  (registers backbone, heads, meta-arch)
from .config import add_rganet_config, get_rganet_cfg, load_config  # noqa: E402

__version__ = "0.1.0"
__all__ = ["add_rganet_config", "get_rganet_cfg", "load_config", "__version__"]
