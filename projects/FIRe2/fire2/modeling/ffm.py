"""FFM, Fine-grained Feature Mining: per-identity clustering into fine-grained attribute
pseudo-labels, the cosine fine-grained classifier and the attribute-aware classification loss.

Clustering (:func:`cluster_identities`): the training features of **each identity separately**
are L2-normalised, compared with the k-reciprocal Jaccard distance (k1, k2) and clustered with
DBSCAN (eps, min_samples, precomputed distances). Cluster labels are offset per identity, so a
fine-grained label never spans two identities; outliers (only with min_samples > 1) get a label of
their own. The classifier's weights are re-initialised from the cluster centroids.

Attribute-aware loss (:func:`attribute_aware_loss`), with ``s`` the scale, ``eps`` the share,
``P(i)`` the fine-grained classes of sample i's identity and ``y_i`` its own cluster::

    q_ic = (1 - eps) [c = y_i] + eps / |P(i)| [c in P(i)]
    L = 1/B sum_i sum_c -q_ic log softmax(s cos(f_i, w_c))_c
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["k_reciprocal_jaccard", "cluster_identities", "FineGrainedClassifier",
           "attribute_aware_loss"]


def _k_reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    forward = rank[i, :k + 1]
    backward = rank[forward, :k + 1]
    return forward[np.any(backward == i, axis=1)]


def k_reciprocal_jaccard(feats: np.ndarray, k1: int = 20, k2: int = 6) -> np.ndarray:
    """Jaccard distance of k-reciprocal neighbour sets (Zhong et al., CVPR 2017) between the rows
    of ``feats`` (L2-normalised), as used for clustering in FIRe² / SpCL. Returns an ``(N, N)``
    float32 matrix in [0, 1], 0 on the diagonal.

    Indexing as the paper's code: its neighbour search returns ``k1`` columns (the image itself
    first), and every later slice (``[:k1 + 1]`` for the k1-reciprocal sets, ``[:round(k1/2) + 1]``
    for the expansion, ``[:k2]`` for the query expansion) is taken from those ``k1`` columns; so
    an image's forward set holds itself and its ``k1 - 1`` nearest others. ``k1`` is clamped to
    the number of samples (the search cannot return more)."""
    feats = np.asarray(feats, np.float32)
    n = feats.shape[0]
    if n == 1:
        return np.zeros((1, 1), np.float32)
    k1 = min(k1, n)
    sim = feats @ feats.T
    dist = np.maximum(2.0 - 2.0 * sim, 0.0)
    rank = np.argsort(dist, axis=1, kind="stable")[:, :k1]
    k2 = min(k2, k1)
    v = np.zeros((n, n), np.float32)
    half = int(np.around(k1 / 2))
    for i in range(n):
        rec = _k_reciprocal(rank, i, k1)
        expansion = rec
        for cand in rec:
            cand_rec = _k_reciprocal(rank, cand, half)
            if len(np.intersect1d(cand_rec, rec)) > 2.0 / 3.0 * len(cand_rec):
                expansion = np.append(expansion, cand_rec)
        expansion = np.unique(expansion)
        w = np.exp(-dist[i, expansion] + dist[i, expansion].min())
        v[i, expansion] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.empty((n, n), np.float32)
    for i in range(n):
        inter = np.minimum(v[i][None, :], v).sum(1)
        jac[i] = 1.0 - inter / (2.0 - inter)
    np.fill_diagonal(jac, 0.0)
    return np.clip(jac, 0.0, 1.0)


def cluster_identities(feats: torch.Tensor, pids: Sequence[int], k1: int = 20, k2: int = 6,
                       eps: float = 0.4, min_samples: int = 1
                       ) -> Tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Cluster each identity's features separately.

    Args:
        feats: ``(N, D)`` features of the training images; pids: their identity labels
            (0..P-1, every label present).
    Returns:
        ``labels`` (N,) int64 fine-grained labels (identity-ordered, contiguous, never shared by
        two identities), ``centroids`` (C, D) mean of each cluster's L2-normalised features, and
        ``pid_mask`` (P, C) bool, True where class c belongs to identity p.
    """
    from sklearn.cluster import DBSCAN

    feats = F.normalize(torch.as_tensor(feats, dtype=torch.float32), dim=1)
    pids = np.asarray(pids, np.int64)
    if len(pids) != feats.shape[0]:
        raise ValueError(f"{feats.shape[0]} features but {len(pids)} identity labels")
    num_pids = int(pids.max()) + 1 if len(pids) else 0
    members: Dict[int, List[int]] = defaultdict(list)
    for i, p in enumerate(pids.tolist()):
        members[p].append(i)
    missing = sorted(set(range(num_pids)) - set(members))
    if missing:
        raise ValueError(f"identity labels must be 0..{num_pids - 1} with no gap; missing {missing[:5]}")
    labels = np.empty(len(pids), np.int64)
    centroids, owner = [], []
    offset = 0
    for p in range(num_pids):
        idx = np.asarray(members[p])
        f = feats[idx]
        dist = k_reciprocal_jaccard(f.numpy(), k1, k2)
        raw = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dist)
        n_clusters = int(raw.max()) + 1 if (raw >= 0).any() else 0
        local = raw.copy()
        for j in np.nonzero(raw < 0)[0]:  # outliers: one class each
            local[j] = n_clusters
            n_clusters += 1
        labels[idx] = local + offset
        for c in range(n_clusters):
            centroids.append(f[torch.as_tensor(local == c)].mean(0))
            owner.append(p)
        offset += n_clusters
    centroids_t = torch.stack(centroids) if centroids else torch.zeros(0, feats.shape[1])
    pid_mask = torch.zeros(num_pids, offset, dtype=torch.bool)
    pid_mask[torch.as_tensor(owner), torch.arange(offset)] = True
    return labels, centroids_t, pid_mask


class FineGrainedClassifier(nn.Module):
    """Cosine classifier over the fine-grained classes: ``cos(f, w_c)``; :meth:`reset` replaces
    the weights by the new clusters' centroids (their number changes every epoch)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, dim))
        self.num_classes = 0

    def reset(self, centroids: torch.Tensor) -> nn.Parameter:
        old = self.weight
        self.weight = nn.Parameter(centroids.detach().clone().to(old.device, old.dtype))
        self.num_classes = centroids.shape[0]
        return old

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


def attribute_aware_loss(cos_logits: torch.Tensor, fg_labels: torch.Tensor, positive_mask: torch.Tensor,
                         scale: float = 16.0, epsilon: float = 0.1) -> torch.Tensor:
    """The attribute-aware classification loss (module docstring). ``positive_mask`` (B, C) marks
    the fine-grained classes of each sample's identity (its own cluster included)."""
    pos = positive_mask.to(cos_logits.dtype)
    own = F.one_hot(fg_labels, cos_logits.shape[1]).to(cos_logits.dtype)
    target = (1.0 - epsilon) * own + epsilon * pos / pos.sum(1, keepdim=True).clamp_min(1.0)
    log_p = F.log_softmax(scale * cos_logits, dim=1)
    return (-target * log_p).sum(1).mean()
