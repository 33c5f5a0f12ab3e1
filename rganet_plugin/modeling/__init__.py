"""Modeling: CLIP backbone, region heads, meta-architecture, losses."""
from . import backbones, heads, losses, meta_arch  # noqa: F401  (register into fast-reid)
from .outputs import FeatureLayout, Features  # noqa: F401
