"""Words for what the person generator draws: colour names and captions in varied wording.

The CLIP pre-training pairs (:mod:`rganet_plugin.synthetic.image_text`) are captioned from the
generator's own attributes (hair, hat, garment colours, patterns and types, trousers / shorts /
skirt, shoes, the occluder, the scene) and from which body parts are in view. A caption never
names an identity and carries no mask: it says what a person looking at the picture would say.

Captions use the body-part words of the paper's RGM classes ("head", "upper body", "lower body",
"foot") among synonyms, in sentences whose order and phrasing are drawn at random, so the text
tower cannot key on one template.
"""
from __future__ import annotations

import colorsys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = ["colour_name", "describe_person", "caption", "PART_KEYS"]

#: Body-part keys of the generator's label values 1..4 (0 is background).
PART_KEYS = ("head", "upper", "lower", "foot")


def colour_name(rgb: Sequence[float]) -> str:
    """A plain English name of an RGB colour (0-255): black, white, grey, red, ... brown."""
    r, g, b = (float(c) / 255.0 for c in rgb[:3])
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    if v < 0.22:
        return "black"
    if s < 0.18:
        if v > 0.82:
            return "white"
        return "light grey" if v > 0.6 else ("grey" if v > 0.38 else "dark grey")
    hue = h * 360.0
    if hue < 15 or hue >= 345:
        name = "red" if v > 0.45 else "dark red"
    elif hue < 40:
        name = "orange" if v > 0.65 and s > 0.45 else "brown"
    elif hue < 68:
        name = "yellow" if v > 0.6 else "olive"
    elif hue < 160:
        name = "green" if v > 0.45 else "dark green"
    elif hue < 195:
        name = "teal" if v < 0.6 else "cyan"
    elif hue < 255:
        name = "blue" if v > 0.4 else "navy"
    elif hue < 290:
        name = "purple"
    else:
        name = "pink" if v > 0.55 else "purple"
    if s < 0.4 and name in ("red", "blue", "green", "purple", "pink"):
        name = "pale " + name
    return name


_SKIN = ("fair", "light", "tan", "brown", "dark")
_HAIR = ("black", "dark brown", "brown", "blond", "grey", "red")
_UPPER_GARMENT = {True: ("shirt", "sweater", "jacket", "long-sleeved top"),
                  False: ("t-shirt", "short-sleeved shirt", "polo shirt", "top")}
_UPPER_PATTERN = {
    "solid": ("plain {c1} {g}", "{c1} {g}"),
    "hstripes": ("{c1} {g} with {c2} horizontal stripes", "horizontally striped {c1} and {c2} {g}"),
    "vstripes": ("{c1} {g} with {c2} vertical stripes", "vertically striped {c1} and {c2} {g}"),
    "checker": ("{c1} and {c2} checked {g}", "{c1} {g} with a {c2} check pattern"),
    "twotone": ("{c1} and {c2} two-tone {g}", "{g} that is {c1} on top and {c2} below"),
    "logo": ("{c1} {g} with a {c2} logo on the chest", "{c1} {g} with a {c2} print"),
}
_LOWER_PATTERN = {"solid": "", "vstripes": " with {c2} stripes", "checker": " with a {c2} check"}
_LOWER_WORD = {"trousers": ("trousers", "pants", "long trousers"), "shorts": ("shorts",),
               "skirt": ("skirt",)}
_OCCLUDER_WORDS = {"car": "a {c} car", "wall": "a {c} brick wall", "tree": "a green tree",
                   "pillar": "a {c} pillar"}


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def describe_person(ident: Mapping) -> Dict[str, Dict[str, str]]:
    """Phrases for each body part of an identity (as drawn by the generator), several wordings
    each: ``{"head": {"hair": ..., "hat": ...}, "upper": {...}, ...}``."""
    skin = _SKIN[min(range(5), key=lambda i: abs(sum(ident["skin"]) - (700 - 130 * i)))]
    hair = colour_name(ident["hair"])
    hair = {"black": "black", "dark grey": "black", "brown": "brown", "dark red": "red",
            "red": "red", "orange": "ginger", "grey": "grey", "light grey": "grey",
            "yellow": "blond", "olive": "blond"}.get(hair, hair)
    head = {"hair": f"{'long' if ident['long_hair'] else 'short'} {hair} hair", "skin": f"{skin} skin"}
    if ident.get("hat") is not None:
        head["hat"] = f"a {colour_name(ident['hat'])} cap"
    c1, c2 = (colour_name(c) for c in ident["upper"])
    upper = {"c1": c1, "c2": c2, "pattern": ident["upper_pattern"],
             "sleeves": "long" if ident["long_sleeves"] else "short"}
    l1, l2 = (colour_name(c) for c in ident["lower"])
    lower = {"c1": l1, "c2": l2, "kind": ident["lower_kind"], "pattern": ident["lower_pattern"]}
    foot = {"shoes": f"{colour_name(ident['shoes'])} shoes"}
    return {"head": head, "upper": upper, "lower": lower, "foot": foot}


def _upper_phrase(d, rng) -> str:
    g = _pick(rng, _UPPER_GARMENT[d["sleeves"] == "long"])
    c2 = d["c2"] if d["c2"] != d["c1"] else "white"
    return _pick(rng, _UPPER_PATTERN[d["pattern"]]).format(c1=d["c1"], c2=c2, g=g)


