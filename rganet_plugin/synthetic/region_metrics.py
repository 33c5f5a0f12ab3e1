"""Metrics of what the region mechanism does, against the generator's ground truth.

* :func:`patch_to_pixels` / :func:`part_iou`: how well per-patch region assignments (argmax of
  RGM masks, zero-shot prompt scores or fixed stripes) find the body parts. The assignment of
  each patch is spread over its pixels (nearest neighbour) and compared with the pixel part masks
  **on body pixels** (ground truth 1..N), so the score says whether the parts are told apart,
  independently of how the background is handled. :func:`foreground_iou` scores the background
  channel of RGM separately.
* :func:`auroc`: how well a confidence score separates visible from covered regions (the
  probability that a random visible region scores above a random covered one; ties count half).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["patch_to_pixels", "stripe_pixels", "part_iou", "foreground_iou", "auroc"]


def patch_to_pixels(assign: torch.Tensor, size) -> torch.Tensor:
    """``(B, gh, gw)`` integer assignments -> ``(B, H, W)`` by nearest-neighbour upsampling."""
    return F.interpolate(assign[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


def stripe_pixels(num_parts: int, grid, num_images: int, size) -> np.ndarray:
    """Fixed horizontal stripes as a part prediction (stripe ``j`` = part ``j``, on the patch
    ``grid``) for ``num_images`` label maps of pixel ``size``: ``(num_images, H, W)``."""
    from ..modeling.heads.region_generation import stripe_masks

    assign = stripe_masks(num_parts, grid[0], grid[1]).argmax(dim=0) + 1
    return patch_to_pixels(assign.expand(num_images, -1, -1), tuple(size)).numpy()


def part_iou(pred: np.ndarray, gt: np.ndarray, num_parts: int) -> Dict[str, object]:
    """IoU of each part ``1..num_parts`` on body pixels (``1 <= gt <= num_parts``).

    ``pred`` and ``gt`` are integer arrays of the same shape; pixels of ``pred`` outside
    ``1..num_parts`` (e.g. background) count as wrong on body pixels. Returns ``{"iou": [..],
    "miou": float}``; a part absent from both ``pred`` and ``gt`` on body pixels is left out of
    the mean (NaN in the list).
    """
    pred = np.asarray(pred).ravel()
    gt = np.asarray(gt).ravel()
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt differ in size: {pred.shape} vs {gt.shape}")
    body = (gt >= 1) & (gt <= num_parts)
    p, g = pred[body], gt[body]
    ious = []
    for k in range(1, num_parts + 1):
        inter = np.count_nonzero((p == k) & (g == k))
        union = np.count_nonzero((p == k) | (g == k))
        ious.append(inter / union if union else float("nan"))
    valid = [v for v in ious if v == v]
    return {"iou": ious, "miou": float(np.mean(valid)) if valid else float("nan")}


def foreground_iou(pred_fg: np.ndarray, gt: np.ndarray) -> float:
    """IoU of the predicted person (not background) against ``gt > 0`` (255 = ignore)."""
    gt = np.asarray(gt)
    keep = gt != 255
    p = np.asarray(pred_fg, bool)[keep]
    g = (gt > 0)[keep]
    union = np.count_nonzero(p | g)
    return float(np.count_nonzero(p & g) / union) if union else float("nan")


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for ``positive`` against the rest (Mann-Whitney U
    with mid-ranks for ties). NaN when one of the two groups is empty."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(positive, bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in size: {s.shape} vs {y.shape}")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # mid-ranks (1-based) for runs of equal scores
    bounds = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(s)]])
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
