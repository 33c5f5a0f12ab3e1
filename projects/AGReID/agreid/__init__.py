"""AG-ReID (Attribute-Guided ReID; the seed's abstract, no public code) as fast-reid components,
beside RGANet and FIRe²: stage 1 labels attributes zero-shot with the person CLIP
(:mod:`agreid.labels`), stage 2 trains a global and an attribute branch with attribute
classification and contrastive guidance (:mod:`agreid.modeling`).

Importing it imports ``rganet_plugin`` (fast-reid's compatibility patches, the datasets) and
registers the ``AGReID`` meta-architecture. See README.md and docs/agreid.md.
"""
import rganet_plugin  # noqa: F401  (patches fast-reid, registers the datasets)

from . import modeling  # noqa: F401  (registers AGReID in META_ARCH_REGISTRY)
from .config import add_agreid_config, get_agreid_cfg, load_agreid_config  # noqa: F401
from .engine import AGReIDTrainer  # noqa: F401
