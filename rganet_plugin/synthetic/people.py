"""The people of the generated datasets: an identity's appearance and one drawn view of it.

Each identity is a "paper doll" with four labelled regions, the classes of RGANet's RGM:
head (hair/hat/face/neck), upper body (garment with one of six patterns, sleeves, hands), lower
body (trousers, shorts or skirt) and feet (shoes). :func:`_draw_person` draws a label map (the part
mask) and a material map at once; :func:`_colourise` paints the materials with the identity's
colours and patterns.
"""
from __future__ import annotations

import colorsys
import math
from typing import Any, Dict, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: Label values of the pseudo part masks.
PART_LABELS = {0: "background", 1: "head", 2: "upper body", 3: "lower body", 4: "foot"}

# material ids of the colour pass
_BG, _SKIN, _HAIR, _HAT, _UPPER, _LOWER, _SHOES, _BAG = range(8)

_SKIN_TONES = [(241, 194, 167), (224, 172, 135), (198, 134, 94), (141, 85, 54), (92, 57, 38)]
_HAIR_COLOURS = [(20, 18, 16), (65, 40, 22), (120, 80, 40), (200, 170, 100), (150, 150, 150),
                 (140, 50, 20)]
_PATTERNS = ("solid", "hstripes", "vstripes", "checker", "twotone", "logo")

def _hsv(h, s, v) -> Tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _identity(rng: np.random.Generator) -> Dict[str, Any]:
    """Appearance attributes of one identity."""
    h1 = rng.random()
    upper1 = _hsv(h1, rng.uniform(0.45, 0.95), rng.uniform(0.35, 0.95))
    upper2 = _hsv(h1 + rng.uniform(0.25, 0.75), rng.uniform(0.2, 0.9), rng.uniform(0.3, 1.0))
    h2 = rng.random()
    lower1 = _hsv(h2, rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.85))
    lower2 = _hsv(h2 + 0.5, rng.uniform(0.1, 0.6), rng.uniform(0.2, 0.9))
    shoes = _hsv(rng.random(), rng.uniform(0.0, 0.9), rng.uniform(0.1, 0.95))
    return {
        "skin": _SKIN_TONES[rng.integers(len(_SKIN_TONES))],
        "hair": _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))],
        "long_hair": bool(rng.random() < 0.35),
        "hat": _hsv(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.2, 0.9)) if rng.random() < 0.2 else None,
        "upper": (upper1, upper2),
        "upper_pattern": _PATTERNS[rng.integers(len(_PATTERNS))],
        "upper_period": int(rng.integers(5, 13)),
        "long_sleeves": bool(rng.random() < 0.6),
        "lower": (lower1, lower2),
        "lower_kind": ("trousers", "trousers", "shorts", "skirt")[rng.integers(4)],
        "lower_pattern": ("solid", "solid", "vstripes", "checker")[rng.integers(4)],
        "shoes": shoes,
        "build": float(rng.uniform(0.85, 1.18)),
        "height": float(rng.uniform(0.9, 1.0)),
    }

#: The clothes-changing world's identity cues (``IDENTITY_CUES`` 1, :func:`cue_body`): hair in
#: a wide palette and five styles, skin tones, head size, height, build and leg length.
_CUE_HAIR = [(20, 18, 16), (95, 55, 25), (215, 185, 110), (235, 235, 235), (150, 35, 20),
             (240, 120, 20), (30, 70, 220), (40, 170, 60), (230, 70, 170), (120, 40, 170),
             (20, 180, 190), (240, 220, 30)]
HAIR_STYLES = ("short", "long", "bun", "tall", "bob")


def cue_body(rng: np.random.Generator) -> Dict[str, Any]:
    """Body cues of one identity of the clothes-changing world, large enough to be seen at
    64x32: they replace the default body keys and add ``head_scale``, ``hip``, ``hair_style``."""
    style = HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))]
    skin = np.array(_SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))], float)
    return {
        "skin": tuple(int(v) for v in np.clip(skin + rng.uniform(-12, 12, 3), 0, 255)),
        "hair": _CUE_HAIR[int(rng.integers(len(_CUE_HAIR)))],
        "hair_style": style,
        "long_hair": style == "long",
        "head_scale": float(rng.uniform(0.85, 1.4)),
        "height": float(rng.uniform(0.72, 1.0)),
        "build": float(rng.uniform(0.75, 1.35)),
        "hip": float(rng.uniform(0.46, 0.58)),
    }


