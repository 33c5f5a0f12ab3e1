"""LaST (Shu et al., TCSVT 2021, "Large-Scale Spatio-Temporal Person Re-identification").

228,156 images of 10,862 identities from movies; 5,000 train ids; the val and test sets give no
clothes labels. Layout and naming as released::

    last/
    ├── train/<pid>/<pid>_<...>_<clothes>.jpg   e.g. train/000000/000000_000_000000_0.jpg
    ├── val/{query,gallery}/                      (not used)
    └── test/query/<name>.jpg, test/gallery/<pid>/<name>.jpg

Train clothes id: ``<pid>_<last field>`` (as the CAL / FIRe² loaders read LaST); test items carry
``clothes`` None, so only the standard protocol applies. There are no cameras: query images are
camera 0, gallery images camera 1 (no true match is dropped), train images camera 0.
"""
from __future__ import annotations

import re

from .clothes import ClothesLayoutDataset
from rganet_plugin.data.datasets.common import GALLERY_CAMID, QUERY_CAMID, register_dataset

__all__ = ["LaST", "parse_last_name"]

_LAST_NAME = re.compile(r"^(\d+)_(?:[^.]*_)?(\d+)\.jpe?g$", re.IGNORECASE)


def parse_last_name(camid: int, with_clothes: bool):
    def parse(name: str, rel: str = ""):
        """``000000_000_000000_0.jpg`` -> ``(0, camid, "000000_0" or None)``."""
        m = _LAST_NAME.match(name)
        if m is None:
            return None
        clothes = f"{m.group(1)}_{m.group(2)}" if with_clothes else None
        return int(m.group(1)), camid, clothes

    return parse


@register_dataset
class LaST(ClothesLayoutDataset):
    """LaST: ``<root>/last/{train,test/query,test/gallery}``."""

    dataset_name = "last"
    dataset_dir_names = ("last", "LaST")
    splits = {"train": ("train",), "query": ("test/query",), "gallery": ("test/gallery",)}
    name_example = "000000_000_000000_0.jpg"
    name_rule = "<pid>_<...>_<clothes>.jpg (train/<pid>/, test/gallery/<pid>/, test/query/)"
    recursive = True

    def __init__(self, root="datasets", corrupt_images=None, **kwargs):
        parsers = {"train": parse_last_name(0, True), "query": parse_last_name(QUERY_CAMID, False),
                   "gallery": parse_last_name(GALLERY_CAMID, False)}
        self._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
