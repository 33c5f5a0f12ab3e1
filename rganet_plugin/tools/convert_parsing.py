"""``python -m rganet_plugin.tools convert-parsing``: a human parser's label maps -> pseudo part masks.

::

    python -m rganet_plugin.tools convert-parsing --src schp_out/bounding_box_train --format lip \\
        --out datasets/Occluded_Duke/masks/bounding_box_train [--classes 4] [--overwrite]

Reads every ``.png`` (single-channel: mode ``L``/``P``, the label as the pixel value or palette
index, as SCHP and the datasets' own annotations store them) and 2-D ``.npy`` under ``--src``
(sub-folders included) holding the labels of one of the standard label sets: LIP (20 labels),
ATR (18), CIHP (20) or Pascal-Person-Part (7). Writes one uint8 PNG per map, same relative
folder and file stem, holding the canonical part labels of ``rganet_plugin/data/part_labels.py``
(0 background, 1 head, 2 upper body, 3 lower body, 4 foot, 5 bags, 255 ignore): the layout stage 1
reads (``<dataset_dir>/masks/<image folder>/<image stem>.png``, docs/datasets.md). So point
``--out`` at ``<dataset_dir>/masks/<split>`` for one split's folder of maps, or at
``<dataset_dir>/masks`` when ``--src`` holds one sub-folder per split.

``--classes N`` (2..5, the paper's class lists of §IV-D) merges the parts N lacks into their
neighbours at conversion time (head into upper body for N = 2, foot into lower body for N <= 3,
bags into background for N <= 4); the values stay canonical, so the masks read the same by any
run whose class list contains those N classes. The default keeps every part the label set has.
A label set that cannot tell an N's classes apart (no bag label in LIP, CIHP and
Pascal-Person-Part; no foot label in Pascal-Person-Part) refuses that N rather than write masks
in which a class never appears. Mapping tables: docs/part_labels.md.

Everything is checked before anything is written: a missing or empty ``--src``, a map that is not
a single-channel label map (e.g. the parser's RGB colour visualisation), labels outside the set,
or two maps with the same stem are errors naming the file.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from ..data.parser_labels import PARSER_LABELS, PARSER_LIMITS, parser_max_classes, parser_table
from ..data.part_labels import (CANONICAL, IGNORE, PAPER_CLASS_NAMES, LabelValueError,
                                apply_table, canonical_fold_table, paper_class_names)

__all__ = ["ParsingConversionError", "find_label_maps", "read_parser_map", "convert_folder", "main"]

LABEL_MAP_EXTENSIONS = (".png", ".npy")


class ParsingConversionError(ValueError):
    pass


def find_label_maps(src: str) -> List[str]:
    """Relative paths of the label maps under ``src`` (sorted); errors for a missing or empty
    folder and for two maps that would write the same mask."""
    if not os.path.isdir(src):
        raise FileNotFoundError(f"--src {src}: no such folder")
    found, by_stem = [], {}
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(LABEL_MAP_EXTENSIONS):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            key = os.path.splitext(rel)[0]
            if key in by_stem:
                raise ParsingConversionError(
                    f"{os.path.join(src, by_stem[key])} and {os.path.join(src, rel)} would both "
                    f"become {key}.png: keep one of them")
            by_stem[key] = rel
            found.append(rel)
    if not found:
        raise ParsingConversionError(
            f"--src {src}: no label maps ({' / '.join(LABEL_MAP_EXTENSIONS)} files) in it or its "
            f"sub-folders")
    return found


def read_parser_map(path: str) -> np.ndarray:
    """A parser's label map as a 2-D integer array (single-channel PNG or 2-D ``.npy``)."""
    if path.lower().endswith(".npy"):
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 2:
            raise ParsingConversionError(f"{path}: a label map must be 2-D, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ParsingConversionError(f"{path}: labels must be integers, got dtype {arr.dtype}")
        return arr.astype(np.int64)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in ("L", "P", "I", "I;16"):
                raise ParsingConversionError(
                    f"{path}: not a label map (image mode {mode}); a label map is single-channel "
                    f"(mode L, or P with the label as the palette index). An RGB file is usually "
                    f"the parser's colour visualisation: convert its label output instead")
            return np.asarray(im).astype(np.int64)
    except (OSError, SyntaxError) as e:  # PIL's errors for unreadable / truncated files
        raise ParsingConversionError(f"{path}: cannot read it as an image ({e})") from None


def convert_folder(src: str, fmt: str, out: str, classes: Optional[int] = None,
                   overwrite: bool = False) -> Dict:
    """Convert every label map under ``src``; returns ``{"files": n, "classes": N,
    "fractions": {part: pixel fraction}}``. Nothing is written when any input is bad."""
    if fmt not in PARSER_LABELS:
        raise ParsingConversionError(
            f"unknown --format {fmt!r}; known: {', '.join(PARSER_LABELS)}")
    most = parser_max_classes(fmt)
    n = most if classes is None else int(classes)
    if n not in PAPER_CLASS_NAMES:
        raise ParsingConversionError(f"--classes must be one of {sorted(PAPER_CLASS_NAMES)}, "
                                     f"got {n}")
    if n > most:
        raise ParsingConversionError(
            f"--classes {n} needs the classes {paper_class_names(n)}, but {PARSER_LIMITS[fmt]}: "
            f"with --format {fmt} use --classes {most} or fewer")
    rels = find_label_maps(src)
    lut = canonical_fold_table(paper_class_names(n))[parser_table(fmt)]
    lut[parser_table(fmt) < 0] = -1  # labels the set does not have stay errors
    label_set = f"{fmt} label set (0..{len(PARSER_LABELS[fmt]) - 1} and {IGNORE} = ignore)"
    targets = [os.path.join(out, os.path.splitext(r)[0] + ".png") for r in rels]
    if not overwrite:
        existing = [t for t in targets if os.path.exists(t)]
        if existing:
            raise ParsingConversionError(
                f"{len(existing)} masks already exist (first: {existing[0]}); pass --overwrite "
                f"to replace them")
    # pass 1: read and check everything; pass 2: write
    for rel in rels:
        path = os.path.join(src, rel)
        apply_table(read_parser_map(path), lut, path, label_set)
    counts = np.zeros(256, dtype=np.int64)
    for rel, target in zip(rels, targets):
        path = os.path.join(src, rel)
        mask = apply_table(read_parser_map(path), lut, path, label_set).astype(np.uint8)
        counts += np.bincount(mask.ravel(), minlength=256)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        Image.fromarray(mask, mode="L").save(target)
    total = max(1, int(counts.sum()))
    fractions = {name: counts[v] / total for v, name in enumerate(CANONICAL)}
    fractions["ignore"] = counts[IGNORE] / total
    return {"files": len(rels), "classes": n, "fractions": fractions}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rganet_plugin.tools convert-parsing",
                                description=__doc__.split("\n\n")[0],
                                epilog="Mapping tables: docs/part_labels.md")
    p.add_argument("--src", required=True, help="folder of the parser's label maps")
    p.add_argument("--format", required=True, choices=list(PARSER_LABELS),
                   help="the label set of the maps")
    p.add_argument("--out", required=True,
                   help="masks folder, e.g. <dataset_dir>/masks/bounding_box_train")
    p.add_argument("--classes", type=int, default=None, choices=sorted(PAPER_CLASS_NAMES),
                   help="merge into the paper's N classes (default: every part the set has)")
    p.add_argument("--overwrite", action="store_true", help="replace existing masks")
    args = p.parse_args(argv)
    try:
        res = convert_folder(args.src, args.format, args.out, args.classes, args.overwrite)
    except (ParsingConversionError, LabelValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = paper_class_names(res["classes"])
    print(f"{res['files']} masks written to {args.out} ({args.format} -> N = {res['classes']}: "
          f"{', '.join(names)})")
    print("| part | pixels |\n|---|---|")
    for part, frac in res["fractions"].items():
        if frac > 0 or part in names:
            print(f"| {part} | {100 * frac:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
