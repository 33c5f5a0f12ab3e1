"""RGANet as a fast-reid plugin.

``import rganet_plugin`` patches fast-reid for modern Python/PyTorch (see ``compat``) and
registers every component into fast-reid's registries:

* ``BACKBONE_REGISTRY``: ``build_clip_vit_backbone``
* ``META_ARCH_REGISTRY``: ``RGANet`` (stage 2) and ``RGANetPromptLearner`` (stage 1)
* ``DATASET_REGISTRY``: ``OccludedDuke``, ``OccludedREID``, ``PartialREID``, ``PartialiLIDS``,
  ``SyntheticOccludedDuke``, the cloth-changing sets (``LTCC``, ``PRCC``, ``CelebReID``,
  ``DeepChange``, ``LaST``, ``SyntheticLTCC``)

and the RGANet region head into the plugin's own ``REGION_HEAD_REGISTRY``
(``rganet_plugin.modeling.heads.build``, with the backbone contract).
"""
from . import compat

compat.apply()

from . import config  # noqa: E402
from . import data  # noqa: E402,F401  (registers datasets)
from . import modeling  # noqa: E402,F401  (registers backbone, heads, meta-arch)
from .config import add_rganet_config, get_rganet_cfg, load_config  # noqa: E402

__version__ = "0.1.0"
__all__ = ["add_rganet_config", "get_rganet_cfg", "load_config", "__version__"]
