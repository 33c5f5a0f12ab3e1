"""Where the detection box puts the person: the generated world's misalignment.

By default every generated person stands at about the same height and scale (90 % of the image,
the top at 2-8 %), so a body part is mostly an image row and fixed horizontal stripes are nearly
optimal parts. Two opt-in departures make alignment something a model has to find, in the
manner of the real benchmarks:

* ``MISALIGNED_PERCENT`` of the images of every split show the person **shifted and scaled**: drawn
  at :data:`SHIFT_SCALE` of its usual height, its top anywhere in the frame that keeps it whole,
  and moved sideways by up to :data:`SHIFT_X` of the width (a loose or off-centre box, as
  detectors give on Duke / MSMT17 street footage).
* ``PARTIAL_PERCENT`` of the queries are **partial views** as in Partial-REID and Occluded-Duke's
  cropped queries: a window of :data:`PARTIAL_BODY_FRACTION` of the body's height, from the top or
  from the bottom, cut out around the person (the image's aspect ratio, or the body's width where
  wider) and resized to the full image size. These queries carry no occluder: the window is what hides the rest, and
  ``part_covered`` records the fraction of each part left outside it.

Every decision comes from its own random stream (``[seed, 11]`` for which images, ``[seed, 11, i]``
for image ``i``'s framing), so with both percentages at 0 nothing else changes: the default
dataset stays byte-identical.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["FRAMINGS", "SHIFT_SCALE", "SHIFT_X", "PARTIAL_BODY_FRACTION", "assign_framing",
           "body_window", "resample", "crop_window", "outside_fractions"]

#: ``framing`` of an image in the manifest: as drawn by default, shifted and scaled, or a partial
#: view of the top or the bottom of the body.
FRAMINGS = ("full", "shifted", "top", "bottom")
#: Scale of a shifted person, relative to its default height (0.81-0.9 of the image).
SHIFT_SCALE = (0.55, 1.0)
#: Sideways shift of a shifted person, as a fraction of the image width (either way).
SHIFT_X = 0.15
#: Height of a partial view's window, as a fraction of the body's height.
PARTIAL_BODY_FRACTION = (0.4, 0.8)
#: Margin kept beyond the body's end at the window's open side (a fraction of the image height)
#: and beside the body (a fraction of the width).
_WINDOW_MARGIN = 0.03
_STREAM = 11


def assign_framing(plan: List[Dict[str, Any]], seed: int, misaligned_percent: int,
                   partial_percent: int) -> None:
    """Add ``framing`` (one of :data:`FRAMINGS`) and ``frame`` (its numbers) to every image of
    ``plan``; a partial query is made unoccluded. Exact counts per split: ``round(percent * n)``."""
    for p in plan:
        p["framing"], p["frame"] = "full", None
    if not (misaligned_percent or partial_percent):
        return
    rng = np.random.default_rng([seed, _STREAM])
    queries = [i for i, p in enumerate(plan) if p["split"] == "query"]
    partial = _choose(rng, queries, partial_percent)
    for split in ("train", "query", "gallery"):
        idx = [i for i, p in enumerate(plan) if p["split"] == split and i not in partial]
        for i in _choose(rng, idx, misaligned_percent):
            plan[i]["framing"] = "shifted"
    for i in partial:
        plan[i]["framing"] = "partial"
        plan[i]["occluded"] = False
    for i, p in enumerate(plan):
        if p["framing"] == "full":
            continue
        r = np.random.default_rng([seed, _STREAM, i])
        if p["framing"] == "shifted":
            p["frame"] = {"scale": round(float(r.uniform(*SHIFT_SCALE)), 4),
                          "top": round(float(r.random()), 4),
                          "dx": round(float(r.uniform(-SHIFT_X, SHIFT_X)), 4)}
        else:
            p["framing"] = "top" if r.random() < 0.5 else "bottom"
            p["frame"] = {"fraction": round(float(r.uniform(*PARTIAL_BODY_FRACTION)), 4)}


def _choose(rng: np.random.Generator, idx: Sequence[int], percent: int) -> set:
    n = int(round(percent / 100.0 * len(idx)))
    return set(rng.choice(idx, size=n, replace=False).tolist()) if n else set()


def body_window(label: np.ndarray, framing: str, fraction: float) -> Tuple[float, float, float, float]:
    """The box ``(x0, y0, x1, y1)`` of a partial view: ``fraction`` of the body's rows from its
    top (``framing == "top"``) or its bottom, plus a small margin beyond that end of the body,
    centred on the body's columns with the image's aspect ratio or the body's width if wider
    (a crop never cuts the body's sides; the resize then squeezes it a little, as Partial-REID's
    resized crops do), clipped to the image."""
    h, w = label.shape
    rows = np.nonzero((label > 0).any(axis=1))[0]
    cols = np.nonzero((label > 0).any(axis=0))[0]
    if not len(rows):
        raise ValueError("crop_window: the label map shows no body")
    y_top, y_bot = float(rows[0]), float(rows[-1] + 1)
    body_h = y_bot - y_top
    margin = _WINDOW_MARGIN * h
    if framing == "top":
        y0, y1 = max(0.0, y_top - margin), min(float(h), y_top + fraction * body_h)
    elif framing == "bottom":
        y0, y1 = max(0.0, y_bot - fraction * body_h), min(float(h), y_bot + margin)
    else:
        raise ValueError(f"crop_window: framing must be 'top' or 'bottom', got {framing!r}")
    body_w = cols[-1] + 1 - cols[0] + 2 * _WINDOW_MARGIN * w
    crop_w = min(float(w), max((y1 - y0) * w / h, body_w))
    xc = (cols[0] + cols[-1] + 1) / 2.0
    x0 = min(max(0.0, xc - crop_w / 2), w - crop_w)
    return (x0, y0, x0 + crop_w, y1)


def resample(a: np.ndarray, box: Sequence[float], size: Tuple[int, int], nearest: bool) -> np.ndarray:
    """``a`` (H x W or H x W x C) inside ``box = (x0, y0, x1, y1)`` (pixel-edge coordinates; it
    may reach outside the array, which reads as 0) resampled to ``size = (h, w)``: nearest for
    labels and materials, bilinear for pixels. Returns the input's dtype."""
    import torch
    import torch.nn.functional as F

    src_h, src_w = a.shape[:2]
    h, w = size
    x0, y0, x1, y1 = box
    ys = y0 + (np.arange(h) + 0.5) * (y1 - y0) / h   # output pixel centres in source pixels
    xs = x0 + (np.arange(w) + 0.5) * (x1 - x0) / w
    gy = torch.from_numpy(2 * ys / src_h - 1).float()
    gx = torch.from_numpy(2 * xs / src_w - 1).float()
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    out = F.grid_sample(t, grid, mode="nearest" if nearest else "bilinear",
                        padding_mode="zeros", align_corners=False)[0]
    out = out[0] if a.ndim == 2 else out.permute(1, 2, 0)
    return out.numpy().astype(a.dtype)


