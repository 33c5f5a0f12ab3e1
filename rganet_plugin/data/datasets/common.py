"""Shared machinery of the plugin's dataset loaders: layout checks with readable errors, a
sorted folder scan that skips (and counts) badly named files, and the corrupt-image policy.

Every loader subclasses :class:`LayoutDataset`, itself a ``fastreid.data.datasets.bases.ImageDataset``,
so fast-reid's builders (``build_reid_train_loader`` / ``build_reid_test_loader``) use them as
they use ``DukeMTMC``: ``DATASET_REGISTRY.get(name)(root=FASTREID_DATASETS, **kwargs)``. Items are
``(img_path, pid, camid)``; train pids/camids are strings prefixed with ``dataset_name`` (as in
fast-reid's own loaders, so several training sets can be combined), query/gallery ones are ints.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Dict, List, Tuple, Union

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.bases import ImageDataset

from ..image_io import IMAGE_EXTENSIONS
from ..image_io import filter_corrupt_images, normalize_corrupt_policy

logger = logging.getLogger(__name__)

__all__ = [
    "IMG_EXTS",
    "QUERY_CAMID",
    "GALLERY_CAMID",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetLayoutError",
    "LayoutDataset",
    "register_dataset",
]

#: File extensions the loaders read (lower case): the same list as the tools' folder reader.
IMG_EXTS = IMAGE_EXTENSIONS

#: Camera ids of test-only benchmarks, whose images carry no camera: every query image is put in
#: camera 0 and every gallery image in camera 1, so fast-reid's "same pid and same camera" filter
#: never removes a true match (as light-reid, PVPM and BPBreID do).
QUERY_CAMID = 0
GALLERY_CAMID = 1

# A parser maps a file name (and its path relative to the split folder) to (pid, camid), to
# JUNK (a file to drop silently, e.g. pid -1 distractors) or to None (name does not match).
JUNK = "junk"
Parsed = Union[Tuple[int, int], str, None]
Parser = Callable[[str, str], Parsed]


class DatasetError(Exception):
    """Base of the loaders' layout errors."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset folder, or one of its split folders, does not exist."""


class DatasetLayoutError(DatasetError, ValueError):
    """A folder exists but is malformed: a split path is a file, or a split has no usable image."""


def register_dataset(cls):
    """``DATASET_REGISTRY.register()`` that tolerates the same class being registered again
    (module reloads) but still refuses a different class under a taken name."""
    name = cls.__name__
    obj_map = getattr(DATASET_REGISTRY, "_obj_map", None)
    if obj_map is not None and name in obj_map:
        old = obj_map[name]
        if getattr(old, "__module__", None) == cls.__module__ and old.__qualname__ == cls.__qualname__:
            obj_map[name] = cls
            return cls
    DATASET_REGISTRY.register(cls)  # returns None when given the object
    return cls


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


