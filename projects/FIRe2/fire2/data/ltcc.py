"""LTCC (Qian et al., ACCV 2020, "Long-Term Cloth-Changing Person Re-identification").

17,119 images of 152 identities in 478 outfits from 12 cameras; 77 train ids (9,576 images), 75 test
ids (493 query, 7,050 gallery images). Layout and naming as released (``LTCC_ReID``)::

    LTCC_ReID/{train,query,test}/001_1_c11_015861.png   <pid>_<clothes>_c<camera>_<frame>.png

The clothes id of an image is ``<pid>_<clothes>`` (``001_1``), as in the LTCC / CAL / FIRe² loaders.
"""
from __future__ import annotations

import re

from .clothes import ClothesLayoutDataset
from rganet_plugin.data.datasets.common import register_dataset

__all__ = ["LTCC", "parse_ltcc_name"]

_LTCC_NAME = re.compile(r"^(\d+)_(\d+)_c(\d+)_\d+\.\w+$", re.IGNORECASE)


def parse_ltcc_name(name: str, rel: str = ""):
    """``001_1_c11_015861.png`` -> ``(1, 10, "001_1")`` (camera from 0); None if malformed."""
    m = _LTCC_NAME.match(name)
    if m is None or int(m.group(3)) < 1:
        return None
    return int(m.group(1)), int(m.group(3)) - 1, f"{m.group(1)}_{m.group(2)}"


@register_dataset
class LTCC(ClothesLayoutDataset):
    """LTCC: ``<root>/LTCC_ReID/{train,query,test}``; items carry clothes ids (``.clothes``)."""

    dataset_name = "ltcc"
    dataset_dir_names = ("LTCC_ReID", "LTCC-reID", "LTCC")
    splits = {"train": ("train",), "query": ("query",), "gallery": ("test",)}
    name_example = "001_1_c11_015861.png"
    name_rule = "<pid>_<clothes>_c<camera>_<frame>.png"

    def __init__(self, root="datasets", corrupt_images=None, **kwargs):
        parsers = {s: parse_ltcc_name for s in ("train", "query", "gallery")}
        self._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
