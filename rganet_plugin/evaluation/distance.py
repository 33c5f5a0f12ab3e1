"""Query-gallery distances for RGANet: the weighted region distance of eq. (10) and plain cosine.

Eq. (10) of the paper combines the global distance and the N region distances, each region
weighted by the product of the two images' confidences::

    d(q, g) = (sum_j w_j^q w_j^g d_j + d_g) / (sum_j w_j^q w_j^g + 1),     d_* = 1 - cos(., .)

With unit-normalised features the numerator is ``(W + 1) - S`` where ``W = w^q . w^g`` and ::

    S = q_g . g_g + sum_j (w_j^q q_j) . (w_j^g g_j) = A(q) . A(g),
    A(x) = [ x_g | w_1 x_1 | ... | w_N x_N ]          (the "weighted embedding", G + N*R values)

so ``d = 1 - S / (W + 1)``: one matrix product of the weighted embeddings, one small (N-wide)
product of the confidences, and an element-wise division. No loop over regions. The query rows
are processed in chunks so that only ``chunk_size x #gallery`` intermediate values exist at once;
the result is a float32 numpy array, the format fast-reid's ranking code consumes.

``weighted_region_distance_naive`` is the literal, per-region reading of eq. (10). It is the
reference the tests and ``benchmarks/bench_evaluation.py`` compare against.

Features may be given as :class:`~rganet_plugin.modeling.outputs.Features`, as a ``(global,
regions, weights)`` tuple, or as a single 2-D tensor (global feature only, ``N = 0``). Numpy
arrays are accepted wherever tensors are.
"""
from __future__ import annotations

import os
from typing import Any, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.outputs import Features

__all__ = [
    "Features",
    "as_features",
    "resolve_device",
    "weighted_embedding",
    "weighted_region_distance",
    "weighted_region_distance_naive",
    "global_distance",
]

DeviceLike = Union[str, torch.device, None]
_EPS = 1e-12  # as F.normalize

# Which BLAS computes the big CPU matrix product. numpy's OpenBLAS uses AVX-512 on AMD CPUs where
# torch's MKL falls back to AVX2: measured 1.7x faster on the project's AMD EPYC machine, and on
# par elsewhere. RGANET_CPU_MATMUL=torch selects torch.mm instead.
_CPU_MATMUL = os.environ.get("RGANET_CPU_MATMUL", "numpy")


