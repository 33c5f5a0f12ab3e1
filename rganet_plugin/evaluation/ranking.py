"""CMC, AP and INP under the Market-1501 protocol, vectorised over queries.

Results are those of ``fastreid.evaluation.rank.evaluate_rank(..., use_cython=False)`` (same
protocol, same numbers to float rounding), without its per-query Python loop:

* gallery images with the query's identity *and* camera are dropped ("junk");
* the remaining gallery images with the query's identity are its true matches ("positives");
* queries without any positive are skipped;
* CMC up to ``max_rank`` (50, or the gallery size if smaller), AP, and INP
  (``#positives / (position of the hardest positive + 1)``).

How it is computed (``method="auto"``): only the positions of each query's own-identity gallery
images matter, so instead of arg-sorting every row and walking it, each row is *sorted*
(``np.sort``, several rows in parallel threads) and the rank of every own-identity image is
read off with a binary search (``torch.searchsorted``). Junk images before a positive are then
subtracted. All of this is done for a chunk of queries at once with padded (query, positive)
arrays.

Ties: when a positive or junk image ties exactly with another gallery image, its position
depends on how the sort breaks ties. Rows with such a tie are detected (``searchsorted`` left vs
right) and recomputed by the arg-sort route with ``np.argsort``, the very call fast-reid makes,
so even tied rows give fast-reid's numbers. ``method="argsort"`` uses that route for all rows.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["QueryRanks", "compute_query_ranks", "evaluate_rank", "cmc_from_first_hits",
           "summarize"]


@dataclass
class QueryRanks:
    """Per-query ranking results (length Q, in query order).

    ``valid``: the query has at least one positive (only those are scored). ``first_hit``:
    0-based position of the first positive once junk is removed (-1 when not valid).
    ``num_pos``: number of positives. ``ap``, ``inp``: NaN when not valid.
    """

    valid: np.ndarray
    first_hit: np.ndarray
    num_pos: np.ndarray
    ap: np.ndarray
    inp: np.ndarray
    num_gallery: int
    num_tie_rows: int = 0

    @property
    def num_valid(self) -> int:
        return int(self.valid.sum())


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x


def _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids):
    distmat = _to_numpy(distmat, "distmat")
    q_pids = _to_numpy(q_pids, "q_pids").reshape(-1)
    g_pids = _to_numpy(g_pids, "g_pids").reshape(-1)
    q_camids = _to_numpy(q_camids, "q_camids").reshape(-1)
    g_camids = _to_numpy(g_camids, "g_camids").reshape(-1)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {distmat.shape}")
    num_q, num_g = distmat.shape
    if len(q_pids) != num_q or len(q_camids) != num_q:
        raise ValueError(
            f"distmat has {num_q} query rows but q_pids has {len(q_pids)} and q_camids "
            f"{len(q_camids)} entries")
    if len(g_pids) != num_g or len(g_camids) != num_g:
        raise ValueError(
            f"distmat has {num_g} gallery columns but g_pids has {len(g_pids)} and g_camids "
            f"{len(g_camids)} entries")
    if num_q == 0:
        raise ValueError("cannot evaluate ranking: the query set is empty")
    if num_g == 0:
        raise ValueError("cannot evaluate ranking: the gallery set is empty")
    if not np.issubdtype(distmat.dtype, np.floating):
        distmat = distmat.astype(np.float32)
    return distmat, q_pids, g_pids, q_camids, g_camids


def _default_threads() -> int:
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


def compute_query_ranks(distmat, q_pids, g_pids, q_camids, g_camids, *, chunk_size: int = 256,
                        method: str = "auto", num_threads: Optional[int] = None) -> QueryRanks:
    """Per-query first-hit position, AP and INP (see the module docstring).

    ``distmat`` (Q, G) numpy or torch (smaller = more similar; NaN/inf are rejected).
    ``method``: "auto" (sort + binary search, arg-sort for tied rows) or "argsort".
    """
    distmat, q_pids, g_pids, q_camids, g_camids = _check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids)
    if method not in ("auto", "argsort"):
        raise ValueError(f"method must be 'auto' or 'argsort', got {method!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    num_q, num_g = distmat.shape

    # Own-identity gallery images of every query: the gallery sorted by pid, then a range per query.
    g_order = np.argsort(g_pids, kind="stable")
    g_sorted = g_pids[g_order]
    lo = np.searchsorted(g_sorted, q_pids, side="left")
    cnt = np.searchsorted(g_sorted, q_pids, side="right") - lo

    res = QueryRanks(valid=np.zeros(num_q, bool), first_hit=np.full(num_q, -1, np.int64),
                     num_pos=np.zeros(num_q, np.int64), ap=np.full(num_q, np.nan),
                     inp=np.full(num_q, np.nan), num_gallery=num_g)

    def run_chunk(start: int) -> int:
        stop = min(start + chunk_size, num_q)
        rows = np.arange(start, stop)
        d = distmat[start:stop]
        if not np.isfinite(d).all():
            bad = start + int(np.nonzero(~np.isfinite(d).all(1))[0][0])
            raise ValueError(f"distance matrix has NaN or inf values (query row {bad})")
        if method == "argsort":
            _argsort_rows(d, rows, q_pids, g_pids, q_camids, g_camids, res)
            return 0
        tied = _sorted_rows(d, rows, g_order, lo[start:stop], cnt[start:stop], q_camids,
                            g_camids, res)
        if tied.any():
            _argsort_rows(d[tied], rows[tied], q_pids, g_pids, q_camids, g_camids, res)
        return int(tied.sum())

    starts = list(range(0, num_q, chunk_size))
    threads = min(num_threads or _default_threads(), len(starts))
    if threads > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            ties = list(pool.map(run_chunk, starts))
    else:
        ties = [run_chunk(s) for s in starts]
    res.num_tie_rows = int(sum(ties))
    if res.num_tie_rows:
        logger.debug("%d query rows had tied distances: ranked with np.argsort", res.num_tie_rows)
    return res


def _sorted_rows(d: np.ndarray, rows: np.ndarray, g_order: np.ndarray, lo: np.ndarray,
                 cnt: np.ndarray, q_camids: np.ndarray, g_camids: np.ndarray,
                 res: QueryRanks) -> np.ndarray:
    """Sort + binary-search route for a chunk; returns the mask of rows that need arg-sorting."""
    c = len(rows)
    tied = np.zeros(c, bool)
    p = int(cnt.max()) if c else 0
    if p == 0:  # nobody in this chunk has an own-identity gallery image
        return tied
    ar = np.arange(p)
    pad = ar[None, :] >= cnt[:, None]
    sidx = g_order[np.minimum(lo[:, None] + ar[None, :], len(g_order) - 1)]  # (c, p)
    junk = (g_camids[sidx] == q_camids[rows][:, None]) & ~pad
    pos = ~junk & ~pad
    num_pos = pos.sum(1)

    sd = np.take_along_axis(d, sidx, axis=1)
    srt = torch.from_numpy(np.ascontiguousarray(np.sort(d, axis=1)))
    sd_t = torch.from_numpy(np.ascontiguousarray(sd))
    less = torch.searchsorted(srt, sd_t).numpy()  # images strictly closer than each special one
    less_eq = torch.searchsorted(srt, sd_t, right=True).numpy()
    tied = ((less_eq - less > 1) & ~pad).any(1)

    # Order each row's own-identity images by distance (no ties among them in untied rows).
    sd_key = np.where(pad, np.inf, sd)
    perm = np.argsort(sd_key, axis=1, kind="stable")
    less = np.take_along_axis(less, perm, 1)
    junk = np.take_along_axis(junk, perm, 1)
    pos = np.take_along_axis(pos, perm, 1)
    junk_before = np.cumsum(junk, 1) - junk
    kept = less - junk_before  # position among non-junk images
    ordinal = np.cumsum(pos, 1)
    ok = (num_pos > 0) & ~tied
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(pos, ordinal / (kept + 1.0), 0.0).sum(1) / num_pos
        first = np.where(pos, kept, np.iinfo(np.int64).max).min(1)
        last = np.where(pos, kept, -1).max(1)
        inp = num_pos / (last + 1.0)
    r = rows[ok]
    res.valid[r] = True
    res.first_hit[r] = first[ok]
    res.num_pos[r] = num_pos[ok]
    res.ap[r] = ap[ok]
    res.inp[r] = inp[ok]
    return tied


def _argsort_rows(d: np.ndarray, rows: np.ndarray, q_pids, g_pids, q_camids, g_camids,
                  res: QueryRanks) -> None:
    """fast-reid's own route (``np.argsort`` of each row), vectorised over the rows."""
    c = len(rows)
    if c == 0:
        return
    order = np.argsort(d, axis=1)
    match = g_pids[order] == q_pids[rows][:, None]
    junk = match & (g_camids[order] == q_camids[rows][:, None])
    pos = match & ~junk
    kept = np.cumsum(~junk, axis=1, dtype=np.int64) - 1
    r_idx, c_idx = np.nonzero(pos)  # row-major: positives of each row in rank order
    num_pos = np.bincount(r_idx, minlength=c)
    if len(r_idx) == 0:
        return
    kp = kept[r_idx, c_idx]
    begin = np.cumsum(num_pos) - num_pos
    ordinal = np.arange(len(r_idx)) - begin[r_idx] + 1
    ap = np.bincount(r_idx, weights=ordinal / (kp + 1.0), minlength=c)
    ok = num_pos > 0
    r = rows[ok]
    res.valid[r] = True
    res.num_pos[r] = num_pos[ok]
    res.first_hit[r] = kp[begin[ok]]
    res.ap[r] = ap[ok] / num_pos[ok]
    res.inp[r] = num_pos[ok] / (kp[begin[ok] + num_pos[ok] - 1] + 1.0)