#: An identity's upper and lower garment (keys of :func:`_identity`), shared by identities when
#: ``GARMENT_POOL`` > 0.
UPPER_GARMENT_KEYS = ("upper", "upper_pattern", "upper_period", "long_sleeves")
LOWER_GARMENT_KEYS = ("lower", "lower_kind", "lower_pattern")
_GARMENT_STREAM = 12


def share_garments(idents: Dict[int, Dict[str, Any]], pool: int, seed: int) -> None:
    """Dress every identity in an upper and a lower garment drawn from pools of ``pool`` each,
    so that identities share garments and only their combination (with head, hair, shoes and
    build) tells them apart. Pools and choices come from their own random streams."""
    if pool <= 0:
        return
    uppers = [_identity(np.random.default_rng([seed, _GARMENT_STREAM, 0, k])) for k in range(pool)]
    lowers = [_identity(np.random.default_rng([seed, _GARMENT_STREAM, 1, k])) for k in range(pool)]
    for pid, ident in idents.items():
        r = np.random.default_rng([seed, _GARMENT_STREAM, 2, pid])
        u, l = uppers[int(r.integers(pool))], lowers[int(r.integers(pool))]
        ident.update({k: u[k] for k in UPPER_GARMENT_KEYS})
        ident.update({k: l[k] for k in LOWER_GARMENT_KEYS})


class _Canvas:
    """Draws each shape into a label map and a material map at once."""

    def __init__(self, h: int, w: int):
        self.label = Image.new("L", (w, h), 0)
        self.material = Image.new("L", (w, h), _BG)
        self._dl = ImageDraw.Draw(self.label)
        self._dm = ImageDraw.Draw(self.material)

    def polygon(self, pts, label, mat):
        pts = [(float(x), float(y)) for x, y in pts]
        self._dl.polygon(pts, fill=label)
        self._dm.polygon(pts, fill=mat)

    def ellipse(self, box, label, mat):
        self._dl.ellipse(box, fill=label)
        self._dm.ellipse(box, fill=mat)

    def chord(self, box, start, end, label, mat):
        self._dl.chord(box, start, end, fill=label)
        self._dm.chord(box, start, end, fill=mat)