class LayoutDataset(ImageDataset):
    """Base class: subclasses set the class attributes and call :meth:`_build` in ``__init__``.

    Class attributes:
        dataset_name: prefix of train pids/camids.
        dataset_dir_names: folder names under ``root``, canonical first, then accepted aliases.
        splits: ``{"train"|"query"|"gallery": (folder, alias, ...)}`` under the dataset folder;
            for each split the first folder that exists is used.
        name_example: a real file name, shown in messages.
        name_rule: how names are parsed, in words, shown in messages.
        recursive: scan split folders recursively (Occluded-REID keeps one folder per identity).
    """

    dataset_name = "unknown"
    dataset_dir_names: Tuple[str, ...] = ()
    splits: Dict[str, Tuple[str, ...]] = {}
    name_example = ""
    name_rule = ""
    recursive = False

    # ------------------------------------------------------------------ messages
    @classmethod
    def expected_layout(cls, root: str) -> str:
        """A small tree of the expected layout under ``root`` (used in every error message)."""
        order = [s for s in ("train", "query", "gallery") if s in cls.splits]
        lines = [f"  {root.rstrip(os.sep) or os.sep}{os.sep}", f"  └── {cls.dataset_dir_names[0]}/"]
        width = max(len(cls.splits[s][0]) for s in order) + 2
        for i, split in enumerate(order):
            branch = "└──" if i == len(order) - 1 else "├──"
            folder = cls.splits[split][0] + "/"
            lines.append(f"      {branch} {folder:<{width}} {split}: {cls.name_example} ...")
        notes = []
        if len(cls.dataset_dir_names) > 1:
            notes.append("dataset folder aliases: " + ", ".join(cls.dataset_dir_names[1:]))
        for split in order:
            if len(cls.splits[split]) > 1:
                notes.append(f"{split} folder aliases: " + ", ".join(cls.splits[split][1:]))
        if cls.name_rule:
            notes.append("file names: " + cls.name_rule)
        text = "\n".join(lines)
        if notes:
            text += "\n  (" + "; ".join(notes) + ")"
        return text

    def _fail(self, exc_type, problem: str):
        raise exc_type(
            f"{type(self).__name__}: {problem}\n"
            f"root={self.root!r} (DATASETS.ROOT, else $FASTREID_DATASETS, default 'datasets'). "
            f"Expected layout:\n{self.expected_layout(str(self.root))}\n"
            "See docs/datasets.md."
        )

    # ------------------------------------------------------------------ layout
    def _find_dataset_dir(self) -> str:
        for name in self.dataset_dir_names:
            path = os.path.join(self.root, name)
            if os.path.isdir(path):
                return path
        canonical = os.path.join(self.root, self.dataset_dir_names[0])
        if os.path.exists(canonical):
            self._fail(DatasetLayoutError, f"'{canonical}' is not a folder.")
        self._fail(DatasetNotFoundError, f"dataset folder '{canonical}' not found.")

    def _find_split_dir(self, split: str) -> str:
        for name in self.splits[split]:
            path = os.path.join(self.dataset_dir, name)
            if os.path.isdir(path):
                return path
        path = os.path.join(self.dataset_dir, self.splits[split][0])
        if os.path.exists(path):
            self._fail(DatasetLayoutError, f"{split} split '{path}' is not a folder.")
        tried = " or ".join(f"'{n}/'" for n in self.splits[split])
        present = sorted(n for n in os.listdir(self.dataset_dir) if not _is_hidden(n))
        self._fail(
            DatasetNotFoundError,
            f"malformed dataset folder '{self.dataset_dir}': no {split} folder ({tried}); "
            f"it contains {present[:10]}{' ...' if len(present) > 10 else ''}.",
        )

    # ------------------------------------------------------------------ scanning
    def _list_files(self, split_dir: str) -> List[Tuple[str, str]]:
        """Sorted ``(relative_path, full_path)`` of the regular, non-hidden files."""
        out = []
        if self.recursive:
            for cur, dirs, files in os.walk(split_dir):
                dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
                for f in sorted(files):
                    if not _is_hidden(f):
                        full = os.path.join(cur, f)
                        out.append((os.path.relpath(full, split_dir), full))
        else:
            with os.scandir(split_dir) as it:
                for e in it:
                    if not _is_hidden(e.name) and e.is_file():
                        out.append((e.name, e.path))
        out.sort()
        return out

    def _scan_split(self, split: str, split_dir: str, parse: Parser) -> List[Tuple[str, int, int]]:
        items, unmatched, junk = [], [], 0
        for rel, full in self._list_files(split_dir):
            parsed = None
            if os.path.splitext(rel)[1].lower() in IMG_EXTS:
                parsed = parse(os.path.basename(rel), rel)
            if parsed is None:
                unmatched.append(rel)
            elif parsed == JUNK:
                junk += 1
            else:
                pid, camid = parsed
                if split == "train":  # fast-reid convention: prefixed strings for training
                    pid, camid = f"{self.dataset_name}_{pid}", f"{self.dataset_name}_{camid}"
                items.append((full, pid, camid))
        if unmatched:
            examples = ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else "")
            logger.warning(
                "%s %s: skipped %d file(s) in '%s' whose names do not match the naming pattern "
                "(%s; e.g. %s): %s",
                type(self).__name__, split, len(unmatched), split_dir, self.name_rule,
                self.name_example, examples,
            )
        if junk:
            logger.info("%s %s: ignored %d junk image(s) (pid -1)", type(self).__name__, split, junk)
        if not items:
            self._fail(
                DatasetLayoutError,
                f"{split} split '{split_dir}' has no usable image named like "
                f"'{self.name_example}' ({len(unmatched)} other file(s) skipped).",
            )
        items = filter_corrupt_images(
            items, self.corrupt_images, what=f"{type(self).__name__} {split} ('{split_dir}')", log=logger
        )
        if not items:
            self._fail(DatasetLayoutError, f"{split} split '{split_dir}' has no readable image.")
        return items

    # ------------------------------------------------------------------ build
    def _build(self, root, parsers: Dict[str, Parser], corrupt_images=None, **kwargs):
        self.root = os.fspath(root)
        self.corrupt_images = normalize_corrupt_policy(corrupt_images)
        self.dataset_dir = self._find_dataset_dir()
        self.masks_dir = os.path.join(self.dataset_dir, "masks")
        data = {"train": []}
        self.train_dir = None
        for split in ("train", "query", "gallery"):
            if split not in self.splits:
                continue
            split_dir = self._find_split_dir(split)
            setattr(self, f"{split}_dir", split_dir)
        for split in ("train", "query", "gallery"):
            if split in self.splits:
                data[split] = self._scan_split(split, getattr(self, f"{split}_dir"), parsers[split])
        ImageDataset.__init__(self, data["train"], data["query"], data["gallery"], **kwargs)
