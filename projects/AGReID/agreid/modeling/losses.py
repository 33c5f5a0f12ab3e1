"""AG-ReID's losses on the attribute pseudo-labels (``-1``: rejected, ignored).

* :func:`attribute_ce`: attribute classification, per group the cross-entropy of the group's
  logits against its pseudo-label, averaged over the kept labels of the group, then over the
  groups that have any in the batch;
* :func:`image_text_contrast`: the same over the group's attribute **texts**: logits
  ``cos(f_g, t_{g,k}) / tau`` (InfoNCE of an attribute feature against the texts of its group's
  values: image features tied to the attribute texts);
* :func:`global_text_contrast`: the global feature against each image's **attribute sentence**
  (the normalised sum of its kept values' text features) over the batch, ``cos / tau``; the
  positives of image ``i`` are the images whose label vectors equal its own (supervised
  contrastive form: mean of ``-log softmax`` over the positives). Images with no kept label
  take no part.

Each returns a scalar that is 0 (with a gradient path) when nothing in the batch is labelled.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["attribute_ce", "image_text_contrast", "global_text_contrast", "attribute_sentences"]


def _zero(ref: torch.Tensor) -> torch.Tensor:
    return ref.sum() * 0.0


def attribute_ce(logits: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """``logits[g]`` (B, K_g), ``labels`` (B, G) long with -1 for rejected."""
    terms = []
    for g, lg in enumerate(logits):
        keep = labels[:, g] >= 0
        if keep.any():
            terms.append(F.cross_entropy(lg[keep], labels[keep, g]))
    return torch.stack(terms).mean() if terms else _zero(logits[0])


def image_text_contrast(attr: torch.Tensor, texts: Sequence[torch.Tensor], labels: torch.Tensor,
                        temperature: float) -> torch.Tensor:
    """``attr`` (B, G, d) attribute features, ``texts[g]`` (K_g, d) the group's value texts."""
    a = F.normalize(attr, dim=-1)
    logits = [a[:, g] @ F.normalize(t, dim=-1).t() / temperature for g, t in enumerate(texts)]
    return attribute_ce(logits, labels)


def attribute_sentences(texts: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """(B, d): per image the normalised sum of its kept values' unit text features (0 if none)."""
    out = torch.zeros(labels.shape[0], texts[0].shape[1], dtype=texts[0].dtype,
                      device=texts[0].device)
    for g, t in enumerate(texts):
        keep = labels[:, g] >= 0
        out[keep] += F.normalize(t, dim=-1)[labels[keep, g]]
    return F.normalize(out, dim=-1)


def global_text_contrast(glob: torch.Tensor, texts: Sequence[torch.Tensor], labels: torch.Tensor,
                         temperature: float) -> torch.Tensor:
    """``glob`` (B, d) global features; see the module's description."""
    keep = (labels >= 0).any(dim=1)
    if not keep.any():
        return _zero(glob)
    lab = labels[keep]
    sent = attribute_sentences(texts, lab)
    sim = F.normalize(glob[keep], dim=-1) @ sent.t() / temperature
    pos = (lab[:, None, :] == lab[None, :, :]).all(dim=-1).float()
    logp = F.log_softmax(sim, dim=1)
    return (-(pos * logp).sum(dim=1) / pos.sum(dim=1)).mean()
