"""A generated occluded person ReID dataset in the real Occluded-Duke layout and file naming.

No public ReID dataset can be downloaded on the project's machines, so tests, CI and the demo
train on this one. It is written exactly as Occluded-DukeMTMC is laid out::

    Occluded_Duke/
    ├── bounding_box_train/0005_c2_f0046985.jpg   (9% occluded, as the real set)
    ├── query/...                                  (100% occluded)
    ├── bounding_box_test/...                      (10% occluded)
    ├── masks/bounding_box_train/0005_c2_f0046985.png   pseudo part labels of each training image
    └── synthetic_manifest.json                    parameters and one record per image

so the real :class:`~rganet_plugin.data.datasets.occluded_duke.OccludedDuke` loader reads it.

What is drawn. Each identity is a stick-free "paper doll" with four labelled regions, the
classes of the paper's RGM: head (hair/hat/face/neck), upper body (garment with one of six
patterns, sleeves, hands), lower body (trousers, shorts or skirt) and feet (shoes). Colours,
patterns, garment types, hair, hat and build are drawn per identity, so a tiny CNN/ViT learns the
identities at 256x128 in minutes on a CPU. Every image varies scale, position, stride, arm swing
and facing (horizontal flip); each camera has its own background (a scene texture with a floor
line), colour cast and noise level. Occluded images get one occluder covering 20-50% of the
image: a car or a wall across the lower part (60%), a tree or a pillar on one side (40%), which
is where occluders sit in Occluded-Duke.

Part masks of every image (``masks/<split folder>/<stem>.png``, uint8): 0 background, 1 head,
2 upper body, 3 lower body, 4 foot; occluder pixels are 0, and the manifest records for each image
which fraction of each part the occluder covers (``part_covered``). The training images' masks
feed the prompt-learning stage (``L_seg``) in place of a human
parser's output.

Determinism: everything derives from ``numpy.random.default_rng`` seeded by ``seed`` and the
parameters; the same parameters give byte-identical files with the same numpy/Pillow builds.

Caching: :func:`ensure_synthetic_occluded_duke` (used by the registered loader) generates into
``<root>/synthetic/<params hash>/Occluded_Duke`` on first use. Generation writes into a temporary
folder that is renamed into place (atomic), under an advisory file lock, so two processes that
start at once generate it once and never see a half-written dataset.
"""
from __future__ import annotations

import colorsys
import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .common import register_dataset
from .occluded_duke import OccludedDuke, parse_duke_name

try:  # advisory lock (POSIX); without it the atomic rename alone keeps the cache consistent
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger(__name__)

__all__ = [
    "GENERATOR_VERSION",
    "DRAWING_VERSION",
    "SYNTHETIC_DEFAULTS",
    "PART_LABELS",
    "OCCLUSION_RATIOS",
    "MANIFEST_NAME",
    "generate_occluded_duke",
    "ensure_synthetic_occluded_duke",
    "synthetic_params",
    "synthetic_cache_dir",
    "SyntheticOccludedDuke",
]

#: Bump when the pixels change (people, scenes, occluders): the pre-trained CLIP's pairs and the
#: ReID data are drawn by the same code, and its weights record this number.
DRAWING_VERSION = 1
#: Bump when the dataset on disk changes (the drawing, the manifest, the masks): it is part of the
#: cache hash, so old caches are not reused. 2: per-part occlusion in the manifest
#: (``part_covered``) and part masks of the query and gallery images (for the mechanism checks).
GENERATOR_VERSION = 2

#: Generation parameters and their defaults (keys of ``DATASETS.SYNTHETIC``, lower-cased).
SYNTHETIC_DEFAULTS: Dict[str, int] = {
    "num_train_ids": 48,
    "num_test_ids": 32,
    "images_per_id": 8,
    "seed": 0,
    "height": 256,
    "width": 128,
    "bags_percent": 0,
    "outfits_per_id": 0,
}

#: Label values of the pseudo part masks.
PART_LABELS = {0: "background", 1: "head", 2: "upper body", 3: "lower body", 4: "foot"}

