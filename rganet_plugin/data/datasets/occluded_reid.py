"""Occluded-REID (Zhuo et al., "Occluded Person Re-identification", ICME 2018). Test only.

200 identities, 5 occluded and 5 whole-body images each, taken with mobile cameras; no camera
labels. As released (and as BPBreID, PVPM, light-reid and the TransReID-based occluded codebases
read it) the images sit in one folder per identity::

    Occluded_REID/occluded_body_images/001/001_01.tif   (query)
    Occluded_REID/whole_body_images/001/001_01.tif      (gallery)

fast-reid's own ``projects/PartialReID`` reads a re-organised copy ``OccludedREID/{query,gallery}``
with the same file names in flat folders; that variant is accepted too. Any of ``.tif``, ``.jpg``,
``.png`` is read (some mirrors converted the TIFFs to JPEG). The pid is the number before the
underscore. Query images are camera 0 and gallery images camera 1 (see ``common.QUERY_CAMID``).
"""
from __future__ import annotations

import re

from .common import GALLERY_CAMID, QUERY_CAMID, LayoutDataset, register_dataset

__all__ = ["OccludedREID", "parse_pid_index_name"]

_PID_INDEX = re.compile(r"^(\d+)_(\d+)\.[a-z]+$", re.IGNORECASE)


def _fixed_camera(camid):
    def parse(name: str, rel: str = ""):
        return parse_pid_index_name(name, camid)
    return parse


def parse_pid_index_name(name: str, camid: int):
    """``001_01.tif`` -> ``(1, camid)``; ``None`` when the name is not ``<pid>_<index>.<ext>``."""
    m = _PID_INDEX.match(name)
    if m is None:
        return None
    return int(m.group(1)), camid


@register_dataset
class OccludedREID(LayoutDataset):
    """Occluded-REID test set (``train`` is empty: train on Market-1501, see docs/datasets.md).

    Args:
        root: folder that holds ``Occluded_REID`` (fast-reid passes ``$FASTREID_DATASETS``).
        corrupt_images: ``"skip"`` (default), ``"error"`` or ``"off"``.
        **kwargs: passed to fast-reid's ``ImageDataset``; unknown keys are ignored.
    """

    dataset_name = "occludedreid"
    dataset_dir_names = ("Occluded_REID", "OccludedREID", "Occluded-REID", "Occluded_ReID")
    splits = {
        "query": ("occluded_body_images", "query"),
        "gallery": ("whole_body_images", "gallery"),
    }
    name_example = "001/001_01.tif"
    name_rule = "<pid>_<index>.tif|jpg|png, in <pid>/ sub-folders or flat"
    recursive = True

    def __init__(self, root="datasets", corrupt_images=None, **kwargs):
        parsers = {"query": _fixed_camera(QUERY_CAMID), "gallery": _fixed_camera(GALLERY_CAMID)}
        self._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
