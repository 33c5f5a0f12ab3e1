"""Pseudo part masks for the prompt-learning stage (eq. 3).

One label map per training image, in a folder that mirrors the dataset's image folders::

    <masks_root>/<image folder name>/<image stem>.png   (or .npy)

``<masks_root>`` is ``DATASETS.PSEUDO_MASKS.DIR`` or, when empty, ``<dataset_dir>/masks``
(e.g. ``Occluded_Duke/masks/bounding_box_train/0005_c2_f0046985.png``). A label map is a
single-channel uint8 PNG (or a 2-D integer ``.npy``) of any size (resized with nearest neighbour)
holding the canonical part labels of :mod:`.part_labels`: 0 background, 1 head, 2 upper body,
3 lower body, 4 foot, 5 bags, 255 ignore. The same files serve every ``MODEL.RGANET.CLASS_NAMES``:
each map is translated to that list's labels (0 background, j = its j-th name), parts the list
lacks folding into their neighbour (head -> upper body for the paper's N = 2, foot -> lower body,
bags -> background; ``part_labels.FOLD``). A value outside the set is an error naming the file.
``python -m rganet_plugin.tools convert-parsing`` makes them from a human parser's output
(docs/part_labels.md); the generated dataset ships its own.

The stage uses resize-only transforms so masks and images stay aligned.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from fastreid.data.common import CommDataset
from fastreid.data.transforms import build_transforms
from PIL import Image

from ..config.regions import region_classes
from .part_labels import apply_table, canonical_to_class_table


class MissingPseudoMaskError(FileNotFoundError):
    pass


def mask_path_for(img_path: str, masks_root: str = "") -> Optional[str]:
    folder = os.path.dirname(img_path)
    split = os.path.basename(folder)
    root = masks_root or os.path.join(os.path.dirname(folder), "masks")
    stem = os.path.splitext(os.path.basename(img_path))[0]
    for ext in (".png", ".npy"):
        p = os.path.join(root, split, stem + ext)
        if os.path.isfile(p):
            return p
    return None


def read_label_map(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        arr = np.load(path)
    else:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"{path}: a label map must be single-channel, got mode {im.mode}")
            arr = np.asarray(im)
    if arr.ndim != 2:
        raise ValueError(f"{path}: a label map must be 2-D, got shape {arr.shape}")
    return arr.astype(np.int64)


class PseudoMaskDataset(CommDataset):
    """``CommDataset`` items plus ``masks``: the label map resized to the input size."""

    def __init__(self, img_items, transform, size_hw: Tuple[int, int], masks_root: str = "",
                 class_names: Sequence[str] = ("head", "upper body", "lower body", "foot")):
        super().__init__(img_items, transform, relabel=True)
        self.size_hw = tuple(size_hw)
        self.class_names = list(class_names)
        self.num_region_classes = len(self.class_names)
        # canonical label -> class label of CLASS_NAMES (checked here: an unknown name fails
        # before any training starts)
        self.label_table = canonical_to_class_table(self.class_names)
        self.mask_paths: List[str] = []
        missing = []
        for item in img_items:
            p = mask_path_for(item[0], masks_root)
            if p is None:
                missing.append(item[0])
            self.mask_paths.append(p)
        if missing:
            first = missing[0]
            folder = os.path.dirname(first)
            root = masks_root or os.path.join(os.path.dirname(folder), "masks")
            raise MissingPseudoMaskError(
                f"{len(missing)} of {len(img_items)} training images have no pseudo mask; the "
                f"first one, {first}, needs {os.path.join(root, os.path.basename(folder), os.path.splitext(os.path.basename(first))[0])}.png "
                f"(or .npy). See docs/datasets.md for the format.")

    def __getitem__(self, index):
        out = super().__getitem__(index)
        path = self.mask_paths[index]
        lab = apply_table(read_label_map(path), self.label_table, path).astype(np.uint8)
        h, w = self.size_hw
        lab = np.asarray(Image.fromarray(lab).resize((w, h), Image.NEAREST))
        out["masks"] = torch.from_numpy(lab.astype(np.int64))
        return out


def build_pseudo_mask_set(cfg, items) -> PseudoMaskDataset:
    c = cfg.clone()
    c.defrost()
    for k in ("FLIP", "PADDING", "CROP", "REA", "RPT", "AFFINE", "AUTOAUG", "AUGMIX", "CJ"):
        c.INPUT[k].ENABLED = False
    return PseudoMaskDataset(items, build_transforms(c, is_train=True), cfg.INPUT.SIZE_TRAIN,
                             cfg.DATASETS.PSEUDO_MASKS.DIR, region_classes(cfg))