#: Fraction of occluded images per split, as in Occluded-DukeMTMC.
OCCLUSION_RATIOS = {"train": 0.09, "query": 1.0, "gallery": 0.10}

#: Occluded area per occluded image, as a fraction of the image.
OCCLUDED_AREA = (0.20, 0.50)

MANIFEST_NAME = "synthetic_manifest.json"
DATASET_DIR = "Occluded_Duke"
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
NUM_CAMERAS = 8
JPEG_QUALITY = 90

# material ids of the colour pass
_BG, _SKIN, _HAIR, _HAT, _UPPER, _LOWER, _SHOES = range(7)

_SKIN_TONES = [(241, 194, 167), (224, 172, 135), (198, 134, 94), (141, 85, 54), (92, 57, 38)]
_HAIR_COLOURS = [(20, 18, 16), (65, 40, 22), (120, 80, 40), (200, 170, 100), (150, 150, 150),
                 (140, 50, 20)]
_PATTERNS = ("solid", "hstripes", "vstripes", "checker", "twotone", "logo")
_OCCLUDERS_BOTTOM = ("car", "wall")
_OCCLUDERS_SIDE = ("tree", "pillar")


# ---------------------------------------------------------------------------- parameters
def synthetic_params(synthetic: Any = None, **overrides) -> Dict[str, int]:
    """Normalise generation parameters.

    ``synthetic`` is a dict or a yacs ``CfgNode`` (``DATASETS.SYNTHETIC``) with keys
    ``NUM_TRAIN_IDS``, ``NUM_TEST_IDS``, ``IMAGES_PER_ID``, ``SEED`` (and optionally ``HEIGHT``,
    ``WIDTH``), in any case; ``overrides`` are lower-case keyword arguments. Unknown keys and
    out-of-range values raise ``ValueError``.
    """
    params = dict(SYNTHETIC_DEFAULTS)
    sources = []
    if synthetic is not None:
        if not isinstance(synthetic, Mapping):
            raise ValueError(f"synthetic must be a dict or CfgNode, got {type(synthetic).__name__}")
        sources.append(("synthetic", synthetic))
    sources.append(("keyword", overrides))
    for origin, src in sources:
        for key, value in src.items():
            k = str(key).lower()
            if k not in SYNTHETIC_DEFAULTS:
                raise ValueError(
                    f"unknown {origin} dataset parameter {key!r}; expected one of "
                    f"{[n.upper() for n in SYNTHETIC_DEFAULTS]}"
                )
            if value is None:
                continue
            try:
                iv = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"synthetic dataset parameter {key!r} must be an integer, got {value!r}")
            if isinstance(value, float) and value != iv:
                raise ValueError(f"synthetic dataset parameter {key!r} must be an integer, got {value!r}")
            params[k] = iv
    minimum = {"num_train_ids": 1, "num_test_ids": 1, "images_per_id": 2, "seed": 0,
               "height": 64, "width": 32}
    for k, lo in minimum.items():
        if params[k] < lo:
            raise ValueError(f"synthetic dataset parameter {k.upper()} must be >= {lo}, got {params[k]}")
    if params["num_train_ids"] + params["num_test_ids"] > 9000:
        raise ValueError("NUM_TRAIN_IDS + NUM_TEST_IDS must be <= 9000 (4-digit Duke pids)")
    return params


_LATER_KEYS = ("bags_percent", "outfits_per_id")


def _params_hash(params: Mapping[str, int]) -> str:
    # keys added later are left out at their default value, so existing caches keep their name
    kept = {k: v for k, v in params.items() if not (k in _LATER_KEYS and v == 0)}
    blob = json.dumps({"params": dict(sorted(kept.items())), "version": GENERATOR_VERSION},
                      sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:12]


def synthetic_cache_dir(root: str, synthetic: Any = None, **overrides) -> str:
    """``<root>/synthetic/<hash of params>``: the folder that holds ``Occluded_Duke``."""
    params = synthetic_params(synthetic, **overrides)
    return os.path.join(os.fspath(root), "synthetic", _params_hash(params))


# ---------------------------------------------------------------------------- drawing
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


