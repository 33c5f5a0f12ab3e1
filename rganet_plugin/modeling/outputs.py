"""The layout of the feature vector an RGANet model returns at inference.

fast-reid's ``inference_on_dataset`` expects one tensor per batch (it averages the flipped and
unflipped outputs element-wise for the flip test), so RGANet packs everything matching needs into
one row per image::

    [ global feature (G) | region 1 (R) | ... | region N (R) | w_1 ... w_N ]

With ``N = 0`` (the baseline) the row is the global feature alone, which is exactly what
fast-reid's own ``ReidEvaluator`` consumes. Averaging two packed rows averages the features and
the confidences, which is the flip test we want.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch


class UnpackedFeatures(NamedTuple):
    global_feat: torch.Tensor  # (B, G)
    region_feats: torch.Tensor  # (B, N, R)
    weights: torch.Tensor  # (B, N)


@dataclass(frozen=True)
class FeatureLayout:
    global_dim: int
    num_regions: int = 0
    region_dim: int = 0

    @property
    def total_dim(self) -> int:
        return self.global_dim + self.num_regions * (self.region_dim + 1)

    def pack(self, global_feat: torch.Tensor, region_feats: torch.Tensor = None,
             weights: torch.Tensor = None) -> torch.Tensor:
        if self.num_regions == 0:
            return global_feat
        b = global_feat.shape[0]
        return torch.cat([global_feat, region_feats.reshape(b, -1), weights], dim=1)

    def unpack(self, packed: torch.Tensor) -> UnpackedFeatures:
        if packed.shape[-1] != self.total_dim:
            raise ValueError(
                f"packed features have {packed.shape[-1]} columns but the layout {self} needs "
                f"{self.total_dim}")
        g = packed[:, : self.global_dim]
        n, r = self.num_regions, self.region_dim
        if n == 0:
            b = packed.shape[0]
            return UnpackedFeatures(g, packed.new_zeros(b, 0, 0), packed.new_zeros(b, 0))
        regions = packed[:, self.global_dim: self.global_dim + n * r].reshape(-1, n, r)
        w = packed[:, self.global_dim + n * r:]
        return UnpackedFeatures(g, regions, w)
