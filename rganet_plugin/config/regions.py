"""The region classes of a config: the one place that reads ``MODEL.RGANET.CLASS_NAMES``.

Their number is ``N`` of the paper (the region head, the prompts, the pseudo-mask labels and the
packed output layout all have ``N`` rows); a config without a region branch
(``MODEL.RGANET.REGION_MODE none``) has none.
"""
from __future__ import annotations

from typing import List

__all__ = ["num_regions", "region_classes"]


def region_classes(cfg) -> List[str]:
    """The region class names, in order (label ``j`` is the ``j``-th); ``[]`` without regions."""
    r = cfg.MODEL.RGANET
    return [] if r.REGION_MODE == "none" else [str(c) for c in r.CLASS_NAMES]


def num_regions(cfg) -> int:
    """``N``: how many regions a model built from ``cfg`` has (0 without a region branch)."""
    return len(region_classes(cfg))