def cmc_from_first_hits(first_hit: np.ndarray, max_rank: int) -> np.ndarray:
    """CMC curve (float32, length ``max_rank``) from the first-hit positions of valid queries.

    A negative first hit (positive not found, see ``faiss_search``) counts as a miss everywhere.
    """
    n = len(first_hit)
    hits = first_hit[(first_hit >= 0) & (first_hit < max_rank)]
    counts = np.cumsum(np.bincount(hits, minlength=max_rank)[:max_rank])
    return counts.astype(np.float32) / float(n)


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, *,
                  chunk_size: int = 256, method: str = "auto",
                  num_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop-in for ``fastreid.evaluation.rank.evaluate_rank`` (Market-1501 protocol).

    Returns ``(cmc, all_AP, all_INP)``: the CMC curve (float32, ``min(max_rank, G)`` long) and
    the AP and INP of every query that has a positive (float64 arrays, in query order).
    Raises ``ValueError`` for mismatched shapes, an empty query or gallery set, or when no query
    has a positive in the gallery.
    """
    ranks = compute_query_ranks(distmat, q_pids, g_pids, q_camids, g_camids,
                                chunk_size=chunk_size, method=method, num_threads=num_threads)
    return ranks_to_metrics(ranks, max_rank)


def ranks_to_metrics(ranks: QueryRanks, max_rank: int = 50
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cmc, all_AP, all_INP)`` from :class:`QueryRanks`."""
    if ranks.num_valid == 0:
        raise ValueError(
            "no query has a true match in the gallery (same identity, different camera): "
            "check that query and gallery identities overlap")
    max_rank = min(max_rank, ranks.num_gallery)
    v = ranks.valid
    return cmc_from_first_hits(ranks.first_hit[v], max_rank), ranks.ap[v], ranks.inp[v]


def summarize(cmc: np.ndarray, all_AP, all_INP) -> Dict[str, float]:
    """fast-reid's result keys, in percent: Rank-1/5/10, mAP, mINP, metric = (mAP + R1) / 2, plus
    Rank-3, which the partial-ReID benchmarks report (Partial-REID, Partial-iLIDS: R1 / R3)."""
    from collections import OrderedDict

    m_ap = float(np.mean(all_AP))
    m_inp = float(np.mean(all_INP))
    out = OrderedDict()
    for r in (1, 3, 5, 10):
        out[f"Rank-{r}"] = float(cmc[min(r, len(cmc)) - 1]) * 100
    out["mAP"] = m_ap * 100
    out["mINP"] = m_inp * 100
    out["metric"] = (m_ap + float(cmc[0])) / 2 * 100
    return out