def crop_window(img: np.ndarray, label: np.ndarray, framing: str, fraction: float,
                num_parts: int) -> Tuple[np.ndarray, np.ndarray, List[float]]:
    """A partial view of ``img`` (H x W x 3 float) and its part ``label`` (H x W uint8): the
    :func:`body_window` box resized to H x W. Returns the view, its labels and, per part class
    ``1..num_parts``, the fraction of the part's pixels left outside the window."""
    h, w = label.shape
    box = body_window(label, framing, fraction)
    view = resample(img.astype(np.float32), box, (h, w), nearest=False)
    view_label = resample(label, box, (h, w), nearest=True)
    return view, view_label, outside_fractions(label, box, num_parts)


def outside_fractions(label: np.ndarray, box: Sequence[float], num_parts: int) -> List[float]:
    """Per part class ``1..num_parts``: the fraction of its pixels whose centre is outside
    ``box`` (0 for a part that is not drawn)."""
    h, w = label.shape
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy + 0.5 >= box[1]) & (yy + 0.5 < box[3])
              & (xx + 0.5 >= box[0]) & (xx + 0.5 < box[2]))
    outside = []
    for k in range(1, num_parts + 1):
        part = label == k
        n = np.count_nonzero(part)
        outside.append(float(np.count_nonzero(part & ~inside) / n) if n else 0.0)
    return outside
