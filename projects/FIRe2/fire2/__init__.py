"""FIRe² (Wang et al., TIFS 2024, "Exploring Fine-Grained Representation and Recomposition for
Cloth-Changing Person Re-Identification") as fast-reid components, beside RGANet.

Importing it imports ``rganet_plugin`` (fast-reid's compatibility patches, the datasets) and
registers the ``FIRe2`` meta-architecture and the cloth-changing datasets (``fire2.data``). See README.md.
"""
import rganet_plugin  # noqa: F401  (patches fast-reid, registers the datasets)

from . import data  # noqa: F401  (registers the cloth-changing datasets)
from . import modeling  # noqa: F401  (registers FIRe2 in META_ARCH_REGISTRY)
from .config import add_fire2_config, get_fire2_cfg, load_fire2_config  # noqa: F401
from .engine import FIRe2Trainer  # noqa: F401
