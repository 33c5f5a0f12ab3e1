"""Celeb-reID (Huang et al., IJCNN 2019 / TCSVT 2020, "Celebrities-ReID").

34,186 street-snap images of 1,052 celebrities: 632 train ids (20,208 images), 420 test ids
(2,972 query, 11,006 gallery images); most images of a person show other clothes, and the set
gives no clothes labels and no cameras. Layout and naming as released::

    Celeb-reID/{train,query,gallery}/1_1_0.jpg   <pid>_<n-th image>_<unused>.jpg

Items carry ``clothes`` None (only the standard protocol applies). Camera ids: query 0, gallery 1
(no true match is dropped), train 0.
"""
from __future__ import annotations

import re

from .clothes import ClothesLayoutDataset
from rganet_plugin.data.datasets.common import GALLERY_CAMID, JUNK, QUERY_CAMID, register_dataset

__all__ = ["CelebReID", "parse_celeb_name"]

_CELEB_NAME = re.compile(r"^(-?\d+)_(\d+)(?:_\d+)?\.jpe?g$", re.IGNORECASE)


def parse_celeb_name(camid: int):
    def parse(name: str, rel: str = ""):
        """``1_1_0.jpg`` -> ``(1, camid, None)``; None if malformed; junk for pid -1."""
        m = _CELEB_NAME.match(name)
        if m is None:
            return None
        pid = int(m.group(1))
        return JUNK if pid < 0 else (pid, camid, None)

    return parse


@register_dataset
class CelebReID(ClothesLayoutDataset):
    """Celeb-reID: ``<root>/Celeb-reID/{train,query,gallery}``."""

    dataset_name = "celebreid"
    dataset_dir_names = ("Celeb-reID", "Celeb-ReID", "celeb-reid")
    splits = {"train": ("train",), "query": ("query",), "gallery": ("gallery",)}
    name_example = "1_1_0.jpg"
    name_rule = "<pid>_<n>_<unused>.jpg"

    def __init__(self, root="datasets", corrupt_images=None, **kwargs):
        parsers = {"train": parse_celeb_name(0), "query": parse_celeb_name(QUERY_CAMID),
                   "gallery": parse_celeb_name(GALLERY_CAMID)}
        self._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
