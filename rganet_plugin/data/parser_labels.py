"""The label sets of the common human parsers (LIP, CIHP, ATR, Pascal-Person-Part) and the
canonical part (:mod:`rganet_plugin.data.part_labels`) each label becomes: what
``python -m rganet_plugin.tools convert-parsing`` reads (docs/part_labels.md has the tables)."""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from .part_labels import CANONICAL_VALUE, IGNORE, PAPER_CLASS_NAMES

__all__ = ["PARSER_LABELS", "PARSER_LIMITS", "parser_formats", "parser_max_classes",
           "parser_table"]

# Label sets of the common human-parsing datasets and the canonical part each label becomes.
# Indices and names: LIP, ATR and Pascal-Person-Part as in SCHP's utils/dataset_settings.py
# (GoGoDuck912/Self-Correction-Human-Parsing, whose checkpoints users run); CIHP as LIP but
# index 10 is "Torso-skin" (CIHP_PGN, Engineering-Course/CIHP_PGN; its datasets/CIHP/tool/
# reverse_label.m swaps the left/right pairs 14/15, 16/17, 18/19 like LIP's). docs/part_labels.md
# has the tables with the reasons for the less obvious rows.
_LIP_LIKE = (
    ("Background", "background"), ("Hat", "head"), ("Hair", "head"), ("Glove", "upper body"),
    ("Sunglasses", "head"), ("Upper-clothes", "upper body"), ("Dress", "upper body"),
    ("Coat", "upper body"), ("Socks", "foot"), ("Pants", "lower body"),
    ("Jumpsuits", "upper body"), ("Scarf", "upper body"), ("Skirt", "lower body"),
    ("Face", "head"), ("Left-arm", "upper body"), ("Right-arm", "upper body"),
    ("Left-leg", "lower body"), ("Right-leg", "lower body"), ("Left-shoe", "foot"),
    ("Right-shoe", "foot"),
)
PARSER_LABELS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "lip": _LIP_LIKE,
    "cihp": _LIP_LIKE[:10] + (("Torso-skin", "upper body"),) + _LIP_LIKE[11:],
    "atr": (
        ("Background", "background"), ("Hat", "head"), ("Hair", "head"),
        ("Sunglasses", "head"), ("Upper-clothes", "upper body"), ("Skirt", "lower body"),
        ("Pants", "lower body"), ("Dress", "upper body"), ("Belt", "lower body"),
        ("Left-shoe", "foot"), ("Right-shoe", "foot"), ("Face", "head"),
        ("Left-leg", "lower body"), ("Right-leg", "lower body"), ("Left-arm", "upper body"),
        ("Right-arm", "upper body"), ("Bag", "bags"), ("Scarf", "upper body"),
    ),
    "pascal-person-part": (
        ("Background", "background"), ("Head", "head"), ("Torso", "upper body"),
        ("Upper Arms", "upper body"), ("Lower Arms", "upper body"),
        ("Upper Legs", "lower body"), ("Lower Legs", "lower body"),
    ),
}
#: what a label set cannot tell apart (why its largest N is smaller than 5)
PARSER_LIMITS: Dict[str, str] = {
    "lip": "LIP has no bag label (bags are background)",
    "cihp": "CIHP has no bag label (bags are background)",
    "atr": "",
    "pascal-person-part": ("Pascal-Person-Part has no foot or bag label (its 'Lower Legs' "
                           "include the feet)"),
}


def parser_formats() -> List[str]:
    return list(PARSER_LABELS)


def parser_max_classes(fmt: str) -> int:
    """The largest paper N whose classes all appear in the label set ``fmt``."""
    parts = {c for _, c in _parser(fmt)}
    return max(n for n, names in PAPER_CLASS_NAMES.items() if set(names) <= parts)


def parser_table(fmt: str) -> np.ndarray:
    """A 256-entry lookup table: parser label -> canonical value (255 stays ignore; -1 for
    labels the set does not have)."""
    lut = np.full(256, -1, dtype=np.int64)
    for i, (_, part) in enumerate(_parser(fmt)):
        lut[i] = CANONICAL_VALUE[part]
    lut[IGNORE] = IGNORE
    return lut


def _parser(fmt: str):
    if fmt not in PARSER_LABELS:
        raise ValueError(f"unknown parser label set {fmt!r}; known: {', '.join(PARSER_LABELS)}")
    return PARSER_LABELS[fmt]
