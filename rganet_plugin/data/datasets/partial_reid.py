"""Partial-REID (Zheng et al., "Partial Person Re-identification", ICCV 2015). Test only.

60 identities, 5 partial (manually cropped) and 5 whole-body images each. Codebases read it as
``Partial_REID/{partial_body_images,whole_body_images}/<pid>_<index>.jpg`` (BPBreID, fast-reid's
``projects/PartialReID``; the reid-strong-baseline forks use the folder name ``PartialREID``; PVPM
calls the query folder ``occluded_body_images``). All of these are accepted. Query images are
camera 0, gallery images camera 1.
"""
from __future__ import annotations

from .common import GALLERY_CAMID, QUERY_CAMID, LayoutDataset, register_dataset
from .occluded_reid import _fixed_camera

__all__ = ["PartialREID"]


@register_dataset
class PartialREID(LayoutDataset):
    """Partial-REID test set (``train`` is empty: train on Market-1501).

    Args:
        root: folder that holds ``Partial_REID`` (fast-reid passes ``$FASTREID_DATASETS``).
        corrupt_images: ``"skip"`` (default), ``"error"`` or ``"off"``.
        **kwargs: passed to fast-reid's ``ImageDataset``; unknown keys are ignored.
    """

    dataset_name = "partialreid"
    dataset_dir_names = ("Partial_REID", "PartialREID", "Partial-REID", "Partial-REID_Dataset")
    splits = {
        "query": ("partial_body_images", "occluded_body_images", "query"),
        "gallery": ("whole_body_images", "gallery"),
    }
    name_example = "001_01.jpg"
    name_rule = "<pid>_<index>.jpg"

    def __init__(self, root="datasets", corrupt_images=None, **kwargs):
        parsers = {"query": _fixed_camera(QUERY_CAMID), "gallery": _fixed_camera(GALLERY_CAMID)}
        self._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
