"""Bags carried by some identities of the generated datasets (``DATASETS.SYNTHETIC.BAGS_PERCENT``).

RGANet's Fig. 3 lists a fifth region class, "bags" (N = 5). With ``BAGS_PERCENT`` > 0 that
percentage of the identities carries one bag, the same in every image of the identity: a shoulder
bag (strap across the torso, bag at the opposite hip), a backpack (two straps over the chest, the
pack showing on both sides of the torso) or a handbag (hanging from one hand). Bag pixels are
labelled :data:`BAG_LABEL` (5) in the part masks. Bags come from their own random streams, so
turning them on changes only the bag pixels of the carriers: every other pixel and the whole
default dataset (``BAGS_PERCENT`` 0) stay byte-identical.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Optional, Set

import numpy as np
from PIL import Image, ImageDraw

from .people import _BAG, _BG, _hsv, _limb

__all__ = ["BAG_LABEL", "BAG_KINDS", "bag_carriers", "bag_for", "draw_bag"]

#: Label value of bag pixels in the part masks (class "bags", RGANet Fig. 3).
BAG_LABEL = 5
BAG_KINDS = ("shoulder bag", "backpack", "handbag")

_CARRIER_STREAM = 4  # np.random.default_rng([seed, 4]) picks the carriers, [seed, 4, pid] the bag


def bag_carriers(pids: Iterable[int], percent: int, seed: int) -> Set[int]:
    """The identities that carry a bag: ``round(percent% of them)``, drawn from their own stream."""
    if not 0 <= percent <= 100:
        raise ValueError(f"BAGS_PERCENT must be within 0..100, got {percent}")
    pids = sorted(int(p) for p in pids)
    n = int(round(percent / 100.0 * len(pids)))
    if n == 0:
        return set()
    rng = np.random.default_rng([seed, _CARRIER_STREAM])
    return {int(p) for p in rng.choice(pids, size=n, replace=False)}


def bag_for(seed: int, pid: int) -> Dict[str, Any]:
    """One identity's bag: kind, colour, carrying side, size."""
    rng = np.random.default_rng([seed, _CARRIER_STREAM, pid])
    return {
        "kind": BAG_KINDS[int(rng.integers(len(BAG_KINDS)))],
        "colour": _hsv(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.15, 0.75)),
        "side": int(rng.choice([-1, 1])),
        "size": float(rng.uniform(0.85, 1.2)),
    }


def draw_bag(label: np.ndarray, material: np.ndarray, geom: Dict[str, Any], bag: Dict[str, Any],
             rng: Optional[np.random.Generator] = None) -> None:
    """Draw ``bag`` into the label and material maps of one view (in place, before colouring).

    ``geom`` is the view's geometry from :func:`~.people._draw_person`; ``rng`` (optional) jitters
    the bag a little per image.
    """
    h, w = label.shape
    lab_img, mat_img = Image.fromarray(label), Image.fromarray(material)
    dl, dm = ImageDraw.Draw(lab_img), ImageDraw.Draw(mat_img)
    jitter = 1.0 + (rng.uniform(-0.06, 0.06) if rng is not None else 0.0)
    ph, cx, s = geom["ph"], geom["cx"], bag["side"]
    y_sh, y_hip, sh_w, hip_w = geom["y_sh"], geom["y_hip"], geom["sh_w"], geom["hip_w"]
    size = bag["size"] * jitter

    def fill(shape, coords, *args, **kw):
        getattr(dl, shape)(coords, *args, fill=BAG_LABEL, **kw)
        getattr(dm, shape)(coords, *args, fill=_BAG, **kw)

    strap = max(1.0, 0.018 * ph)
    if bag["kind"] == "shoulder bag":
        top = (cx - s * sh_w * 0.8, y_sh + 0.01 * ph)
        bw, bh = 0.11 * ph * size, 0.09 * ph * size
        bx = cx + s * (hip_w + 0.02 * ph)
        by = y_hip - 0.02 * ph
        fill("polygon", [(float(x), float(y)) for x, y in _limb(top, (bx, by), strap, strap)])
        fill("rectangle", [bx - bw / 2, by - bh * 0.3, bx + bw / 2, by + bh * 0.7])
    elif bag["kind"] == "backpack":
        # the pack is behind the torso: only where nothing of the person is drawn
        pw, phh = (sh_w * 2.0 + 0.08 * ph) * size, (y_hip - y_sh) * 0.85 * size
        pack = Image.new("L", (w, h), 0)
        ImageDraw.Draw(pack).rounded_rectangle(
            [cx - pw / 2, y_sh + 0.01 * ph, cx + pw / 2, y_sh + 0.01 * ph + phh],
            radius=max(1.0, 0.03 * ph), fill=1)
        behind = (np.asarray(pack) > 0) & (np.asarray(mat_img) == _BG)
        for side in (-1, 1):  # straps over the shoulders, in front
            x = cx + side * sh_w * 0.55
            fill("polygon", [(float(a), float(b)) for a, b in
                             _limb((x, y_sh - 0.005 * ph), (x + side * 0.01 * ph, y_hip - 0.06 * ph),
                                   strap * 1.3, strap * 1.3)])
        lab, mat = np.asarray(lab_img).copy(), np.asarray(mat_img).copy()
        lab[behind], mat[behind] = BAG_LABEL, _BAG
        label[...], material[...] = lab, mat
        return
    else:  # handbag, from the hand on the carrying side
        hands = geom.get("hands") or [(cx + s * sh_w, y_hip)]
        hx, hy = hands[0] if s < 0 else hands[-1]
        bw, bh = 0.08 * ph * size, 0.07 * ph * size
        fill("arc", [hx - bw * 0.3, hy - bh * 0.2, hx + bw * 0.3, hy + bh * 0.5], 180, 360,
             width=max(1, int(math.ceil(strap))))
        fill("rectangle", [hx - bw / 2, hy + bh * 0.15, hx + bw / 2, hy + bh * 1.15])
    label[...] = np.asarray(lab_img)
    material[...] = np.asarray(mat_img)
