"""Partial-iLIDS (He et al., "Deep Spatial Feature Reconstruction for Partial Person
Re-identification", CVPR 2018, built from QMUL iLIDS). Test only.

119 identities, one partial probe and one whole-body gallery image each, named by the pid alone
(``001.jpg``). The release (as distributed with DSR and linked by light-reid) has ``Probe/`` and
``Gallery/`` folders (plus ``Probe.txt`` / ``Gallery.txt`` lists that we do not need); fast-reid's
``projects/PartialReID`` reads ``PartialiLIDS/{query,gallery}`` and BPBreID reads
``Partial_iLIDS/{partial_body_images,whole_body_images}``. All of these are accepted, and a name
``<pid>_<index>.jpg`` is read as well as ``<pid>.jpg``. Query images are camera 0, gallery
images camera 1.
"""
from __future__ import annotations

import re

from .common import GALLERY_CAMID, QUERY_CAMID, LayoutDataset, register_dataset

__all__ = ["PartialiLIDS"]

_PID_ONLY = re.compile(r"^(\d+)(?:_\d+)?\.[a-z]+$", re.IGNORECASE)


def _pid_only(camid):
    def parse(name: str, rel: str = ""):
        m = _PID_ONLY.match(name)
        return None if m is None else (int(m.group(1)), camid)
    return parse


@register_dataset
class PartialiLIDS(LayoutDataset):
    """Partial-iLIDS test set (``train`` is empty: train on Market-1501).

    Args:
        root: folder that holds ``Partial_iLIDS`` (fast-reid passes ``$FASTREID_DATASETS``).
        corrupt_images: ``"skip"`` (default), ``"error"`` or ``"off"``.
        **kwargs: passed to fast-reid's ``ImageDataset``; unknown keys are ignored.
    """

    dataset_name = "partialilids"
    dataset_dir_names = ("Partial_iLIDS", "PartialiLIDS", "Partial-iLIDS", "partial_ilids")
    splits = {
        "query": ("Probe", "query", "partial_body_images"),
        "gallery": ("Gallery", "gallery", "whole_body_images"),
    }
    name_example = "001.jpg"
    name_rule = "<pid>.jpg (or <pid>_<index>.jpg)"

    def __init__(self, root="datasets", corrupt_images=None, **kwargs):
        parsers = {"query": _pid_only(QUERY_CAMID), "gallery": _pid_only(GALLERY_CAMID)}
        self._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