def _camera(rng: np.random.Generator, h: int, w: int) -> Dict[str, Any]:
    """Background scene (wider than the image, cropped per image), colour cast and a sensor noise
    field (cropped at a random offset per image)."""
    pad = 24
    bw = w + 2 * pad
    base = np.array(_hsv(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.85)), np.float32)
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    bg = np.broadcast_to(base, (h, bw, 3)) * (0.85 + 0.3 * yy)
    bg = np.array(bg, dtype=np.float32)
    # scene blocks: facades / windows / signs
    for _ in range(int(rng.integers(4, 10))):
        x0 = int(rng.integers(0, bw - 8))
        y0 = int(rng.integers(0, int(h * 0.7)))
        bw_ = int(rng.integers(6, max(8, bw // 2)))
        bh_ = int(rng.integers(6, max(8, h // 3)))
        col = np.array(_hsv(rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.2, 0.95)), np.float32)
        bg[y0:y0 + bh_, x0:x0 + bw_] = 0.5 * bg[y0:y0 + bh_, x0:x0 + bw_] + 0.5 * col
    floor_y = int(h * rng.uniform(0.72, 0.88))
    floor = np.array(_hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.7)), np.float32)
    bg[floor_y:] = floor * (0.9 + 0.2 * yy[floor_y:])
    cast = rng.uniform(0.88, 1.12, size=3).astype(np.float32)
    sigma = float(rng.uniform(3.0, 9.0))
    noise = rng.standard_normal(size=(2 * h, 2 * w, 3), dtype=np.float32) * sigma
    return {"bg": bg, "pad": pad, "cast": cast, "noise": noise}


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


def _draw_person(ident, rng, h, w) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
    """Label map and material map (uint8 HxW) of one view of one identity."""
    cv = _Canvas(h, w)
    ph = h * 0.9 * ident["height"] * rng.uniform(0.93, 1.04)
    ty = (h - ph) * rng.uniform(0.2, 0.8)
    cx = w / 2 + rng.uniform(-0.07, 0.07) * w
    b = ident["build"]
    stride = rng.uniform(-1.0, 1.0)
    swing = rng.uniform(-1.0, 1.0)

    y_sh, y_hip, y_ank = ty + 0.15 * ph, ty + 0.52 * ph, ty + 0.94 * ph
    sh_w, hip_w = 0.12 * ph * b, 0.095 * ph * b
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
    # neck, head, hair, hat
    hx = cx + rng.uniform(-0.01, 0.01) * ph
    rx, ry = 0.05 * ph, 0.066 * ph
    hy = ty + 0.075 * ph
    if ident["long_hair"]:
        cv.polygon([(hx - rx * 1.1, hy), (hx + rx * 1.1, hy), (hx + rx * 1.2, y_sh + 0.06 * ph),
                    (hx - rx * 1.2, y_sh + 0.06 * ph)], 1, _HAIR)
    cv.polygon([(hx - rx * 0.45, hy), (hx + rx * 0.45, hy), (hx + rx * 0.5, y_sh + 2),
                (hx - rx * 0.5, y_sh + 2)], 1, _SKIN)
    box = [hx - rx, hy - ry, hx + rx, hy + ry]
    cv.ellipse(box, 1, _SKIN)
    cv.chord([hx - rx * 1.05, hy - ry * 1.08, hx + rx * 1.05, hy + ry * 0.9], 180, 360, 1, _HAIR)
    if ident["hat"] is not None:
        cv.chord([hx - rx * 1.15, hy - ry * 1.2, hx + rx * 1.15, hy + ry * 0.4], 180, 360, 1, _HAT)
    label = np.asarray(cv.label, dtype=np.uint8).copy()
    material = np.asarray(cv.material, dtype=np.uint8).copy()
    geom = {"cx": cx, "ty": ty, "ph": ph, "y_sh": y_sh, "y_hip": y_hip}
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


def _occluder(rng, h, w, kind) -> Tuple[np.ndarray, np.ndarray]:
    """(mask HxW bool, colour HxWx3 float) of one occluder of the given kind."""
    img = Image.new("RGB", (w, h), (0, 0, 0))
    msk = Image.new("L", (w, h), 0)
    di, dm = ImageDraw.Draw(img), ImageDraw.Draw(msk)
    target = rng.uniform(*OCCLUDED_AREA)

    def both(shape, coords, colour, **kw):
        getattr(di, shape)(coords, fill=colour, **kw)
        getattr(dm, shape)(coords, fill=255, **kw)

    if kind == "car":
        wf = rng.uniform(0.8, 1.25)
        body_h = target * h / (min(wf, 1.0) * 1.25)
        x0 = rng.uniform(-0.3, 0.1) * w if rng.random() < 0.5 else w - wf * w - rng.uniform(-0.3, 0.1) * w
        y1 = h + rng.uniform(0, 0.03) * h
        y0 = y1 - body_h
        col = _hsv(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.95))
        both("rectangle", [x0, y0, x0 + wf * w, y1], col)
        cab_h = body_h * 0.45
        cx0, cx1 = x0 + 0.2 * wf * w, x0 + 0.8 * wf * w
        both("polygon", [(cx0, y0), (cx0 + 0.12 * wf * w, y0 - cab_h), (cx1 - 0.12 * wf * w, y0 - cab_h),
                         (cx1, y0)], col)
        di.polygon([(cx0 + 0.05 * wf * w, y0 - 2), (cx0 + 0.14 * wf * w, y0 - cab_h * 0.85),
                    (cx1 - 0.14 * wf * w, y0 - cab_h * 0.85), (cx1 - 0.05 * wf * w, y0 - 2)], fill=(60, 80, 100))
        r = 0.12 * wf * w
        for fx in (0.22, 0.78):
            both("ellipse", [x0 + fx * wf * w - r, y1 - r * 1.3, x0 + fx * wf * w + r, y1 + r * 0.7], (25, 25, 25))
    elif kind == "wall":
        wall_h = target * h
        y0 = h - wall_h
        col = np.array(_hsv(rng.uniform(0.0, 0.1), rng.uniform(0.2, 0.6), rng.uniform(0.4, 0.8)))
        both("rectangle", [-1, y0, w + 1, h + 1], tuple(int(c) for c in col))
        brick_h = int(rng.integers(8, 14))
        for i, yb in enumerate(np.arange(y0, h, brick_h)):
            di.line([(0, yb), (w, yb)], fill=(200, 200, 190), width=1)
            off = 0 if i % 2 else brick_h
            for xb in np.arange(off, w, 2 * brick_h):
                di.line([(xb, yb), (xb, yb + brick_h)], fill=(200, 200, 190), width=1)
    elif kind == "tree":
        left = rng.random() < 0.5
        cw = target * w * rng.uniform(1.0, 1.3)  # canopy half-width reaching into the image
        x_edge, sign = (0.0, 1.0) if left else (float(w), -1.0)
        trunk_w = 0.12 * w
        tx = x_edge + sign * cw * 0.45
        both("rectangle", [tx - trunk_w / 2, 0.3 * h, tx + trunk_w / 2, h + 1], (90, 60, 35))
        cy = rng.uniform(0.2, 0.4) * h
        xa, xb = x_edge - sign * cw * 0.3, x_edge + sign * cw
        both("ellipse", [min(xa, xb), cy - 0.28 * h, max(xa, xb), cy + 0.3 * h],
             _hsv(rng.uniform(0.22, 0.4), rng.uniform(0.5, 0.9), rng.uniform(0.25, 0.6)))
    else:  # pillar
        side = rng.random() < 0.5
        pw = target * w
        x0 = 0 if side else w - pw
        col = _hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.45, 0.8))
        both("rectangle", [x0 - 1, -1, x0 + pw, h + 1], col)
        sy = rng.uniform(0.15, 0.5) * h
        di.rectangle([x0 + 0.15 * pw, sy, x0 + 0.85 * pw, sy + 0.1 * h],
                     fill=_hsv(rng.random(), 0.8, 0.9))
    mask = np.asarray(msk, dtype=np.uint8) > 0
    colour = np.asarray(img, dtype=np.float32)
    # texture so occluders are not flat
    colour = colour * rng.uniform(0.85, 1.0, size=(h, 1, 1)).astype(np.float32)
    return mask, colour


