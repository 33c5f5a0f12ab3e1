"""Occluders of the generated occluded dataset: a car or a wall across the lower part (60%), a
tree or a pillar on one side (40%), covering 20-50% of the image, which is where occluders sit in
Occluded-Duke."""
from __future__ import annotations

from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw

from .people import _hsv

#: Occluded area per occluded image, as a fraction of the image.
OCCLUDED_AREA = (0.20, 0.50)
_OCCLUDERS_BOTTOM = ("car", "wall")
_OCCLUDERS_SIDE = ("tree", "pillar")


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
