"""FAR, Fine-grained Attribute Recomposition: features recomposed across fine-grained attributes
in the latent space.

The backbone's feature map is cut into ``parts`` horizontal stripes. For each stripe of sample
i, its per-channel mean ``mu`` and standard deviation ``sigma`` (the "style", treated as
constants) are replaced by those of a partner j drawn uniformly among the samples of the batch
with **another fine-grained label**, a new partner for every stripe (as the paper's code draws it
inside its loop over the stripes: the two halves of one image take two other images' styles)::

    x'_i = (x_i - mu_i) / sigma_i * sigma_j + mu_j,     sigma = sqrt(var + 1e-6)

(``var`` unbiased, per stripe), ``times`` partners per sample. The recomposed map is pooled,
normalised by its own BN and classified by its own identity classifier: the identity must be
recognised with another attribute's style.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["sample_partners", "stripe_partners", "recompose", "FARHead"]


def sample_partners(labels: torch.Tensor, times: int = 1,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``(times * B,)`` partner indices: for copy k and sample i, a sample with another label
    (i itself when the whole batch shares i's label). Copy-major, as the recomposed batch."""
    b = labels.shape[0]
    other = (labels[None, :] != labels[:, None]).float()
    none = other.sum(1) == 0
    other[none, torch.arange(b, device=labels.device)[none]] = 1.0
    idx = torch.multinomial(other, times, replacement=times > 1, generator=generator)  # (B, K)
    return idx.t().reshape(-1)


def stripe_partners(labels: torch.Tensor, parts: int, times: int = 1,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``(parts, times * B)`` partner indices: :func:`sample_partners` drawn anew for each stripe."""
    return torch.stack([sample_partners(labels, times, generator) for _ in range(parts)])


def recompose(fmap: torch.Tensor, partners: torch.Tensor, parts: int = 2) -> torch.Tensor:
    """Recompose ``fmap`` (B, C, H, W) with the stripe statistics of ``partners``: ``(parts, K*B)``
    indices, row k for stripe k (:func:`stripe_partners`), or ``(K*B,)``, one partner for every
    stripe. Returns (K*B, C, H', W), H' = parts * (H // parts)."""
    b = fmap.shape[0]
    if partners.dim() == 1:
        partners = partners.expand(parts, -1)
    if partners.shape[0] != parts:
        raise ValueError(f"partners has {partners.shape[0]} rows for {parts} stripes")
    times = partners.shape[1] // b
    h = fmap.shape[2] // parts
    out = []
    for k in range(parts):
        part = fmap[:, :, h * k:h * (k + 1), :]
        mu = part.mean(dim=(2, 3), keepdim=True).detach()
        sig = (part.var(dim=(2, 3), keepdim=True) + 1e-6).sqrt().detach()
        normed = ((part - mu) / sig).repeat(times, 1, 1, 1)
        out.append(normed * sig[partners[k]] + mu[partners[k]])
    return torch.cat(out, dim=2)


def bnneck_classifier(dim: int, num_classes: int):
    """BNNeck (BatchNorm1d with a frozen zero bias) and a bias-free identity classifier drawn
    from N(0, 0.001^2), as the paper's code builds them for both branches."""
    bottleneck = nn.BatchNorm1d(dim)
    bottleneck.bias.requires_grad_(False)
    nn.init.constant_(bottleneck.weight, 1.0)
    nn.init.constant_(bottleneck.bias, 0.0)
    classifier = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(classifier.weight, std=0.001)
    return bottleneck, classifier


class FARHead(nn.Module):
    """Pooling -> own BNNeck -> own identity classifier, for the recomposed features."""

    def __init__(self, pool: nn.Module, dim: int, num_classes: int):
        super().__init__()
        self.pool = pool
        self.bottleneck, self.classifier = bnneck_classifier(dim, num_classes)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.bottleneck(self.pool(fmap).flatten(1)))