def _make_occluder(rng, h, w) -> Tuple[str, np.ndarray, np.ndarray]:
    kinds = _OCCLUDERS_BOTTOM if rng.random() < 0.6 else _OCCLUDERS_SIDE
    kind = kinds[rng.integers(len(kinds))]
    lo, hi = OCCLUDED_AREA
    for _ in range(30):
        mask, colour = _occluder(rng, h, w, kind)
        if lo <= mask.mean() <= hi:
            return kind, mask, colour
    # fall back to an exact rectangle of the wanted area across the bottom
    frac = rng.uniform(lo, hi)
    rows = int(round(frac * h))
    mask = np.zeros((h, w), bool)
    mask[h - rows:] = True
    colour = np.broadcast_to(np.array(_hsv(rng.random(), 0.5, 0.6), np.float32), (h, w, 3)).copy()
    return "wall", mask, colour


def _render(ident, cam, rng, h, w, occluded):
    label, material, geom = _draw_person(ident, rng, h, w)
    person = _colourise(ident, material, geom, h, w)
    flip = bool(rng.random() < 0.5)
    off = int(rng.integers(0, 2 * cam["pad"] + 1))
    img = cam["bg"][:, off:off + w].copy()
    body = material > 0
    np.copyto(img, person, where=body[..., None])
    img *= (rng.uniform(0.9, 1.1) * cam["cast"]).astype(np.float32)  # exposure and camera cast
    if flip:
        img, label = img[:, ::-1].copy(), label[:, ::-1].copy()
    kind, area = None, 0.0
    covered = [0.0] * 4  # fraction of each part's pixels behind the occluder
    if occluded:
        kind, mask, colour = _make_occluder(rng, h, w)
        np.copyto(img, colour, where=mask[..., None])
        for k in range(1, 5):
            part = label == k
            n = np.count_nonzero(part)
            covered[k - 1] = float(np.count_nonzero(part & mask) / n) if n else 0.0
        label[mask] = 0
        area = float(mask.mean())
    dy, dx = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
    img += cam["noise"][dy:dy + h, dx:dx + w]  # a random crop of the camera's noise field
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8), label, kind, area, covered


