"""What an RGANet model gives per image, from its output to the evaluator, the tools and the files.

fast-reid's ``inference_on_dataset`` expects one tensor per batch (it averages the flipped and
unflipped outputs element-wise for the flip test), so the model packs everything matching needs
into one row per image (:class:`FeatureLayout`)::

    [ global feature (G) | region 1 (R) | ... | region N (R) | w_1 ... w_N ]

With ``N = 0`` (the baseline) the row is the global feature alone, which is exactly what
fast-reid's own ``ReidEvaluator`` consumes. Averaging two packed rows averages the features and
the confidences, which is the flip test we want.

:class:`Features` is the one record of those parts: the evaluator, the eq. (10) distance, the
faiss search, the predictor, the ``extract`` files and the exported model's outputs all speak it.
Its arrays are torch tensors or numpy arrays (``to_torch`` / ``to_numpy`` convert);
:meth:`Features.of` accepts the forms users hand in (a record, a ``(global, regions, weights)``
tuple, or a 2-D global-feature array) and checks every shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence, Tuple

import numpy as np
import torch


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x.detach()


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(frozen=True)
class Features:
    """Features of a list of images: ``global_feat`` (B, G), ``region_feats`` (B, N, R) and the
    region confidences ``weights`` (B, N), ``N`` may be 0; ``paths`` names the rows (optional)."""

    global_feat: Any
    region_feats: Any
    weights: Any
    paths: Tuple[str, ...] = field(default=())

    @property
    def num_regions(self) -> int:
        return int(self.region_feats.shape[1])

    def __len__(self) -> int:
        return int(self.global_feat.shape[0])

    # ------------------------------------------------------------------ conversions
    @classmethod
    def of(cls, x: Any, name: str = "features") -> "Features":
        """Validated features as torch tensors, from any accepted form (see the module doc)."""
        paths: Sequence[str] = ()
        if isinstance(x, Features):
            parts, paths = (x.global_feat, x.region_feats, x.weights), x.paths
        elif isinstance(x, (tuple, list)) and len(x) == 3:
            parts = tuple(x)
        elif isinstance(x, (torch.Tensor, np.ndarray)):
            parts = (x, None, None)
        else:
            raise TypeError(f"{name}: expected Features, a (global, regions, weights) tuple or a "
                            f"2-D global-feature tensor, got {type(x).__name__}")
        g = _as_tensor(parts[0], f"{name}.global_feat")
        if g.dim() != 2:
            raise ValueError(f"{name}.global_feat must be 2-D (B, G), got shape {tuple(g.shape)}")
        b = g.shape[0]
        if parts[1] is None:
            return cls(g, g.new_zeros((b, 0, 0)), g.new_zeros((b, 0)), tuple(paths))
        r = _as_tensor(parts[1], f"{name}.region_feats")
        w = _as_tensor(parts[2], f"{name}.weights")
        if r.dim() != 3:
            raise ValueError(
                f"{name}.region_feats must be 3-D (B, N, R), got shape {tuple(r.shape)}")
        if w.dim() != 2:
            raise ValueError(f"{name}.weights must be 2-D (B, N), got shape {tuple(w.shape)}")
        if r.shape[0] != b or w.shape[0] != b:
            raise ValueError(
                f"{name}: global_feat, region_feats and weights disagree on the number of images "
                f"({b}, {r.shape[0]}, {w.shape[0]})")
        if w.shape[1] != r.shape[1]:
            raise ValueError(
                f"{name}: {r.shape[1]} regions but {w.shape[1]} confidence weights per image")
        return cls(g, r, w, tuple(paths))

    def to_numpy(self) -> "Features":
        """float32 numpy arrays (the files' and the CLI's form)."""
        return Features(_as_numpy(self.global_feat), _as_numpy(self.region_feats),
                        _as_numpy(self.weights), tuple(self.paths))

    def to_torch(self) -> "Features":
        return Features.of(self)

    def global_only(self) -> "Features":
        return Features.of(Features(self.global_feat, None, None, self.paths))

    def rows(self, start: int, stop: int) -> "Features":
        return Features(self.global_feat[start:stop], self.region_feats[start:stop],
                        self.weights[start:stop], tuple(self.paths[start:stop]))


@dataclass(frozen=True)
class FeatureLayout:
    """Where the parts of :class:`Features` sit in the model's packed output row."""

    global_dim: int
    num_regions: int = 0
    region_dim: int = 0

    @property
    def total_dim(self) -> int:
        return self.global_dim + self.num_regions * (self.region_dim + 1)

    def fits(self, width: int) -> bool:
        """Whether a packed row of ``width`` columns has this layout. ``global_dim`` 0 with no
        regions is the global feature of a model whose width is not known (one of fast-reid's own
        meta-architectures): any width fits."""
        return width == self.total_dim or not (self.num_regions or self.global_dim)

    def pack(self, global_feat: torch.Tensor, region_feats: torch.Tensor = None,
             weights: torch.Tensor = None) -> torch.Tensor:
        if self.num_regions == 0:
            return global_feat
        b = global_feat.shape[0]
        return torch.cat([global_feat, region_feats.reshape(b, -1), weights], dim=1)

    def unpack(self, packed: Any, paths: Sequence[str] = ()) -> Features:
        if not self.fits(packed.shape[-1]):
            raise ValueError(
                f"packed features have {packed.shape[-1]} columns but the layout {self} needs "
                f"{self.total_dim}")
        if self.num_regions == 0:
            return Features.of(Features(packed, None, None, tuple(paths)))
        g = packed[:, : self.global_dim]
        n, r = self.num_regions, self.region_dim
        regions = packed[:, self.global_dim: self.global_dim + n * r].reshape(-1, n, r)
        w = packed[:, self.global_dim + n * r:]
        return Features(g, regions, w, tuple(paths))