def _lower_phrase(d, rng) -> str:
    word = _pick(rng, _LOWER_WORD[d["kind"]])
    c2 = d["c2"] if d["c2"] != d["c1"] else "white"
    art = "a " if d["kind"] == "skirt" else ""
    return f"{art}{d['c1']} {word}" + _LOWER_PATTERN[d["pattern"]].format(c2=c2)


def _head_phrase(d, rng) -> str:
    bits = [d["hair"]]
    if "hat" in d:
        bits.append(d["hat"])
    if rng.random() < 0.4:
        bits.append(d["skin"])
    rng.shuffle(bits)
    return _join(bits)


def _join(words: List[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# Sentences per part; "{x}" is the part's phrase. The part's own word appears in most of them.
_PART_SENTENCES = {
    "head": ("{x} on the head", "the head has {x}", "head: {x}", "{x}", "a head with {x}"),
    "upper": ("a {x} on the upper body", "the upper body wears a {x}", "upper body: a {x}",
              "wearing a {x}", "a {x} on the torso", "upper body in a {x}"),
    "lower": ("{x} on the lower body", "the lower body wears {x}", "lower body: {x}",
              "{x} on the legs", "lower body in {x}"),
    "foot": ("{x} on the foot", "{x} on each foot", "foot: {x}", "wearing {x}", "the foot in {x}",
             "{x} on the feet"),
}
_PART_NAMES = {"head": "head", "upper": "upper body", "lower": "lower body", "foot": "foot"}
_HIDDEN = {"out of frame": ("the {p} is out of the frame", "the {p} is not in the picture",
                            "no {p} in view"),
           "occluded": ("the {p} is hidden behind {o}", "{o} covers the {p}",
                        "the {p} is blocked by {o}")}


_PHRASE = {"head": lambda d, r: _head_phrase(d, r), "upper": lambda d, r: _upper_phrase(d, r),
           "lower": lambda d, r: _lower_phrase(d, r), "foot": lambda d, r: d["shoes"]}


def _alone_caption(parts, k: str, rng: np.random.Generator) -> str:
    x = _PHRASE[k](parts[k], rng)
    if k == "upper":
        x = "a " + x
    name = _PART_NAMES[k]
    art = "an" if name[0] in "aeiou" else "a"
    forms = [f"{art} {name} part of a person: {x}", f"{art} {name} part of a person with {x}",
             f"the {name} of a person, {x}", f"{art} {name} part of a person."]
    if k != "head":
        forms.append(f"a photo of {x}")
    text = _pick(rng, forms)
    return text if text.endswith(".") else text + "."


def caption(parts: Mapping[str, Dict[str, str]], visible: Mapping[str, float],
            rng: np.random.Generator, occluder: Optional[Tuple[str, str]] = None,
            scene: Optional[str] = None, visible_thresh: float = 0.5, alone: bool = False) -> str:
    """One caption of a view.

    ``parts`` from :func:`describe_person`; ``visible`` the fraction of each part's pixels in view
    (keys of :data:`PART_KEYS`); ``occluder`` ``(kind, colour name)`` when one is drawn; ``scene``
    a short phrase for the background. Parts with at least ``visible_thresh`` of their pixels in
    view are described, mostly (each is left out with a small probability, as people do); parts
    with almost nothing in view are said to be hidden (by the occluder) or out of the frame.
    ``alone``: a part shown by itself (a cutout): it is named and described, nothing else.
    """
    shown = ([k for k in PART_KEYS if visible.get(k, 0.0) >= visible_thresh]
             or [max(PART_KEYS, key=lambda k: visible.get(k, 0.0))])  # the most visible one
    if alone:
        return _alone_caption(parts, shown[0], rng)
    gone = [k for k in PART_KEYS if visible.get(k, 0.0) < 0.15]
    described = [k for k in shown if rng.random() < 0.85] or shown[:1]
    phrases = []
    for k in described:
        x = _PHRASE[k](parts[k], rng)
        phrases.append(_pick(rng, _PART_SENTENCES[k]).format(x=x))
    whole = len(shown) == len(PART_KEYS)
    if whole:
        opener = _pick(rng, ("a person", "a photo of a person", "a pedestrian", "a full-body photo "
                             "of a person", "a person walking"))
    else:
        names = [_PART_NAMES[k] for k in shown] or ["part"]
        joined = _join(names)
        art = "an" if joined[0] in "aeiou" else "a"
        opener = _pick(rng, (f"the {joined} of a person", f"{art} {joined} part of a person",
                             f"a photo of the {joined} of a person"))
    plain = not phrases[0].startswith(("the ", "wearing", "a head with")) and ":" not in phrases[0]
    text = opener + (" with " if plain and rng.random() < 0.5 else ", ") + ", ".join(phrases)
    hidden = []
    for k in gone:
        if rng.random() < 0.7:
            if occluder is not None and visible.get(k + "_occluded", 0.0) > 0.5:
                o = _OCCLUDER_WORDS[occluder[0]].format(c=occluder[1])
                hidden.append(_pick(rng, _HIDDEN["occluded"]).format(p=_PART_NAMES[k], o=o))
            else:
                hidden.append(_pick(rng, _HIDDEN["out of frame"]).format(p=_PART_NAMES[k]))
    if hidden:
        text += "; " + ", ".join(hidden)
    elif occluder is not None and rng.random() < 0.8:
        o = _OCCLUDER_WORDS[occluder[0]].format(c=occluder[1])
        text += "; " + _pick(rng, (f"partly behind {o}", f"{o} in front", f"next to {o}"))
    if scene and rng.random() < 0.5:
        text += f", {scene}"
    return text + "."
