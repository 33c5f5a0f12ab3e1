"""Reading a folder of person crops (the input of the ``extract``, ``search``, ``regions`` and
``ranking`` tools).

* :func:`list_images` walks a folder (recursively by default) and returns the image files in a
  stable, sorted order. Files with an image extension that cannot be read (zero bytes, truncated,
  not an image) are skipped with **one** warning that gives their count and names them
  (:func:`rganet_plugin.data.image_io.check_image` does the check). A folder without any readable
  image raises :class:`EmptyFolderError` saying what was searched.
* :func:`collect_images` accepts a mix of files and folders (``--images a.jpg b.jpg crops/``).
* :class:`ImageListDataset` feeds a list of paths through fast-reid's test transform (which
  resizes, so crops of mixed sizes are fine) and yields ``{"images", "index", "img_paths"}``.
* :func:`identity_of` reads a person id and camera id from Market-1501 / DukeMTMC style file names
  (``0002_c1s1_000451_03.jpg``, ``0005_c2_f0046985.jpg``), else uses the parent folder name as the
  identity (``crops/<person>/<image>.jpg``).
"""
from __future__ import annotations

import logging
import os
import re
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from .image_io import IMAGE_EXTENSIONS, find_corrupt_images, read_image

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "EmptyFolderError",
    "list_images",
    "collect_images",
    "ImageListDataset",
    "identity_of",
]

#: File name endings (lower case) treated as images.

_MAX_NAMED = 20


class EmptyFolderError(ValueError):
    """No readable image where images were expected."""


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _walk(root: str, recursive: bool) -> List[str]:
    found = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(os.path.join(dirpath, f) for f in filenames if _is_image_name(f))
    else:
        found = [os.path.join(root, f) for f in os.listdir(root)
                 if _is_image_name(f) and os.path.isfile(os.path.join(root, f))]
    return sorted(found)


def _drop_corrupt(paths: List[str], what: str, check: bool,
                  log: Optional[logging.Logger]) -> List[str]:
    if not check or not paths:
        return paths
    bad = find_corrupt_images(paths)
    if not bad:
        return paths
    named = "\n".join(f"  {p}  ({reason})" for p, reason in bad[:_MAX_NAMED])
    if len(bad) > _MAX_NAMED:
        named += f"\n  ... and {len(bad) - _MAX_NAMED} more"
    (log or logger).warning("%s: skipped %d unreadable image file(s) of %d:\n%s", what, len(bad),
                            len(paths), named)
    bad_set = {p for p, _ in bad}
    return [p for p in paths if p not in bad_set]


def list_images(root: str, recursive: bool = True, check: bool = True,
                log: Optional[logging.Logger] = None) -> List[str]:
    """Sorted image paths under ``root`` (a folder, or a single image file).

    Unreadable files are skipped with one warning (count and names) when ``check`` is true.
    Raises ``FileNotFoundError`` for a missing path and :class:`EmptyFolderError` when nothing
    readable is left.
    """
    root = os.fspath(root)
    if not os.path.exists(root):
        raise FileNotFoundError(f"no such file or folder: {root}")
    if os.path.isfile(root):
        paths = [root]
    else:
        paths = _walk(root, recursive)
        if not paths:
            how = "recursively" if recursive else "non-recursively"
            raise EmptyFolderError(
                f"no images found in {root} (searched {how} for "
                f"{', '.join(IMAGE_EXTENSIONS)})")
    kept = _drop_corrupt(paths, root, check, log)
    if not kept:
        raise EmptyFolderError(
            f"no readable image in {root}: all {len(paths)} image file(s) are unreadable")
    return kept


def collect_images(inputs: Iterable[str], recursive: bool = True, check: bool = True,
                   log: Optional[logging.Logger] = None) -> List[str]:
    """Image paths from a mix of files and folders, in the order given (folders sorted inside).

    A path given twice is kept once. Unreadable files are skipped with one warning.
    """
    inputs = [os.fspath(p) for p in inputs]
    if not inputs:
        raise EmptyFolderError("no image files or folders given")
    paths, seen = [], set()
    for item in inputs:
        if not os.path.exists(item):
            raise FileNotFoundError(f"no such file or folder: {item}")
        found = [item] if os.path.isfile(item) else list_images(item, recursive, check=False)
        for p in found:
            key = os.path.abspath(p)
            if key not in seen:
                seen.add(key)
                paths.append(p)
    what = inputs[0] if len(inputs) == 1 else f"{len(inputs)} inputs"
    kept = _drop_corrupt(paths, what, check, log)
    if not kept:
        raise EmptyFolderError(
            f"no readable image in {what}: all {len(paths)} image file(s) are unreadable")
    return kept


class ImageListDataset(Dataset):
    """``paths`` through ``transform`` (fast-reid's test transform: PIL image -> 0..255 tensor)."""

    def __init__(self, paths: Sequence[str], transform: Callable):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = read_image(self.paths[i])  # raises CorruptImageError naming the file
        return {"images": self.transform(img), "index": i, "img_paths": self.paths[i]}


def collate_images(batch):
    return {"images": torch.stack([b["images"] for b in batch]),
            "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
            "img_paths": [b["img_paths"] for b in batch]}


_MARKET = re.compile(r"^(-?\d+)_c(\d+)")


def identity_of(path: str) -> Tuple[str, int]:
    """``(person id, camera id)`` of an image path; camera id -1 when unknown.

    ``0002_c1s1_000451_03.jpg`` (Market-1501) and ``0005_c2_f0046985.jpg`` (DukeMTMC) give
    ``("2", 0)`` / ``("5", 1)`` (cameras counted from 0, as fast-reid's loaders do); any other name
    gives the parent folder's name and -1.
    """
    name = os.path.basename(path)
    m = _MARKET.match(name)
    if m:
        return str(int(m.group(1))), int(m.group(2)) - 1
    return os.path.basename(os.path.dirname(os.path.abspath(path))), -1
