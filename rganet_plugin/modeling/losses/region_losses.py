"""RGANet's own losses: the confidence-weighted region ID loss (eq. 7) and L_seg (eq. 3).

Triplet losses (global and per region) are fast-reid's ``triplet_loss``; the global ID loss is
fast-reid's ``cross_entropy_loss``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def confidence_weighted_id_loss(logits: torch.Tensor, targets: torch.Tensor,
                                weights: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Eq. (7) summed over regions (eq. 8): ``sum_j mean_i [ -w_ij log softmax(W_j^T F_ij)[y_i] ]``.

    ``logits`` (B, N, C), ``targets`` (B,), ``weights`` (B, N). ``eps`` is label smoothing, as in
    fast-reid's ``cross_entropy_loss`` (``MODEL.LOSSES.CE.EPSILON``).
    """
    b, n, c = logits.shape
    logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.view(b, 1, 1).expand(b, n, 1)).squeeze(-1)  # (B, N)
    if eps > 0:
        nll = (1 - eps - eps / (c - 1)) * nll + (eps / (c - 1)) * (-logp.sum(-1))
    return (weights * nll).mean(dim=0).sum()


def segmentation_loss(masks: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
                      include_background: bool = True) -> torch.Tensor:
    """Eq. (3): per-pixel cross-entropy of the masks ``S`` (B, N+1, H, W; background first, i.e.
    label 0 = background, j = class j) against pseudo labels (B, H, W).

    The paper's sum runs over the N body classes only; ``include_background=True`` (our default)
    also scores background pixels against ``p_0``, which gives the background embedding a direct
    signal. Pixels labelled ``ignore_index`` never count.
    """
    logp = torch.log(masks.clamp_min(1e-8))
    labels = labels.long()
    valid = labels != ignore_index
    if not include_background:
        valid = valid & (labels != 0)
    if not valid.any():
        return masks.sum() * 0.0
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    nll = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    return nll[valid].mean()


SEG_TARGETS = ("majority", "soft", "nearest")


def patch_targets(labels: torch.Tensor, grid, num_classes: int, mode: str = "majority",
                  ignore_index: int = 255) -> torch.Tensor:
    """Pseudo labels ``(B, H, W)`` at image resolution -> targets on the ``grid`` of the masks.

    * ``majority``: each patch takes the label most of its labelled pixels have (``(B, gh, gw)``;
      ``ignore_index`` where none is labelled);
    * ``soft``: the fraction of each class in the patch (``(B, num_classes, gh, gw)``, rows sum to
      1 over labelled pixels; all zero where none is labelled), for :func:`soft_segmentation_loss`;
    * ``nearest``: one pixel per patch (nearest-neighbour resize): small parts such as the feet
      are often missed.

    ``num_classes`` counts the background (N + 1).
    """
    if mode not in SEG_TARGETS:
        raise ValueError(f"unknown segmentation target mode {mode!r}; expected one of {SEG_TARGETS}")
    labels = labels.long()
    grid = tuple(int(g) for g in grid)
    if mode == "nearest":
        if labels.shape[-2:] == grid:
            return labels
        return F.interpolate(labels[:, None].float(), size=grid, mode="nearest")[:, 0].long()
    ignored = labels == ignore_index
    safe = torch.where(ignored | (labels >= num_classes) | (labels < 0),
                       torch.full_like(labels, num_classes), labels)
    onehot = F.one_hot(safe, num_classes + 1).permute(0, 3, 1, 2).float()
    frac = F.adaptive_avg_pool2d(onehot, grid)[:, :num_classes]  # ignored pixels dropped
    total = frac.sum(dim=1, keepdim=True)
    if mode == "soft":
        return torch.where(total > 0, frac / total.clamp_min(1e-12), torch.zeros_like(frac))
    out = frac.argmax(dim=1)
    return torch.where(total[:, 0] > 0, out, torch.full_like(out, ignore_index))


def soft_segmentation_loss(masks: torch.Tensor, targets: torch.Tensor,
                           include_background: bool = True) -> torch.Tensor:
    """Eq. (3) with area-fraction targets: ``-sum_c q_c log S_c`` averaged over the patches that
    have labelled pixels (``targets`` from :func:`patch_targets` with ``mode="soft"``). Without
    the background, only body pixels' fractions count (renormalised)."""
    q = targets
    if not include_background:
        q = q.clone()
        q[:, 0] = 0.0
        s = q.sum(dim=1, keepdim=True)
        q = torch.where(s > 0, q / s.clamp_min(1e-12), q)
    valid = q.sum(dim=1) > 0
    if not valid.any():
        return masks.sum() * 0.0
    nll = -(q * torch.log(masks.clamp_min(1e-8))).sum(dim=1)
    return nll[valid].mean()
