"""Occluded-DukeMTMC (Zhuo et al. / Miao et al., ICCV 2019, "PGFA").

The dataset is DukeMTMC-reID re-split so that the query set is all occluded (training 9%,
query 100%, gallery 10% occluded images). It keeps DukeMTMC-reID's folder names and file names,
``<pid>_c<camera>_f<frame>.jpg`` with cameras 1..8, which is how every occluded ReID codebase reads
it (e.g. TransReID's ``OCC_Duke``, BPBreID's ``occluded_dukemtmc.py``, fast-reid's ``DukeMTMC``).
"""
from __future__ import annotations

import re

from .common import JUNK, LayoutDataset, register_dataset

__all__ = ["OccludedDuke", "parse_duke_name"]

_DUKE_NAME = re.compile(r"^(-?\d+)_c(\d+)", re.IGNORECASE)
NUM_CAMERAS = 8


def parse_duke_name(name: str, rel: str = ""):
    """``0005_c2_f0046985.jpg`` -> ``(5, 1)`` (camera index from 0); ``None`` when the name does not
    follow Duke's naming or the camera is outside 1..8; ``"junk"`` for pid -1."""
    m = _DUKE_NAME.match(name)
    if m is None:
        return None
    pid, cam = int(m.group(1)), int(m.group(2))
    if not 1 <= cam <= NUM_CAMERAS:
        return None
    if pid < 0:
        return JUNK
    return pid, cam - 1


@register_dataset
class OccludedDuke(LayoutDataset):
    """Occluded-DukeMTMC: ``<root>/Occluded_Duke/{bounding_box_train,query,bounding_box_test}``.

    Statistics of the real set: 702 train ids / 15,618 images; 519 query ids / 2,210 images;
    1,110 gallery ids / 17,661 images; 8 cameras.

    Args:
        root: folder that holds ``Occluded_Duke`` (fast-reid passes ``$FASTREID_DATASETS``).
        corrupt_images: ``"skip"`` (default), ``"error"`` or ``"off"``; see ``rganet_plugin.data.image_io``.
        **kwargs: passed to fast-reid's ``ImageDataset`` (``transform``, ``mode``, ``combineall``,
            ``verbose``); unknown keys are ignored.
    """

    dataset_name = "occludedduke"
    dataset_dir_names = ("Occluded_Duke", "Occluded-DukeMTMC", "Occluded_DukeMTMC")
    splits = {
        "train": ("bounding_box_train",),
        "query": ("query",),
        "gallery": ("bounding_box_test",),
    }
    name_example = "0005_c2_f0046985.jpg"
    name_rule = "<pid>_c<camera 1..8>_f<frame>.jpg"

    def __init__(self, root="datasets", corrupt_images=None, **kwargs):
        parsers = {s: parse_duke_name for s in ("train", "query", "gallery")}
        self._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