# ---------------------------------------------------------------------------- plan + write
def _plan(params) -> List[Dict[str, Any]]:
    """Every image to draw: split, pid, camera, frame, occluded flag (no pixels yet)."""
    rng = np.random.default_rng([params["seed"], 7919])
    n_tr, n_te, per_id = params["num_train_ids"], params["num_test_ids"], params["images_per_id"]
    pids = rng.choice(np.arange(1, 9000), size=n_tr + n_te, replace=False)
    train_ids, test_ids = sorted(int(p) for p in pids[:n_tr]), sorted(int(p) for p in pids[n_tr:])
    used = set()

    def frame():
        while True:
            f = int(rng.integers(1000, 9_999_999))
            if f not in used:
                used.add(f)
                return f

    def cameras(n):
        cams = rng.integers(1, NUM_CAMERAS + 1, size=n)
        if n >= 2 and len(set(cams.tolist())) < 2:
            cams[-1] = (cams[0] % NUM_CAMERAS) + 1
        return [int(c) for c in cams]

    plan = []
    for pid in train_ids:
        for cam in cameras(per_id):
            plan.append({"split": "train", "pid": pid, "camid": cam, "frame": frame()})
    for pid in test_ids:
        gal_cams = cameras(per_id)
        for cam in gal_cams:
            plan.append({"split": "gallery", "pid": pid, "camid": cam, "frame": frame()})
        for _ in range(int(rng.integers(1, 3))):
            cam = int(rng.integers(1, NUM_CAMERAS + 1))  # gallery has >= 2 cameras: one differs
            plan.append({"split": "query", "pid": pid, "camid": cam, "frame": frame()})
    for split, ratio in OCCLUSION_RATIOS.items():
        idx = [i for i, p in enumerate(plan) if p["split"] == split]
        n_occ = int(round(ratio * len(idx)))
        occ = set(rng.choice(idx, size=n_occ, replace=False).tolist()) if n_occ else set()
        for i in idx:
            plan[i]["occluded"] = i in occ
    for p in plan:
        p["file"] = f"{SPLIT_DIRS[p['split']]}/{p['pid']:04d}_c{p['camid']}_f{p['frame']:07d}.jpg"
    return plan


