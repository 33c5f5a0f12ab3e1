"""PRCC (Yang et al., TPAMI 2019, "Person Re-identification by Contour Sketch under Moderate
Clothing Change").

33,698 images of 221 identities from 3 cameras: A and B see a person in the same clothes, C in
other clothes. 150 train ids, 71 test ids. Layout and naming as released::

    prcc/rgb/train/001/A_cropped_rgb001.jpg   <camera A|B|C>_cropped_rgb<n>.jpg, one folder per pid
    prcc/rgb/val/...                          (same; not used)
    prcc/rgb/test/A/001/cropped_rgb001.jpg    gallery: camera A
    prcc/rgb/test/B/001/...                   query, same clothes as the gallery
    prcc/rgb/test/C/001/...                   query, changed clothes

Clothes ids: ``<pid>_AB`` for cameras A and B, ``<pid>_C`` for camera C, so the cloth-changing
evaluator splits PRCC's query set into its same-clothes (B) and changed-clothes (C) halves by
comparing each query's clothes with the gallery's (``fire2.evaluation.cloth_changing``).
Camera ids: A 0, B 1, C 2.
"""
from __future__ import annotations

import re

from .clothes import ClothesLayoutDataset
from rganet_plugin.data.datasets.common import JUNK, register_dataset

__all__ = ["PRCC", "parse_prcc_train", "parse_prcc_test"]

CAMERAS = {"A": 0, "B": 1, "C": 2}
_TRAIN_NAME = re.compile(r"^([ABC])_.*\.jpe?g$", re.IGNORECASE)


def _clothes(pid_folder: str, cam: str) -> str:
    return f"{pid_folder}_{'C' if cam == 'C' else 'AB'}"


def parse_prcc_train(name: str, rel: str):
    """``001/A_cropped_rgb001.jpg`` -> ``(1, 0, "001_AB")``; None if malformed."""
    parts = rel.replace("\\", "/").split("/")
    m = _TRAIN_NAME.match(name)
    if len(parts) != 2 or not parts[0].isdigit() or m is None:
        return None
    cam = m.group(1).upper()
    return int(parts[0]), CAMERAS[cam], _clothes(parts[0], cam)


def parse_prcc_test(want):
    """Parser of ``<A|B|C>/<pid>/<name>.jpg`` keeping the cameras in ``want`` (others are skipped
    silently: the query and gallery splits read the same ``rgb/test`` folder)."""

    def parse(name: str, rel: str):
        parts = rel.replace("\\", "/").split("/")
        if len(parts) != 3 or parts[0].upper() not in CAMERAS or not parts[1].isdigit():
            return None
        cam = parts[0].upper()
        if cam not in want:
            return JUNK
        return int(parts[1]), CAMERAS[cam], _clothes(parts[1], cam)

    return parse


@register_dataset
class PRCC(ClothesLayoutDataset):
    """PRCC: ``<root>/prcc/rgb/{train,test/{A,B,C}}``; query = B (same clothes) + C (changed)."""

    dataset_name = "prcc"
    dataset_dir_names = ("prcc", "PRCC")
    splits = {"train": ("rgb/train",), "query": ("rgb/test",), "gallery": ("rgb/test",)}
    name_example = "001/A_cropped_rgb001.jpg (train), A/001/cropped_rgb001.jpg (test)"
    name_rule = ("train: <pid>/<A|B|C>_<name>.jpg; test: <A (gallery)|B|C (query)>/<pid>/<name>.jpg")
    recursive = True

    def __init__(self, root="datasets", corrupt_images=None, **kwargs):
        parsers = {"train": parse_prcc_train, "query": parse_prcc_test({"B", "C"}),
                   "gallery": parse_prcc_test({"A"})}
        self._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
        self.query_same_clothes = [it for it in self.query if it[2] == CAMERAS["B"]]
        self.query_changed_clothes = [it for it in self.query if it[2] == CAMERAS["C"]]