def _mm_into(a: torch.Tensor, b_t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = a @ b_t`` for CPU float32 tensors, ``out`` a contiguous view that is written."""
    if _CPU_MATMUL == "numpy":
        np.matmul(a.numpy(), b_t.numpy(), out=out.numpy())
        return out
    return torch.mm(a, b_t, out=out)


#: the accepted input forms as validated torch tensors (:meth:`Features.of`)
as_features = Features.of


def _check_pair(q: Features, g: Features) -> None:
    if q.global_feat.shape[1] != g.global_feat.shape[1]:
        raise ValueError(
            f"query and gallery global features differ in size: {q.global_feat.shape[1]} vs "
            f"{g.global_feat.shape[1]}")
    if q.region_feats.shape[1:] != g.region_feats.shape[1:]:
        raise ValueError(
            f"query and gallery region features differ: (N, R) = {tuple(q.region_feats.shape[1:])} "
            f"vs {tuple(g.region_feats.shape[1:])}")


def resolve_device(device: DeviceLike = None) -> torch.device:
    """``None``/"auto": CUDA when available, else the CPU. A CUDA request without CUDA -> CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    return device


def weighted_embedding(x: Any, device: DeviceLike = "cpu") -> Tuple[torch.Tensor, torch.Tensor]:
    """``A(x) = [x_g | w_1 x_1 | ... | w_N x_N]`` with unit-normalised parts, and ``w`` (float32).

    ``A(q) . A(g)`` is the similarity part of eq. (10); ``N = 0`` gives the normalised global
    feature. Zero vectors stay zero (cosine 0 with everything, distance 1).
    """
    f = as_features(x)
    dev = resolve_device(device)
    g = f.global_feat.to(dev, torch.float32)
    w = f.weights.to(dev, torch.float32)
    if f.num_regions == 0:
        return F.normalize(g, p=2, dim=1).contiguous(), w
    r = f.region_feats.to(dev, torch.float32)
    b, n, rd = r.shape
    gd = g.shape[1]
    a = torch.empty((b, gd + n * rd), dtype=torch.float32, device=dev)
    # Written in place: [g / |g| | r_j * (w_j / |r_j|)], one pass over the features.
    torch.div(g, g.norm(dim=1, keepdim=True).clamp_min_(_EPS), out=a[:, :gd])
    scale = w / r.norm(dim=2).clamp_min_(_EPS)
    torch.mul(r, scale.unsqueeze(2), out=a[:, gd:].view(b, n, rd))
    return a, w


@torch.no_grad()
def weighted_region_distance(q: Any, g: Any, chunk_size: int = 4096,
                             device: DeviceLike = None) -> np.ndarray:
    """Eq. (10) for every query-gallery pair, as a (Q, G) float32 numpy array.

    Vectorised (two matrix products per chunk, no loop over regions), chunked over query rows
    (``chunk_size`` rows at a time), on CUDA when available (``device=None``). With ``N = 0`` it
    is the cosine distance of the global features.
    """
    qf, gf = as_features(q, "query"), as_features(g, "gallery")
    _check_pair(qf, gf)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dev = resolve_device(device)
    num_q, num_g = len(qf), len(gf)
    out = torch.empty((num_q, num_g), dtype=torch.float32)
    if num_q == 0 or num_g == 0:
        return out.numpy()
    a_g, w_g = weighted_embedding(gf, dev)
    a_g_t, w_g_t = a_g.t(), w_g.t()
    with_regions, on_cpu = qf.num_regions > 0, dev.type == "cpu"
    one = torch.ones((), dtype=torch.float32, device=dev)
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        a_q, w_q = weighted_embedding(qf.rows(start, stop), dev)
        sim = _mm_into(a_q, a_g_t, out[start:stop]) if on_cpu else torch.mm(a_q, a_g_t)  # in place
        if with_regions:  # 1 - S / (W + 1) in one pass over S (W + 1 from a K = N product)
            torch.addcdiv(one, sim, torch.addmm(one, w_q, w_g_t), value=-1.0, out=sim)
        else:
            sim.neg_().add_(1.0)  # 1 - S
        if not on_cpu:
            out[start:stop].copy_(sim)
    return out.numpy()


@torch.no_grad()
def weighted_region_distance_naive(q: Any, g: Any,
                                   dtype: torch.dtype = torch.float64) -> np.ndarray:
    """Eq. (10) read literally: one cosine-distance matrix per region, then the weighted average.

    The reference implementation (tests, benchmark). Runs on the CPU in ``dtype``.
    """
    qf, gf = as_features(q, "query"), as_features(g, "gallery")
    _check_pair(qf, gf)

    def cosdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = F.normalize(a.to(dtype), p=2, dim=1)
        b = F.normalize(b.to(dtype), p=2, dim=1)
        return 1.0 - a @ b.t()

    numerator = cosdist(qf.global_feat, gf.global_feat)  # d_g
    denominator = torch.ones_like(numerator)
    for j in range(qf.num_regions):
        ww = qf.weights[:, j].to(dtype)[:, None] * gf.weights[:, j].to(dtype)[None, :]
        numerator += ww * cosdist(qf.region_feats[:, j], gf.region_feats[:, j])
        denominator += ww
    return (numerator / denominator).numpy()


@torch.no_grad()
def global_distance(q: Any, g: Any, metric: str = "cosine", chunk_size: int = 4096,
                    device: DeviceLike = None) -> np.ndarray:
    """Distance of the global features only, as fast-reid's ``build_dist`` computes it.

    ``metric``: "cosine" (``1 - cos``) or "euclidean" (squared, as fast-reid). Region features and
    weights, if given, are ignored. Chunked over query rows; float32 numpy (Q, G).
    """
    qg = as_features(q, "query").global_feat
    gg = as_features(g, "gallery").global_feat
    if qg.shape[1] != gg.shape[1]:
        raise ValueError(
            f"query and gallery global features differ in size: {qg.shape[1]} vs {gg.shape[1]}")
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if metric == "cosine":
        return weighted_region_distance(qg, gg, chunk_size=chunk_size, device=device)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dev = resolve_device(device)
    out = torch.empty((qg.shape[0], gg.shape[0]), dtype=torch.float32)
    b = gg.to(dev, torch.float32)
    b2 = b.pow(2).sum(1)[None, :]
    for start in range(0, qg.shape[0], chunk_size):
        a = qg[start:start + chunk_size].to(dev, torch.float32)
        rows = out[start:start + a.shape[0]]
        if dev.type == "cpu":  # |a|^2 + |b|^2 - 2 a.b, in place in the output rows
            _mm_into(a, b.t(), rows).mul_(-2.0).add_(a.pow(2).sum(1, keepdim=True)).add_(b2)
        else:
            rows.copy_(torch.addmm(a.pow(2).sum(1, keepdim=True) + b2, a, b.t(), beta=1,
                                   alpha=-2))
    return out.numpy()
