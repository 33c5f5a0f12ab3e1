"""Top-k retrieval with faiss for galleries too large for a dense distance matrix.

Eq. (10) is not an inner product of fixed vectors: its denominator ``1 + w^q . w^g`` depends on
both images. Its numerator is, though::

    d(q, g) = 1 - S(q, g) / (1 + W(q, g)),    S = A(q) . A(g),    W = w^q . w^g,
    A(x) = [x_g | w_1 x_1 | ... | w_N x_N]   (unit-normalised parts, see ``distance.py``)

so the search is done in steps, all of them inner-product searches over the gallery vectors
``[A(g) | w^g]`` (one faiss index):

1. **Shortlist**: the ``k' >= k`` items with the largest numerator ``S`` (query ``[A(q) | 0]``),
   re-scored exactly with eq. (10); ``tau`` = the k-th best similarity ``1 - d`` among them.
2. **Threshold search**: ``S / (1 + W) >= tau`` is the same as ``S - tau W >= tau`` (as
   ``1 + W > 0``), an inner product with the query ``[A(q) | -tau w^q]``. The true top-k all
   have a similarity ``>= tau``, so they all score ``>= tau`` here. With an exact ``Flat`` index
   the search is repeated with twice as many results until its last score is below ``tau``:
   then every item that can be in the top-k has been retrieved and re-scored, and the result is
   the dense top-k (up to float32 rounding, ``1e-5``). ``TopK.certified`` marks those queries
   (all of them unless ``max_candidates`` stops the growth). In practice one round suffices.

Approximate indexes (``IVF``, ``HNSW``) run each step once and give no guarantee
(``certified = None``). With the global feature only (``N = 0`` or ``global_only``) ``S`` is the
cosine and step 1 alone is exact.

Index specification: a faiss factory string, optionally followed by ``|`` and faiss
``ParameterSpace`` settings, e.g. ``"Flat"``, ``"IVF1024,Flat|nprobe=32"``,
``"HNSW32|efSearch=256"``. Without settings, IVF indexes search ``nprobe = min(nlist, 32)``
lists and HNSW ``efSearch = max(128, k')``. faiss GPU is used when faiss has GPU support
(``faiss.get_num_gpus() > 0``) and torch sees CUDA (HNSW stays on the CPU: faiss has no GPU HNSW).
faiss GPU searches return at most 2,048 results: a larger shortlist runs on the CPU, and on a GPU
the threshold search stops growing at 2,048 (queries beyond that are left uncertified).

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
from typing import Any, Iterable, Optional, Tuple

import numpy as np
import torch

from .distance import as_features, weighted_embedding
from .ranking import QueryRanks, ranks_to_metrics

logger = logging.getLogger(__name__)

__all__ = ["TopK", "GalleryIndex", "parse_index_spec", "faiss_gpu_available", "build_index",
           "gallery_vectors", "index_gallery", "search_gallery", "search_topk", "topk_query_ranks",
           "evaluate_topk"]


@dataclass
class TopK:
    """Result of :func:`search_topk` (rows in query order, columns nearest first)."""

    distances: np.ndarray  # (Q, k) float32, eq. (10) (or cosine) distances, ascending; inf = none
    indices: np.ndarray  # (Q, k) int64 gallery indices; -1 = no result
    certified: Optional[np.ndarray]  # (Q,) bool: provably the dense top-k; None if approximate
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
                search_k: int = 100, chunks: Optional[Iterable[np.ndarray]] = None,
                total: Optional[int] = None):
    """An inner-product faiss index over ``vectors`` (trained if needed): (index, on_gpu).

    With ``chunks`` (an iterable of row blocks, ``total`` rows in all, e.g. gallery shards read
    from disk) ``vectors`` is only the training sample and the chunks are what is added, one at a
    time, so the whole float32 gallery is never in memory (unless the index stores it)."""
    import faiss

    factory, params = parse_index_spec(spec)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    n = len(vectors) if total is None else int(total)
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        reason = str(e).splitlines()[-1]
        raise ValueError(f"faiss cannot build index {factory!r}: {reason}") from None
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
    for block in ([vectors] if chunks is None else chunks):
        index.add(np.ascontiguousarray(block, dtype=np.float32))
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


_TAU_EPS = 1e-5  # float32 rounding margin of the threshold test
_GPU_MAX_K = 2048  # the largest k faiss GPU indexes can search


@dataclass
class GalleryIndex:
    """A faiss inner-product index over the gallery vectors ``[A(g) | w^g]`` (``A(g)`` alone
    without regions) and the gallery's weighted embedding, which re-scores candidates exactly."""

    index: Any
    a_g: torch.Tensor  # (G, D) weighted embedding, or rows read on demand (``tools/shards.py``)
    w_g: torch.Tensor  # (G, N) confidences
    spec: str = "Flat"
    on_gpu: bool = False

    @property
    def regions(self) -> bool:
        return self.w_g.shape[1] > 0

    @property
    def exact(self) -> bool:
        """A flat index: the threshold search can prove its results exact."""
        import faiss

        if self.on_gpu:
            return type(self.index).__name__ in ("GpuIndexFlat", "GpuIndexFlatIP")
        index = faiss.downcast_index(self.index)
        if isinstance(index, faiss.IndexIDMap):
            index = faiss.downcast_index(index.index)
        return isinstance(index, faiss.IndexFlat)

    @classmethod
    def wrap(cls, index, gallery: Any, spec: str = "") -> "GalleryIndex":
        """A built (or loaded) faiss index of ``gallery`` (checked to match it)."""
        a_g, w_g = gallery_vectors(gallery)
        dim = a_g.shape[1] + w_g.shape[1]
        if int(index.d) != dim or int(index.ntotal) != a_g.shape[0]:
            raise ValueError(f"the faiss index holds {index.ntotal} vectors of {index.d} values, "
                             f"the gallery {a_g.shape[0]} of {dim}: another gallery or model?")
        return cls(index, a_g, w_g, spec)


