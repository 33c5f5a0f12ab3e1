"""One image of the generated datasets: a person (with a bag, if the identity carries one) drawn
over a camera's scene, optionally behind an occluder, with its part mask."""
from __future__ import annotations

import numpy as np

from .bags import draw_bag
from .framing import crop_window
from .occluders import _make_occluder
from .people import _colourise, _draw_person


def _render(ident, cam, rng, h, w, occluded, bag_rng=None, num_parts=4, framing="full",
            frame=None):
    """``(image uint8 HxWx3, part mask uint8 HxW, occluder kind, occluded area, covered)``.

    ``covered[k - 1]`` is the fraction of part ``k``'s pixels behind the occluder (or, for a
    partial view, outside its window), for the ``num_parts`` part classes (4, or 5 with bags).
    ``bag_rng`` jitters the identity's bag; ``framing`` / ``frame`` are :mod:`.framing`'s.
    """
    label, material, geom = _draw_person(ident, rng, h, w,
                                         frame if framing == "shifted" else None)
    if ident.get("bag") is not None:
        draw_bag(label, material, geom, ident["bag"], bag_rng)
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
    covered = [0.0] * num_parts  # fraction of each part's pixels behind the occluder
    if framing in ("top", "bottom"):
        img, label, covered = crop_window(img, label, framing, frame["fraction"], num_parts)
    if occluded:
        kind, mask, colour = _make_occluder(rng, h, w)
        np.copyto(img, colour, where=mask[..., None])
        for k in range(1, num_parts + 1):
            part = label == k
            n = np.count_nonzero(part)
            covered[k - 1] = float(np.count_nonzero(part & mask) / n) if n else 0.0
        label[mask] = 0
        area = float(mask.mean())
    dy, dx = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
    img += cam["noise"][dy:dy + h, dx:dx + w]  # a random crop of the camera's noise field
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8), label, kind, area, covered
