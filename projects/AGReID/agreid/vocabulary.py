"""AG-ReID's attribute vocabulary: groups, their values, and the prompts that name each value.

The groups are what the person CLIP's pre-training captions name (``rganet_plugin.synthetic.
captions``): the upper garment's colour, sleeves and pattern, the lower garment's colour and kind
(trousers / shorts / skirt), the hair length, a cap, the shoes' colour. Bags are drawn only with
``BAGS_PERCENT`` > 0 and no caption names them, so the person CLIP has no word for them: there is
no bag group.

Colours: the captions use 23 colour names (``colour_name``); a value here is a coarse colour
(:data:`COLOURS`) whose prompts say each of its names ("blue" also says "navy", "pale blue",
"cyan"): prompt ensembling over synonyms and sentence templates (``MODEL.AGREID.LABELS.ENSEMBLE``).
The templates follow the captions' own sentences ("upper body: a red t-shirt").

:func:`true_attributes` reads what the generator drew (an identity's appearance, from
``rganet_plugin.synthetic.occluded_duke.identities``) in the same values, so pseudo-label accuracy
can be measured.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

__all__ = ["COLOURS", "GROUPS", "PART_OF_GROUP", "group_values", "group_prompts",
           "true_attributes", "check_groups"]

#: coarse colour -> the caption colour names it covers (``captions.colour_name``'s outputs)
COLOURS: Dict[str, Tuple[str, ...]] = {
    "black": ("black",),
    "white": ("white",),
    "grey": ("grey", "light grey", "dark grey"),
    "red": ("red", "dark red", "pale red"),
    "brown": ("brown", "orange"),
    "yellow": ("yellow", "olive"),
    "green": ("green", "dark green", "pale green"),
    "blue": ("blue", "navy", "pale blue", "cyan", "teal"),
    "purple": ("purple", "pale purple"),
    "pink": ("pink", "pale pink"),
}
_COARSE = {name: coarse for coarse, names in COLOURS.items() for name in names}

_UPPER_WORDS = ("t-shirt", "shirt", "top")
#: group -> (value -> phrases naming it); the group's templates wrap each phrase
GROUPS: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "upper_colour": {c: tuple(f"{n} {w}" for n in names for w in _UPPER_WORDS)
                     for c, names in COLOURS.items()},
    "upper_sleeves": {"long": ("shirt", "sweater", "jacket", "long-sleeved top"),
                      "short": ("t-shirt", "short-sleeved shirt", "polo shirt")},
    "upper_pattern": {"solid": ("plain shirt",), "hstripes": ("shirt with horizontal stripes",),
                      "vstripes": ("shirt with vertical stripes",),
                      "checker": ("checked shirt", "shirt with a check pattern"),
                      "twotone": ("two-tone shirt",), "logo": ("shirt with a logo on the chest",)},
    "lower_colour": {c: tuple(f"{n} {w}" for n in names for w in ("trousers", "shorts", "skirt"))
                     for c, names in COLOURS.items()},
    "lower_type": {"trousers": ("trousers", "pants", "long trousers"), "shorts": ("shorts",),
                   "skirt": ("a skirt",)},
    "hair": {"long": ("long hair",), "short": ("short hair",)},
    "headwear": {"cap": ("a cap", "hair and a cap"), "none": ("hair", "short hair", "long hair")},
    "shoes_colour": {c: tuple(f"{n} shoes" for n in names) for c, names in COLOURS.items()},
}
_TEMPLATES = {
    "upper": ("a person wearing a {}.", "upper body: a {}.", "a {} on the upper body."),
    "lower": ("a person wearing {}.", "lower body: {}.", "{} on the lower body."),
    "head": ("a person with {}.", "head: {}.", "{} on the head."),
    "foot": ("a person wearing {}.", "foot: {}.", "{} on the feet."),
}
#: the body part each group describes (its template set, and its rows for ``VIEW: band``)
PART_OF_GROUP = {"upper_colour": "upper", "upper_sleeves": "upper", "upper_pattern": "upper",
                 "lower_colour": "lower", "lower_type": "lower", "hair": "head",
                 "headwear": "head", "shoes_colour": "foot"}


def check_groups(groups: Sequence[str]) -> List[str]:
    """``groups`` as a list; an unknown or repeated name is a ``ValueError`` naming the known."""
    groups = list(groups)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown attribute group(s) {unknown}; known: {list(GROUPS)}")
    if len(set(groups)) != len(groups) or not groups:
        raise ValueError(f"attribute groups must be distinct and at least one, got {groups}")
    return groups


def group_values(group: str) -> List[str]:
    return list(GROUPS[group])


def group_prompts(group: str, ensemble: str = "mean") -> List[List[str]]:
    """Per value, its prompts: every phrase in every template (``ensemble`` "mean"), or the
    first phrase in the first template ("first")."""
    templates = _TEMPLATES[PART_OF_GROUP[group]]
    out = []
    for phrases in GROUPS[group].values():
        texts = [t.format(p) for p in phrases for t in templates]
        out.append(texts if ensemble == "mean" else texts[:1])
    return out


def true_attributes(ident: Mapping) -> Dict[str, str]:
    """The value of every group for an identity as the generator drew it (``people._identity``)."""
    from rganet_plugin.synthetic.captions import colour_name

    return {
        "upper_colour": _COARSE[colour_name(ident["upper"][0])],
        "upper_sleeves": "long" if ident["long_sleeves"] else "short",
        "upper_pattern": ident["upper_pattern"],
        "lower_colour": _COARSE[colour_name(ident["lower"][0])],
        "lower_type": ident["lower_kind"],
        "hair": "long" if ident["long_hair"] else "short",
        "headwear": "none" if ident.get("hat") is None else "cap",
        "shoes_colour": _COARSE[colour_name(ident["shoes"])],
    }
