"""Clothes ids in fast-reid's dataset items, for the cloth-changing datasets.

fast-reid's items are ``(img_path, pid, camid)`` tuples, and its code unpacks them as such
(``CommDataset`` reads ``item[0..2]``, ``BalancedIdentitySampler`` does
``_, pid, cam = item``). A cloth-changing loader therefore returns :class:`ClothesItem`\\ s: tuples of
exactly those three values that also carry ``.clothes`` (a string such as ``"001_1"``, or None
where the dataset gives no clothes labels). Every fast-reid builder, sampler and ``CommDataset``
accepts them unchanged; code that wants the clothes reads :func:`clothes_of`. They survive
pickling (data-loader workers, DDP).

Training clothes ids are prefixed with the dataset name, like fast-reid prefixes training pids, so
sets can be combined; test ones are the dataset's own.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional

from rganet_plugin.data.datasets.common import JUNK, LayoutDataset

__all__ = ["ClothesItem", "clothes_of", "ClothesLayoutDataset"]


class ClothesItem(tuple):
    """``(img_path, pid, camid)`` with a ``clothes`` attribute (None: unknown)."""

    def __new__(cls, img_path, pid, camid, clothes: Optional[str] = None):
        self = super().__new__(cls, (img_path, pid, camid))
        self.clothes = clothes
        return self

    def __getnewargs__(self):
        return (self[0], self[1], self[2], self.clothes)

    def __reduce__(self):
        return (ClothesItem, self.__getnewargs__())

    def __repr__(self):
        return f"ClothesItem({self[0]!r}, {self[1]!r}, {self[2]!r}, clothes={self.clothes!r})"


def clothes_of(item: Any) -> Optional[str]:
    """The clothes id of a dataset item (None for plain tuples and unknown clothes)."""
    return getattr(item, "clothes", None)


class ClothesLayoutDataset(LayoutDataset):
    """A :class:`LayoutDataset` whose parsers return ``(pid, camid, clothes)``; the items become
    :class:`ClothesItem`\\ s. ``clothes`` may be None (datasets without clothes labels).

    Attributes after ``_build``: ``has_clothes`` (every query and gallery item has a clothes id:
    the clothes-changing protocol applies).
    """

    def _scan_split(self, split: str, split_dir: str, parse) -> List[ClothesItem]:
        clothes = {}

        def two_values(name: str, rel: str):
            parsed = parse(name, rel)
            if parsed is None or parsed == JUNK:
                return parsed
            pid, camid, c = parsed
            clothes[os.path.normpath(os.path.join(split_dir, rel))] = c
            return pid, camid

        items = super()._scan_split(split, split_dir, two_values)
        out = []
        for path, pid, camid in items:
            c = clothes[os.path.normpath(path)]
            if split == "train" and c is not None:
                c = f"{self.dataset_name}_{c}"
            out.append(ClothesItem(path, pid, camid, c))
        return out

    def _build(self, root, parsers, corrupt_images=None, **kwargs):
        super()._build(root, parsers, corrupt_images=corrupt_images, **kwargs)
        self.has_clothes = all(clothes_of(it) is not None for it in self.query + self.gallery)

    @staticmethod
    def clothes_ids(items: Iterable) -> List[Optional[str]]:
        return [clothes_of(it) for it in items]