def _limb(p0, p1, w0, w1):
    """Quadrilateral of a limb from p0 (width w0) to p1 (width w1)."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    n = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / n, dx / n
    return [(p0[0] + nx * w0 / 2, p0[1] + ny * w0 / 2), (p1[0] + nx * w1 / 2, p1[1] + ny * w1 / 2),
            (p1[0] - nx * w1 / 2, p1[1] - ny * w1 / 2), (p0[0] - nx * w0 / 2, p0[1] - ny * w0 / 2)]


def _lerp(p0, p1, t):
    return (p0[0] + (p1[0] - p0[0]) * t, p0[1] + (p1[1] - p0[1]) * t)


def _draw_person(ident, rng, h, w, frame=None) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
    """Label map and material map (uint8 HxW) of one view of one identity.

    ``frame`` (a shifted view, :mod:`.framing`): ``scale`` of the person's height, ``top`` (0-1
    of the free rows above it) and ``dx`` (fraction of the width); ``None`` draws the default
    framing, with the same random draws either way.
    """
    cv = _Canvas(h, w)
    ph = h * 0.9 * ident["height"] * rng.uniform(0.93, 1.04)
    ty = (h - ph) * rng.uniform(0.2, 0.8)
    cx = w / 2 + rng.uniform(-0.07, 0.07) * w
    if frame is not None:
        ph *= frame["scale"]
        ty = (h - ph) * frame["top"]
        cx += frame["dx"] * w
    b = ident["build"]
    stride = rng.uniform(-1.0, 1.0)
    swing = rng.uniform(-1.0, 1.0)

    y_sh, y_hip, y_ank = ty + 0.15 * ph, ty + ident.get("hip", 0.52) * ph, ty + 0.94 * ph
    sh_w, hip_w = 0.12 * ph * b, 0.095 * ph * b
    hands = []
    # legs
    for side in (-1, 1):
        hip = (cx + side * 0.045 * ph * b, y_hip - 2)
        ank = (cx + side * (0.04 * ph) + side * stride * 0.05 * ph, y_ank)
        knee = _lerp(hip, ank, 0.5)
        lw0, lw1 = 0.075 * ph * b, 0.05 * ph
        kind = ident["lower_kind"]
        if kind == "trousers":
            cv.polygon(_limb(hip, ank, lw0, lw1), 3, _LOWER)
        else:
            cv.polygon(_limb(hip, ank, lw0 * 0.85, lw1 * 0.85), 3, _SKIN)
            if kind == "shorts":
                cv.polygon(_limb(hip, _lerp(hip, knee, 0.85), lw0, lw0 * 0.95), 3, _LOWER)
        foot_len = 0.085 * ph
        fy = y_ank - 0.01 * ph
        cv.ellipse([ank[0] - foot_len / 2, fy, ank[0] + foot_len / 2, fy + 0.055 * ph], 4, _SHOES)
    if ident["lower_kind"] == "skirt":
        y_sk = ty + 0.75 * ph
        cv.polygon([(cx - hip_w, y_hip - 4), (cx + hip_w, y_hip - 4),
                    (cx + hip_w * 1.45, y_sk), (cx - hip_w * 1.45, y_sk)], 3, _LOWER)
    else:
        cv.polygon([(cx - hip_w, y_hip - 4), (cx + hip_w, y_hip - 4),
                    (cx + hip_w, y_hip + 0.05 * ph), (cx - hip_w, y_hip + 0.05 * ph)], 3, _LOWER)
    # torso
    cv.polygon([(cx - sh_w, y_sh), (cx + sh_w, y_sh), (cx + hip_w, y_hip), (cx - hip_w, y_hip)], 2, _UPPER)
    # arms
    arm_len = 0.36 * ph
    for side in (-1, 1):
        sh = (cx + side * (sh_w - 0.02 * ph), y_sh + 0.02 * ph)
        ang = math.radians(6 + side * swing * 14) * side
        hand = (sh[0] + math.sin(ang) * arm_len, sh[1] + math.cos(ang) * arm_len)
        aw0, aw1 = 0.055 * ph * b, 0.04 * ph
        if ident["long_sleeves"]:
            cv.polygon(_limb(sh, hand, aw0, aw1), 2, _UPPER)
        else:
            cv.polygon(_limb(sh, hand, aw0 * 0.85, aw1), 2, _SKIN)
            cv.polygon(_limb(sh, _lerp(sh, hand, 0.4), aw0, aw0), 2, _UPPER)
        r = 0.025 * ph
        cv.ellipse([hand[0] - r, hand[1] - r, hand[0] + r, hand[1] + r], 2, _SKIN)
        hands.append(hand)
    # neck, head, hair, hat
    hx = cx + rng.uniform(-0.01, 0.01) * ph
    rx, ry = 0.05 * ph, 0.066 * ph
    hy = ty + 0.075 * ph
    if "head_scale" in ident:  # the clothes-changing world's head size, resting on the neck
        rx, ry = rx * ident["head_scale"], ry * ident["head_scale"]
        hy = y_sh - 0.02 * ph - ry * 0.9
    style = ident.get("hair_style")
    if ident["long_hair"]:
        cv.polygon([(hx - rx * 1.1, hy), (hx + rx * 1.1, hy), (hx + rx * 1.2, y_sh + 0.06 * ph),
                    (hx - rx * 1.2, y_sh + 0.06 * ph)], 1, _HAIR)
    cv.polygon([(hx - rx * 0.45, hy), (hx + rx * 0.45, hy), (hx + rx * 0.5, y_sh + 2),
                (hx - rx * 0.5, y_sh + 2)], 1, _SKIN)
    box = [hx - rx, hy - ry, hx + rx, hy + ry]
    cv.ellipse(box, 1, _SKIN)
    if style == "tall":
        cv.chord([hx - rx * 1.05, hy - ry * 1.7, hx + rx * 1.05, hy + ry * 0.9], 180, 360, 1, _HAIR)
    else:
        cv.chord([hx - rx * 1.05, hy - ry * 1.08, hx + rx * 1.05, hy + ry * 0.9], 180, 360, 1, _HAIR)
    if style == "bun":
        cv.ellipse([hx - rx * 0.6, hy - ry * 1.75, hx + rx * 0.6, hy - ry * 0.8], 1, _HAIR)
    elif style == "bob":  # hair down both sides of the face to the chin
        for side in (-1, 1):
            cv.polygon([(hx + side * rx * 0.75, hy - ry * 0.3), (hx + side * rx * 1.2, hy - ry * 0.3),
                        (hx + side * rx * 1.2, hy + ry * 1.0), (hx + side * rx * 0.75, hy + ry * 1.0)],
                       1, _HAIR)
    if ident["hat"] is not None:
        cv.chord([hx - rx * 1.15, hy - ry * 1.2, hx + rx * 1.15, hy + ry * 0.4], 180, 360, 1, _HAT)
    label = np.asarray(cv.label, dtype=np.uint8).copy()
    material = np.asarray(cv.material, dtype=np.uint8).copy()
    geom = {"cx": cx, "ty": ty, "ph": ph, "y_sh": y_sh, "y_hip": y_hip, "sh_w": sh_w, "hip_w": hip_w,
            "hands": hands}
    return label, material, geom


def _pattern(kind, c1, c2, period, yy, xx, geom, region_top, region_bottom) -> np.ndarray:
    """Colours (n x 3) of a garment pattern at pixel coordinates ``yy``, ``xx`` (1-D)."""
    if kind == "solid":
        sel = np.zeros(yy.shape, bool)
    elif kind == "hstripes":
        sel = ((yy - geom["ty"]) // period) % 2 == 1
    elif kind == "vstripes":
        sel = ((xx - geom["cx"] + 1000) // period) % 2 == 1
    elif kind == "checker":
        sel = (((yy - geom["ty"]) // period + (xx - geom["cx"] + 1000) // period) % 2) == 1
    elif kind == "twotone":
        sel = yy > (region_top + region_bottom) / 2
    else:  # logo: a block on the chest
        chest = region_top + 0.3 * (region_bottom - region_top)
        half = 0.045 * geom["ph"]
        sel = (np.abs(xx - geom["cx"]) < half) & (np.abs(yy - chest) < half)
    return np.where(sel[:, None], np.array(c2, np.float32), np.array(c1, np.float32))


def _colourise(ident, material, geom, h, w):
    out = np.zeros((h, w, 3), np.float32)
    m = material
    out[m == _SKIN] = ident["skin"]
    out[m == _HAIR] = ident["hair"]
    if ident["hat"] is not None:
        out[m == _HAT] = ident["hat"]
    out[m == _SHOES] = ident["shoes"]
    if ident.get("bag") is not None:  # only identities of a BAGS_PERCENT > 0 set carry one
        out[m == _BAG] = ident["bag"]["colour"]
    for mat, colours, kind, period, top, bottom in (
            (_UPPER, ident["upper"], ident["upper_pattern"], ident["upper_period"], geom["y_sh"], geom["y_hip"]),
            (_LOWER, ident["lower"], ident["lower_pattern"], 7, geom["y_hip"], h)):
        ys, xs = np.nonzero(m == mat)
        if len(ys):
            out[ys, xs] = _pattern(kind, *colours, period, ys.astype(np.float32), xs.astype(np.float32),
                                   geom, top, bottom)
    # cylinder shading across the body
    xx = np.arange(w, dtype=np.float32)
    shade = 1.0 - 0.3 * np.clip(((xx - geom["cx"]) / (0.2 * geom["ph"])) ** 2, 0.0, 1.0)
    out *= shade[None, :, None]
    return out
