"""Body-part labels: the canonical label set of the mask files, the paper's class lists per N,
and the mapping from either to the labels of a ``MODEL.RGANET.CLASS_NAMES`` list.

**Canonical labels** (what every mask file holds, whatever N a run uses)::

    0 background (and occluders)   1 head   2 upper body   3 lower body   4 foot   5 bags
    255 ignore (not counted in L_seg)

The generated dataset writes these values, and ``python -m rganet_plugin.tools convert-parsing``
turns a human parser's label maps (LIP, ATR, CIHP, Pascal-Person-Part; their label sets are in
:mod:`rganet_plugin.data.parser_labels`) into them (``docs/part_labels.md`` has the tables).

**Class labels** of a run: 0 background, ``j`` = the j-th name of ``MODEL.RGANET.CLASS_NAMES``
(1-based), 255 ignore. The paper's lists for Fig. 3(a) (§IV-D, "Evaluation of the Region
Number N") are :data:`PAPER_CLASS_NAMES`.

**Where a canonical part goes when its class is not in the list** (a choice the paper does not
state; :data:`FOLD`): each part falls to its neighbour on the body, then to background:

* head -> upper body (N = 2: the paper's two regions are "upper body" and "lower body"; the
  head is the top of the person, as in a two-stripe PCB split, and its hair / hat colours are
  identity cues a region should keep, not background to suppress);
* foot -> lower body;
* bags -> background (a carried bag is not a body part; LIP / CIHP / Pascal-Person-Part label it
  background too, so N = 4 means the same with every parser);
* upper body, lower body -> background.

Class names are compared after lower-casing and collapsing white space (the paper writes
" upper body", " foot"); "bag" and "feet" are accepted for "bags" and "foot". Any other name is a
:class:`UnknownPartClassError` listing the known names: masks cannot say where its pixels are.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

#: canonical value -> name; the values the mask files hold (plus :data:`IGNORE`)
CANONICAL: Tuple[str, ...] = ("background", "head", "upper body", "lower body", "foot", "bags")
BACKGROUND = 0
IGNORE = 255
CANONICAL_VALUE: Dict[str, int] = {name: v for v, name in enumerate(CANONICAL)}

#: the paper's class names for N regions (§IV-D, Fig. 3(a))
PAPER_CLASS_NAMES: Dict[int, Tuple[str, ...]] = {
    2: ("upper body", "lower body"),
    3: ("head", "upper body", "lower body"),
    4: ("head", "upper body", "lower body", "foot"),
    5: ("head", "upper body", "lower body", "foot", "bags"),
}

#: where a part goes when its class is not in CLASS_NAMES (followed until a listed class or
#: background is reached)
FOLD: Dict[str, str] = {
    "head": "upper body",
    "foot": "lower body",
    "bags": "background",
    "upper body": "background",
    "lower body": "background",
}

ALIASES: Dict[str, str] = {"bag": "bags", "feet": "foot"}


class UnknownPartClassError(ValueError):
    pass


class LabelValueError(ValueError):
    """A label map holds values outside its label set."""


def normalize_class_name(name: str) -> str:
    """The canonical spelling of a class name, or :class:`UnknownPartClassError`."""
    key = " ".join(str(name).lower().split())
    key = ALIASES.get(key, key)
    if key not in CANONICAL_VALUE or key == "background":
        known = ", ".join(repr(n) for n in CANONICAL[1:])
        raise UnknownPartClassError(
            f"unknown body-part class {name!r} in MODEL.RGANET.CLASS_NAMES: the part masks can "
            f"only label {known} (aliases: {', '.join(f'{a!r}->{b!r}' for a, b in ALIASES.items())}). "
            f"Use those names, or make masks whose labels your classes can be read from "
            f"(rganet_plugin/data/part_labels.py).")
    return key


def paper_class_names(n: int) -> List[str]:
    """The paper's class names for ``n`` regions (§IV-D): 2..5."""
    if n not in PAPER_CLASS_NAMES:
        raise ValueError(f"the paper defines class lists for N in {sorted(PAPER_CLASS_NAMES)}, "
                         f"not N = {n}")
    return list(PAPER_CLASS_NAMES[n])


def fold_targets(class_names: Sequence[str]) -> Dict[str, str]:
    """canonical name -> the canonical name its pixels count as under ``class_names``
    (itself when listed, else along :data:`FOLD`; background stays background)."""
    names = [normalize_class_name(n) for n in class_names]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UnknownPartClassError(
            f"MODEL.RGANET.CLASS_NAMES {list(class_names)} names {dup} more than once")
    listed = set(names)
    out = {}
    for name in CANONICAL:
        t = name
        while t != "background" and t not in listed:
            t = FOLD[t]
        out[name] = t
    return out


def canonical_to_class_table(class_names: Sequence[str]) -> np.ndarray:
    """A 256-entry lookup table: canonical label value -> class label of ``class_names``
    (0 background, j for the j-th name, 255 ignore); -1 for values outside the canonical set."""
    names = [normalize_class_name(n) for n in class_names]
    targets = fold_targets(class_names)
    lut = np.full(256, -1, dtype=np.int64)
    for v, name in enumerate(CANONICAL):
        t = targets[name]
        lut[v] = 0 if t == "background" else names.index(t) + 1
    lut[IGNORE] = IGNORE
    return lut


def canonical_fold_table(class_names: Sequence[str]) -> np.ndarray:
    """Like :func:`canonical_to_class_table` but the result stays in canonical values: the parts
    ``class_names`` lacks are merged into their :data:`FOLD` targets (``convert-parsing
    --classes N`` writes such masks; any class list that contains them reads them the same)."""
    targets = fold_targets(class_names)
    lut = np.full(256, -1, dtype=np.int64)
    for v, name in enumerate(CANONICAL):
        lut[v] = CANONICAL_VALUE[targets[name]]
    lut[IGNORE] = IGNORE
    return lut


def apply_table(label_map: np.ndarray, lut: np.ndarray, what: str = "label map",
                label_set: str = "canonical part labels 0..5 and 255") -> np.ndarray:
    """``lut[label_map]``; a :class:`LabelValueError` naming the offending values when the map
    holds a value the table does not define (negative, > 255, or a -1 entry)."""
    arr = np.asarray(label_map)
    if arr.ndim != 2:
        raise LabelValueError(f"{what}: a label map must be 2-D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise LabelValueError(f"{what}: labels must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    values = np.unique(arr)
    bad = [int(v) for v in values if v < 0 or v >= lut.shape[0] or lut[int(v)] < 0]
    if bad:
        shown = ", ".join(str(v) for v in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise LabelValueError(f"{what}: label values {shown} are outside the {label_set}")
    return lut[arr.astype(np.int64)]


def to_class_labels(canonical_map: np.ndarray, class_names: Sequence[str],
                    what: str = "label map") -> np.ndarray:
    """A canonical label map (values 0..5, 255) as the class labels of ``class_names``."""
    return apply_table(canonical_map, canonical_to_class_table(class_names), what)