def gallery_vectors(features: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(A, w)`` of eq. (10)'s numerator (CPU float32); ``A`` alone is indexed when ``N = 0``."""
    return weighted_embedding(as_features(features), "cpu")


def _index_vectors(a: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray((torch.cat([a, w], 1) if w.shape[1] else a).numpy())


def index_gallery(gallery: Any, spec: str = "Flat", use_gpu: Optional[bool] = None,
                  search_k: int = 100) -> GalleryIndex:
    """Build the :class:`GalleryIndex` of a gallery (faiss GPU when available unless
    ``use_gpu=False``)."""
    a_g, w_g = gallery_vectors(gallery)
    if len(a_g) == 0:
        raise ValueError("cannot search: the gallery set is empty")
    index, on_gpu = build_index(_index_vectors(a_g, w_g), spec, use_gpu=use_gpu,
                                search_k=search_k)
    return GalleryIndex(index, a_g, w_g, str(spec), on_gpu)


@torch.no_grad()
def search_topk(query: Any, gallery: Any, k: int = 100, *, index_spec: str = "Flat",
                shortlist: Optional[int] = None, global_only: bool = False,
                refine: bool = True, max_candidates: Optional[int] = None,
                use_gpu: Optional[bool] = None, chunk_size: int = 4096) -> TopK:
    """The ``k`` nearest gallery items of every query under eq. (10) (or the cosine of the global
    feature with ``global_only`` / ``N = 0``): :func:`index_gallery` then
    :func:`search_gallery` (see the module docstring)."""
    qf, gf = as_features(query, "query"), as_features(gallery, "gallery")
    if global_only:
        qf, gf = qf.global_only(), gf.global_only()
    if len(gf) == 0:
        raise ValueError("cannot search: the gallery set is empty")
    k_ = min(max(k, 1), len(gf))
    sl = shortlist if shortlist is not None else (2 * k_ if qf.num_regions else k_)
    t0 = time.perf_counter()
    gidx = index_gallery(gf, index_spec, use_gpu=False if sl > _GPU_MAX_K else use_gpu,
                         search_k=min(max(sl, k_), len(gf)))
    built = time.perf_counter() - t0
    top = search_gallery(gidx, qf, k, shortlist=shortlist, refine=refine,
                         max_candidates=max_candidates, chunk_size=chunk_size)
    top.timings["index"] = built
    return top


@torch.no_grad()
def search_gallery(gidx: GalleryIndex, query: Any, k: int = 100, *,
                   shortlist: Optional[int] = None, refine: bool = True,
                   max_candidates: Optional[int] = None, chunk_size: int = 4096) -> TopK:
    """Top-``k`` of every query over an indexed gallery: shortlist, exact re-scoring, threshold
    search (see the module docstring).

    ``shortlist``: ``k'`` items of the first (numerator) search, default ``2k`` with regions.
    ``refine``: run the threshold searches (exact for ``Flat``); ``max_candidates`` caps how far
    they may grow for one query (default: the gallery size, i.e. always exact with ``Flat``).
    """
    qf = as_features(query, "query")
    a_q, w_q = gallery_vectors(qf)
    a_g, w_g, regions = gidx.a_g, gidx.w_g, gidx.regions
    if a_q.shape[1] != a_g.shape[1] or w_q.shape[1] != w_g.shape[1]:
        raise ValueError(f"query features ({a_q.shape[1]} + {w_q.shape[1]} values) do not match "
                         f"the gallery's ({a_g.shape[1]} + {w_g.shape[1]}): another model?")
    num_q, num_g = len(a_q), len(a_g)
    if num_q == 0:
        raise ValueError("cannot search: the query set is empty")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, num_g)
    if shortlist is None:
        shortlist = 2 * k if regions else k
    shortlist = min(max(shortlist, k), num_g)
    max_candidates = num_g if max_candidates is None else min(max(max_candidates, k), num_g)
    if gidx.on_gpu:
        max_candidates = min(max_candidates, _GPU_MAX_K)
    index, exact = gidx.index, gidx.exact
    raw_scores = _stores_raw_vectors(index)
    timings = {"search": 0.0, "rescore": 0.0}

    def search(rows: np.ndarray, tau: Optional[np.ndarray], n: int):
        t = time.perf_counter()
        extra = torch.zeros_like(w_q[rows]) if tau is None else \
            -torch.from_numpy(tau.astype(np.float32))[:, None] * w_q[rows]
        q_vec = torch.cat([a_q[rows], extra], 1) if regions else a_q[rows]
        scores, cand = index.search(np.ascontiguousarray(q_vec.numpy()), n)
        timings["search"] += time.perf_counter() - t
        return scores, cand.astype(np.int64)

    def rescore(rows: np.ndarray, cand: np.ndarray, scores: np.ndarray,
                tau: Optional[np.ndarray]) -> np.ndarray:
        """Exact eq. (10) distances of the candidates (inf where faiss returned nothing)."""
        t = time.perf_counter()
        missing = cand < 0
        safe = torch.from_numpy(np.where(missing, 0, cand))
        w = torch.einsum("qn,qkn->qk", w_q[rows], w_g[safe]) if regions else None
        if raw_scores:
            s_ = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))
            if tau is not None:  # the search scored S - tau W
                s_ = s_ + torch.from_numpy(tau.astype(np.float32))[:, None] * w
        elif hasattr(a_g, "dot"):  # compressed codes, rows on disk: one pass over the shards
            s_ = a_g.dot(a_q[rows], safe.numpy())
        else:  # compressed codes: recompute S from the full vectors
            s_ = torch.empty(cand.shape, dtype=torch.float32)
            step = max(1, min(chunk_size // 16, (1 << 25) // (cand.shape[1] * a_g.shape[1] + 1)))
            for b in range(0, len(rows), step):
                s_[b:b + step] = torch.einsum("qd,qkd->qk", a_q[rows[b:b + step]],
                                              a_g[safe[b:b + step]])
        dist = (1.0 - s_ / (1.0 + w)) if regions else (1.0 - s_)
        dist[torch.from_numpy(missing)] = float("inf")
        timings["rescore"] += time.perf_counter() - t
        return dist.numpy()

    all_rows = np.arange(num_q)
    scores, cand = search(all_rows, None, shortlist)
    dist = rescore(all_rows, cand, scores, None)
    out_d, out_i = _top_k(dist, cand, k)
    certified = np.ones(num_q, bool) if (exact and (not regions or shortlist >= num_g)) else None

    if regions and refine and shortlist < num_g:
        # Threshold pass: tau = k-th best similarity found so far. {g: S - tau W >= tau} is
        # exactly {g: S / (1 + W) >= tau}, which holds the true top-k: fetch it with one more
        # inner-product search, and grow that search until its last score is below tau.
        certified = np.zeros(num_q, bool) if exact else None
        tau = 1.0 - out_d[:, -1].astype(np.float64)
        tau[~np.isfinite(tau)] = -1.0 - 1e-3  # fewer than k found: every item qualifies
        pending, n = all_rows, max(min(max(shortlist, k + 16), max_candidates), k)
        while len(pending):
            s2, c2 = search(pending, tau[pending], n)
            d2 = rescore(pending, c2, s2, tau[pending])
            both_d = np.concatenate([out_d[pending], d2], 1)
            both_i = np.concatenate([out_i[pending], c2], 1)
            out_d[pending], out_i[pending] = _top_k(both_d, both_i, k)
            if not exact:
                break
            done = (n >= num_g) | (c2[:, -1] < 0) | (s2[:, -1] < tau[pending] - _TAU_EPS)
            certified[pending[done]] = True
            pending = pending[~done]
            if n >= max_candidates:
                break
            n = min(2 * n, max_candidates)
    if certified is not None and not certified.all():
        logger.info("faiss top-%d: %d of %d queries not proven exact (max_candidates %d)",
                    k, int((~certified).sum()), num_q, max_candidates)
    return TopK(out_d.astype(np.float32), out_i, certified, shortlist, gidx.spec, gidx.on_gpu,
                timings)


def _top_k(dist: np.ndarray, cand: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The k smallest distances of each row (nearest first); duplicate candidates count once."""
    by_index = np.argsort(cand, axis=1, kind="stable")
    c = np.take_along_axis(cand, by_index, 1)
    d = np.take_along_axis(dist, by_index, 1)
    dup = np.zeros_like(c, dtype=bool)
    dup[:, 1:] = (c[:, 1:] == c[:, :-1]) & (c[:, 1:] >= 0)
    d = np.where(dup | (c < 0), np.inf, d)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    d, c = np.take_along_axis(d, order, 1), np.take_along_axis(c, order, 1)
    c = np.where(np.isfinite(d), c, -1)
    return d, c


def topk_query_ranks(indices: Any, q_pids, g_pids, q_camids, g_camids) -> QueryRanks:
    """Per-query first hit, approximate AP and INP from top-k lists (see the module docstring)."""
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
        raise ValueError(
            f"{num_q} top-k rows but {len(q_pids)} query pids / {len(q_camids)} camids")
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