def _write_dataset(dataset_dir: str, params: Dict[str, int], progress: bool) -> Dict[str, Any]:
    h, w, seed = params["height"], params["width"], params["seed"]
    plan = _plan(params)
    for d in SPLIT_DIRS.values():
        os.makedirs(os.path.join(dataset_dir, d), exist_ok=True)
    for d in SPLIT_DIRS.values():
        os.makedirs(os.path.join(dataset_dir, "masks", d), exist_ok=True)
    idents = {pid: _identity(np.random.default_rng([seed, 1, pid]))
              for pid in sorted({p["pid"] for p in plan})}
    cams = {c: _camera(np.random.default_rng([seed, 2, c]), h, w) for c in range(1, NUM_CAMERAS + 1)}
    try:
        from tqdm import tqdm
        bar = tqdm(total=len(plan), desc="Generating SyntheticOccludedDuke", unit="img",
                   disable=not progress, leave=False)
    except ImportError:  # pragma: no cover
        bar = None
    records = []
    for i, p in enumerate(plan):
        rng = np.random.default_rng([seed, 3, i])
        img, label, kind, area, covered = _render(idents[p["pid"]], cams[p["camid"]], rng, h, w,
                                                  p["occluded"])
        path = os.path.join(dataset_dir, p["file"])
        Image.fromarray(img, "RGB").save(path, format="JPEG", quality=JPEG_QUALITY)
        rec = dict(p, occluder=kind, occluded_area=round(area, 4),
                   part_covered=[round(c, 4) for c in covered])
        # part masks of every image: the training ones feed stage 1 (L_seg), the test ones are
        # ground truth for the mechanism checks only (benchmarks/mechanism.py)
        stem = os.path.splitext(os.path.basename(p["file"]))[0]
        mask_rel = f"masks/{SPLIT_DIRS[p['split']]}/{stem}.png"
        Image.fromarray(label, "L").save(os.path.join(dataset_dir, mask_rel), format="PNG")
        rec["mask"] = mask_rel
        records.append(rec)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    manifest = {
        "generator": "rganet_plugin.data.datasets.synthetic",
        "version": GENERATOR_VERSION,
        "params": params,
        "hash": _params_hash(params),
        "part_labels": {str(k): v for k, v in PART_LABELS.items()},
        "occlusion_ratios": OCCLUSION_RATIOS,
        "occluded_area": list(OCCLUDED_AREA),
        "images": records,
    }
    with open(os.path.join(dataset_dir, MANIFEST_NAME), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return manifest


@contextlib.contextmanager
def _file_lock(path: str):
    if fcntl is None:
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_leftovers(out_dir: str) -> None:
    """Remove the temporary folders of generations that were killed. Called under the lock, so
    no live generation owns one (they only exist while their generator holds the lock)."""
    prefix = f".{DATASET_DIR}.tmp-"
    for name in os.listdir(out_dir):
        if name.startswith(prefix) or name.startswith(f"{DATASET_DIR}.old-"):
            path = os.path.join(out_dir, name)
            logger.warning("Removing '%s', left by an interrupted generation", path)
            shutil.rmtree(path, ignore_errors=True)


def _read_manifest(dataset_dir: str) -> Optional[Dict[str, Any]]:
    try:
        with open(os.path.join(dataset_dir, MANIFEST_NAME)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def generate_occluded_duke(out_dir: str, num_train_ids: int = 48, num_test_ids: int = 32,
                           images_per_id: int = 8, seed: int = 0, height: int = 256,
                           width: int = 128, overwrite: bool = False, progress: bool = True) -> str:
    """Generate the synthetic dataset as ``<out_dir>/Occluded_Duke`` and return that folder.

    An existing ``Occluded_Duke`` generated with the same parameters is returned as is; one with
    other parameters (or not generated by this function) raises ``FileExistsError`` unless
    ``overwrite=True``. The folder appears atomically (written under a temporary name in
    ``out_dir``, then renamed) and concurrent calls for the same ``out_dir`` generate it once.
    """
    params = synthetic_params(num_train_ids=num_train_ids, num_test_ids=num_test_ids,
                              images_per_id=images_per_id, seed=seed, height=height, width=width)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    dataset_dir = os.path.join(out_dir, DATASET_DIR)
    with _file_lock(os.path.join(out_dir, f".{DATASET_DIR}.lock")):
        if os.path.exists(dataset_dir):
            manifest = _read_manifest(dataset_dir)
            same = (manifest is not None and manifest.get("params") == params
                    and manifest.get("version") == GENERATOR_VERSION)
            if same and not overwrite:
                return dataset_dir
            if not overwrite:
                raise FileExistsError(
                    f"'{dataset_dir}' exists and was not generated with these parameters "
                    f"{params}; pass overwrite=True to replace it or choose another out_dir")
        _remove_leftovers(out_dir)
        t0 = time.time()
        logger.info("Generating SyntheticOccludedDuke %s into '%s'", params, dataset_dir)
        tmp = tempfile.mkdtemp(prefix=f".{DATASET_DIR}.tmp-", dir=out_dir)
        try:
            manifest = _write_dataset(tmp, params, progress)
            if os.path.exists(dataset_dir):  # overwrite=True
                old = dataset_dir + f".old-{os.getpid()}"
                os.rename(dataset_dir, old)
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.rename(tmp, dataset_dir)
            except OSError:
                # Another process (without the lock, e.g. on a file system without flock) won.
                if _read_manifest(dataset_dir) is None:
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        n = len(manifest["images"])
        logger.info("SyntheticOccludedDuke: %d images generated in %.1fs", n, time.time() - t0)
    return dataset_dir


def ensure_synthetic_occluded_duke(root: str = "datasets", synthetic: Any = None,
                                   progress: bool = True, **overrides) -> str:
    """Return ``<root>/synthetic/<hash>/Occluded_Duke``, generating it on first use."""
    params = synthetic_params(synthetic, **overrides)
    out_dir = os.path.join(os.fspath(root), "synthetic", _params_hash(params))
    dataset_dir = os.path.join(out_dir, DATASET_DIR)
    if _read_manifest(dataset_dir) is not None:  # fast path: the rename makes it all-or-nothing
        return dataset_dir
    return generate_occluded_duke(out_dir, progress=progress, **params)


@register_dataset
class SyntheticOccludedDuke(OccludedDuke):
    """The generated occluded dataset, read with the Occluded-Duke loader.

    Args:
        root: fast-reid's datasets root (``$FASTREID_DATASETS``); the data is cached in
            ``<root>/synthetic/<hash of params>/Occluded_Duke`` and generated on first use.
        synthetic: ``DATASETS.SYNTHETIC`` (CfgNode) or a dict with ``NUM_TRAIN_IDS``,
            ``NUM_TEST_IDS``, ``IMAGES_PER_ID``, ``SEED`` (any case; optional ``HEIGHT``, ``WIDTH``).
        corrupt_images: as for the real loaders.
        **kwargs: passed to fast-reid's ``ImageDataset``; unknown keys are ignored.

    Attributes: ``synthetic_params``, ``manifest_path``, ``masks_dir`` (pseudo part masks of the
    training images: ``masks/bounding_box_train/<stem>.png``).
    """

    dataset_name = "syntheticoccludedduke"
    dataset_dir_names = (DATASET_DIR,)

    def __init__(self, root="datasets", synthetic=None, corrupt_images=None, **kwargs):
        self.synthetic_params = synthetic_params(synthetic)
        dataset_dir = ensure_synthetic_occluded_duke(root, self.synthetic_params)
        self.manifest_path = os.path.join(dataset_dir, MANIFEST_NAME)
        parsers = {s: parse_duke_name for s in ("train", "query", "gallery")}
        self._build(os.path.dirname(dataset_dir), parsers, corrupt_images=corrupt_images, **kwargs)
        self.datasets_root = os.fspath(root)
