"""What every generated dataset writes besides its images: the progress bar, one part mask per
image (``masks/<split dir>/<image stem>.png``) and the manifest (``synthetic_manifest.json``),
shared by :mod:`.occluded_duke` and :mod:`.cloth_changing`."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, Optional

import numpy as np
from PIL import Image

from .bags import BAG_LABEL
from .cache import MANIFEST_NAME
from .people import PART_LABELS

__all__ = ["progress_bar", "save_mask", "write_manifest"]


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar over ``total`` images (a silent stand-in without tqdm)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=False)


def save_mask(dataset_dir: str, split_dir: str, image_file: str, label: np.ndarray) -> str:
    """Write ``label`` (H, W uint8 part labels) as the mask of ``image_file``; returns its path
    relative to ``dataset_dir``."""
    stem = os.path.splitext(os.path.basename(image_file))[0]
    mask_rel = f"masks/{split_dir}/{stem}.png"
    Image.fromarray(label, "L").save(os.path.join(dataset_dir, mask_rel), format="PNG")
    return mask_rel


def write_manifest(dataset_dir: str, manifest: Dict[str, Any],
                   bag_carriers: Optional[Iterable[int]] = None) -> Dict[str, Any]:
    """Add the part-label table (with ``bags`` when the set has bag carriers, listed) to
    ``manifest``, write it into ``dataset_dir`` and return it."""
    part_labels = dict(PART_LABELS)
    if bag_carriers is not None:
        part_labels[BAG_LABEL] = "bags"
        manifest["bag_carriers"] = sorted(bag_carriers)
    manifest["part_labels"] = {str(k): v for k, v in part_labels.items()}
    with open(os.path.join(dataset_dir, MANIFEST_NAME), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return manifest
