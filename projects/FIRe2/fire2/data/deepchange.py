"""DeepChange (Xu et al., 2021, "DeepChange: A Long-Term Person Re-Identification Benchmark").

178,407 images of 1,121 identities from 17 cameras over 12 months; 450 train ids, 150 val ids,
521 test ids. Layout and naming as released::

    DeepChange/
    ├── train-set/P0001_C3_D2_....jpg        P<pid>_C<camera>_<clothes tag>_<...>.jpg
    ├── train-set-bbox.txt                   optional: "<image name>,<tracklet id>" per line
    ├── val-set-query/, val-set-gallery/     (+ their -bbox.txt; not used)
    ├── test-set-query/  (+ test-set-query-bbox.txt)
    └── test-set-gallery/ (+ test-set-gallery-bbox.txt)

Clothes id: ``P<pid>_<third field>`` (as the CAL / FIRe² loaders read DeepChange). Camera id: the
camera in the name; when the split's ``-bbox.txt`` list is there, the tracklet id instead, because
DeepChange's protocol counts true matches from the same camera but another tracklet (CAL, FIRe²).
"""
from __future__ import annotations

import logging
import os
import re

from .clothes import ClothesLayoutDataset
from rganet_plugin.data.datasets.common import register_dataset

__all__ = ["DeepChange", "parse_deepchange_name", "read_tracklets"]

logger = logging.getLogger(__name__)
_DC_NAME = re.compile(r"^P(\d+)_C(\d+)_([^_.]+)(?:_[^.]*)?\.jpe?g$", re.IGNORECASE)


def read_tracklets(list_file: str):
    """``{image name: tracklet id}`` from a ``*-bbox.txt`` list, or None when there is none.
    A malformed line raises ``ValueError`` naming the file and the line."""
    if not os.path.isfile(list_file):
        return None
    out = {}
    with open(list_file) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            name, sep, tracklet = line.rpartition(",")
            if not sep or not tracklet.strip().lstrip("-").isdigit():
                raise ValueError(f"{list_file}:{n}: expected '<image name>,<tracklet id>', got {line!r}")
            out[os.path.basename(name.strip())] = int(tracklet)
    return out


def parse_deepchange_name(tracklets=None):
    def parse(name: str, rel: str = ""):
        """``P0001_C3_D2_x.jpg`` -> ``(1, 3, "P0001_D2")`` (or the tracklet as camid)."""
        m = _DC_NAME.match(name)
        if m is None:
            return None
        camid = int(m.group(2))
        if tracklets is not None:
            if name not in tracklets:
                return None
            camid = tracklets[name]
        return int(m.group(1)), camid, f"P{m.group(1)}_{m.group(3)}"

    return parse


@register_dataset
class DeepChange(ClothesLayoutDataset):
    """DeepChange: ``<root>/DeepChange/{train-set,test-set-query,test-set-gallery}``."""

    dataset_name = "deepchange"
    dataset_dir_names = ("DeepChange", "DeepChangeDataset")
    splits = {"train": ("train-set",), "query": ("test-set-query",),
              "gallery": ("test-set-gallery",)}
    name_example = "P0001_C3_D2_T0001.jpg"
    name_rule = "P<pid>_C<camera>_<clothes tag>_<...>.jpg"

    def __init__(self, root="datasets", corrupt_images=None, **kwargs):
        root = os.fspath(root)
        base = next((os.path.join(root, d) for d in self.dataset_dir_names
                     if os.path.isdir(os.path.join(root, d))), None)
        parsers, absent = {}, []
        for split, folder in (("train", "train-set"), ("query", "test-set-query"),
                              ("gallery", "test-set-gallery")):
            tracklets = read_tracklets(os.path.join(base, f"{folder}-bbox.txt")) if base else None
            if base and tracklets is None and split != "train":
                absent.append(f"{folder}-bbox.txt")
            parsers[split] = parse_deepchange_name(tracklets)
        if absent:
            logger.warning("DeepChange: no %s in %s; camera ids are the cameras in the file names, so "
                           "true matches from the same camera but another tracklet are dropped (the "
                           "protocol counts them)", " or ".join(absent), base)
        self._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
