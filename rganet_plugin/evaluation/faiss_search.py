"""Top-k retrieval with faiss for galleries too large for a dense distance matrix.

Eq. (10) is not an inner product of fixed vectors: its denominator ``1 + w^q . w^g`` depends on
both images. Its numerator is, though::

    d(q, g) = 1 - S(q, g) / (1 + W(q, g)),    S = A(q) . A(g),    W = w^q . w^g,
    A(x) = [x_g | w_1 x_1 | ... | w_N x_N]   (unit-normalised parts, see ``distance.py``)

so the search is done in two steps:

1. **Shortlist**: the ``k' >= k`` gallery items with the largest ``S`` (a faiss inner-product
   index over ``A(g)``: exact ``Flat``, or approximate ``IVF{nlist},Flat`` / ``HNSW{M}``).
2. **Re-score**: eq. (10) exactly on the shortlist, keep the ``k`` smallest distances.

Since ``1 <= 1 + W``, an item outside an exact shortlist cannot beat the shortlist's ``k``-th
distance when that distance is below ``1 - S_k'`` (``S_k'`` the last shortlisted score; for
``S_k' < 0`` the bound uses the largest possible ``W``). ``TopK.certified`` marks the queries
for which this proves the result equals the dense top-k (exact ``Flat`` index, non-negative
confidences). With the global feature only (``N = 0`` or ``global_only``) ``S`` is the cosine and
no re-scoring is needed.

Index specification: a faiss factory string, optionally followed by ``|`` and faiss
``ParameterSpace`` settings, e.g. ``"Flat"``, ``"IVF1024,Flat|nprobe=32"``,
``"HNSW32|efSearch=256"``. Without settings, IVF indexes search ``nprobe = min(nlist, 32)``
lists and HNSW ``efSearch = max(128, k')``. faiss GPU is used when faiss has GPU support
(``faiss.get_num_gpus() > 0``) and torch sees CUDA (HNSW stays on the CPU: faiss has no GPU HNSW).

Metrics from top-k lists (``evaluate_topk``) are exact for CMC up to the list length (minus the
junk images in it). AP is approximate: positives that were not retrieved count as missed, i.e.
contribute zero precision, while the number of positives is the true one from the labels; the
result is a lower bound of the dense AP and equals it when every positive is retrieved. INP of a
query whose hardest positive was not retrieved is counted as 0 (also a lower bound).
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

import numpy as np
import torch

from .distance import as_features, weighted_embedding
from .ranking import QueryRanks, ranks_to_metrics

logger = logging.getLogger(__name__)

__all__ = ["TopK", "parse_index_spec", "faiss_gpu_available", "build_index", "search_topk",
           "topk_query_ranks", "evaluate_topk"]


@dataclass
class TopK:
    """Result of :func:`search_topk` (rows in query order, columns nearest first)."""

    distances: np.ndarray  # (Q, k) float32, eq. (10) (or cosine) distances, ascending; inf = none
    indices: np.ndarray  # (Q, k) int64 gallery indices; -1 = no result
    certified: Optional[np.ndarray]  # (Q,) bool, see the module docstring; None if approximate
    shortlist: int
    index_spec: str
    on_gpu: bool
    timings: dict = field(default_factory=dict)


def parse_index_spec(spec: str) -> Tuple[str, str]:
    """Split ``"IVF1024,Flat|nprobe=32"`` into the factory string and the parameter string."""
    factory, _, params = str(spec).partition("|")
    factory, params = factory.strip(), params.strip()
    if not factory:
        raise ValueError(f"empty faiss index specification {spec!r}")
    return factory, params


def faiss_gpu_available() -> bool:
    import faiss

    return (hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
            and torch.cuda.is_available())


def _is_exact_flat(factory: str) -> bool:
    return factory.replace(" ", "") in ("Flat", "IDMap,Flat")


def _stores_raw_vectors(index) -> bool:
    """True when the scores faiss returns are exact inner products of the stored vectors."""
    import faiss

    index = faiss.downcast_index(index)
    if isinstance(index, (faiss.IndexFlat, faiss.IndexIVFFlat)):
        return True
    if isinstance(index, faiss.IndexHNSW):
        return isinstance(faiss.downcast_index(index.storage), faiss.IndexFlat)
    return type(index).__name__ in ("GpuIndexFlat", "GpuIndexFlatIP", "GpuIndexIVFFlat")


def build_index(vectors: np.ndarray, spec: str = "Flat", use_gpu: Optional[bool] = None,
                search_k: int = 100):
    """An inner-product faiss index over ``vectors`` (trained if needed). Returns (index, on_gpu)."""
    import faiss

    factory, params = parse_index_spec(spec)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValueError(f"faiss cannot build index {factory!r}: {str(e).splitlines()[-1]}") from None
    m = re.match(r"IVF(\d+)", factory)
    if m and int(m.group(1)) > n:
        raise ValueError(
            f"faiss index {factory!r} has {m.group(1)} lists but the gallery has only {n} "
            f"vectors: use fewer lists or 'Flat'")
    on_gpu = False
    if use_gpu is None:
        use_gpu = faiss_gpu_available()
    if use_gpu:
        try:
            res = faiss.StandardGpuResources()
            index = faiss.index_cpu_to_gpu(res, 0, index)
            index._rganet_gpu_res = res  # keep the resources alive with the index
            on_gpu = True
        except Exception as e:  # e.g. HNSW: no GPU implementation
            logger.info("faiss index %r stays on the CPU (%s)", factory, e)
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    ps = faiss.GpuParameterSpace() if on_gpu else faiss.ParameterSpace()
    if not params:
        defaults = []
        if m:
            defaults.append(f"nprobe={min(int(m.group(1)), 32)}")
        if factory.startswith("HNSW"):
            defaults.append(f"efSearch={max(128, search_k)}")
        params = ",".join(defaults)
    if params:
        ps.set_index_parameters(index, params)
    return index, on_gpu


def _certify(s_last: np.ndarray, d_kth: np.ndarray, w_q: np.ndarray, w_g: np.ndarray) -> np.ndarray:
    """Queries whose re-scored top-k provably equals the dense eq. (10) top-k (exact shortlist)."""
    if w_q.shape[1] == 0:
        return np.ones(len(s_last), bool)
    if (w_q < 0).any() or (w_g < 0).any():
        return np.zeros(len(s_last), bool)
    w_max = w_q @ w_g.max(0)  # the largest W(q, g) any gallery item can give
    best_outside = np.where(s_last >= 0, s_last, s_last / (1.0 + w_max))  # largest S/(1+W) outside
    return d_kth <= 1.0 - best_outside


@torch.no_grad()
def search_topk(query: Any, gallery: Any, k: int = 100, *, index_spec: str = "Flat",
                shortlist: Optional[int] = None, global_only: bool = False,
                use_gpu: Optional[bool] = None, chunk_size: int = 4096) -> TopK:
    """The ``k`` nearest gallery items of every query under eq. (10) (or cosine of the global
    feature with ``global_only`` / ``N = 0``). ``shortlist``: ``k'`` candidates re-scored exactly
    (default ``2k`` with regions, ``k`` without). See the module docstring.
    """
    qf, gf = as_features(query, "query"), as_features(gallery, "gallery")
    if global_only:
        qf, gf = as_features(qf.global_feat), as_features(gf.global_feat)
    if qf.global_feat.shape[1] != gf.global_feat.shape[1] or \
            qf.region_feats.shape[1:] != gf.region_feats.shape[1:]:
        raise ValueError("query and gallery features have different shapes")
    num_q, num_g = len(qf), len(gf)
    if num_q == 0:
        raise ValueError("cannot search: the query set is empty")
    if num_g == 0:
        raise ValueError("cannot search: the gallery set is empty")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, num_g)
    regions = qf.num_regions > 0
    if shortlist is None:
        shortlist = 2 * k if regions else k
    shortlist = min(max(shortlist, k), num_g)
    timings = {}

    t0 = time.perf_counter()
    a_g, w_g = weighted_embedding(gf, "cpu")
    a_q, w_q = weighted_embedding(qf, "cpu")
    a_g_np, a_q_np = a_g.numpy(), a_q.numpy()
    factory, _ = parse_index_spec(index_spec)
    index, on_gpu = build_index(a_g_np, index_spec, use_gpu=use_gpu, search_k=shortlist)
    timings["index"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scores, cand = index.search(a_q_np, shortlist)
    timings["search"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cand = cand.astype(np.int64)
    missing = cand < 0
    safe = np.where(missing, 0, cand)
    if not _stores_raw_vectors(index):  # compressed codes: recompute S from the full vectors
        scores = np.empty(cand.shape, np.float32)
        for s in range(0, num_q, max(1, chunk_size // 16)):
            e = min(num_q, s + max(1, chunk_size // 16))
            c = torch.from_numpy(safe[s:e])
            scores[s:e] = torch.einsum("qd,qkd->qk", a_q[s:e], a_g[c]).numpy()
    scores = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))
    if regions:
        w = torch.einsum("qn,qkn->qk", w_q, w_g[torch.from_numpy(safe)])
        dist = 1.0 - scores / (1.0 + w)
    else:
        dist = 1.0 - scores
    dist[torch.from_numpy(missing)] = float("inf")
    dist, order = torch.sort(dist, dim=1, stable=True)
    dist, order = dist[:, :k].numpy(), order[:, :k].numpy()
    indices = np.take_along_axis(cand, order, 1)
    certified = None
    if _is_exact_flat(factory):
        if shortlist >= num_g:
            certified = np.ones(num_q, bool)
        else:
            s_last = scores[:, -1].numpy().astype(np.float64)
            certified = _certify(s_last, dist[:, -1].astype(np.float64), w_q.numpy(), w_g.numpy())
    timings["rescore"] = time.perf_counter() - t0
    if certified is not None and not certified.all():
        logger.info("faiss top-%d: %d of %d queries not certified exact with a shortlist of %d",
                    k, int((~certified).sum()), num_q, shortlist)
    return TopK(dist.astype(np.float32), indices, certified, shortlist, str(index_spec), on_gpu,
                timings)


def topk_query_ranks(indices: Any, q_pids, g_pids, q_camids, g_camids) -> QueryRanks:
    """Per-query first hit / approximate AP / INP from top-k gallery lists (see module docstring)."""
    if isinstance(indices, TopK):
        indices = indices.indices
    indices = np.asarray(indices, dtype=np.int64)
    q_pids, g_pids = np.asarray(q_pids).reshape(-1), np.asarray(g_pids).reshape(-1)
    q_camids, g_camids = np.asarray(q_camids).reshape(-1), np.asarray(g_camids).reshape(-1)
    if indices.ndim != 2:
        raise ValueError(f"indices must be 2-D (num_query, k), got shape {indices.shape}")
    num_q, k = indices.shape
    if num_q == 0:
        raise ValueError("cannot evaluate ranking: the query set is empty")
    if len(q_pids) != num_q or len(q_camids) != num_q:
        raise ValueError(f"{num_q} top-k rows but {len(q_pids)} query pids / {len(q_camids)} camids")
    if len(g_pids) != len(g_camids) or len(g_pids) == 0:
        raise ValueError(f"gallery pids ({len(g_pids)}) and camids ({len(g_camids)}) must be "
                         "non-empty and of equal length")
    if indices.max(initial=-1) >= len(g_pids):
        raise ValueError("top-k indices point past the end of the gallery")

    # True number of positives per query from the labels: same pid minus same (pid, camid).
    _, pid_code = np.unique(np.concatenate([q_pids, g_pids]), return_inverse=True)
    _, cam_code = np.unique(np.concatenate([q_camids, g_camids]), return_inverse=True)
    pid_code, cam_code = pid_code.reshape(-1), cam_code.reshape(-1)
    n_cam = int(cam_code.max()) + 1
    pair = pid_code * n_cam + cam_code
    q_pid_c, g_pid_c = pid_code[:num_q], pid_code[num_q:]
    q_pair, g_pair = pair[:num_q], pair[num_q:]
    total_pos = (np.bincount(g_pid_c, minlength=pid_code.max() + 1)[q_pid_c]
                 - np.bincount(g_pair, minlength=pair.max() + 1)[q_pair])

    present = indices >= 0
    safe = np.where(present, indices, 0)
    match = (g_pid_c[safe] == q_pid_c[:, None]) & present
    junk = match & (g_pair[safe] == q_pair[:, None])
    pos = match & ~junk
    kept = np.cumsum(present & ~junk, axis=1) - 1
    ordinal = np.cumsum(pos, axis=1)
    found = pos.sum(1)
    valid = total_pos > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(pos, ordinal / (kept + 1.0), 0.0).sum(1) / total_pos
        last = np.where(pos, kept, -1).max(1)
        inp = np.where(found == total_pos, total_pos / (last + 1.0), 0.0)
    first = np.where(pos, kept, np.iinfo(np.int64).max).min(1)
    first = np.where(found > 0, first, -1)
    nan = np.full(num_q, np.nan)
    return QueryRanks(valid=valid, first_hit=np.where(valid, first, -1),
                      num_pos=np.where(valid, total_pos, 0), ap=np.where(valid, ap, nan),
                      inp=np.where(valid, inp, nan), num_gallery=k)


def evaluate_topk(indices: Any, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cmc, all_AP, all_INP)`` from top-k lists; CMC is ``min(max_rank, k)`` long."""
    return ranks_to_metrics(topk_query_ranks(indices, q_pids, g_pids, q_camids, g_camids),
                            max_rank)
