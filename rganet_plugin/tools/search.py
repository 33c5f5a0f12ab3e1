"""``index`` and ``search``: a faiss index over extracted gallery features, and top-k retrieval of
query images with the weighted region distance of eq. (10).

::

    python -m rganet_plugin.tools index --features gallery.npz --out gallery.faiss
    python -m rganet_plugin.tools search --index gallery.faiss --features gallery.npz \\
        --query person.jpg --topk 10

What is indexed: eq. (10) is not an inner product of fixed vectors (its denominator
``1 + w^q . w^g`` depends on both images), but its numerator is. With
``A(x) = [x_g | w_1 x_1 | ... | w_N x_N]`` (unit-normalised parts,
:func:`rganet_plugin.evaluation.distance.weighted_embedding`) the index stores ``[A(g) | w^g]``
(inner-product metric), the vectors :mod:`rganet_plugin.evaluation.faiss_search` uses, and a
search is done in two inner-product passes:

1. the ``k' = max(2k, k + 16)`` items with the largest numerator (query ``[A(q) | 0]``), re-scored
   exactly with eq. (10) from the features file; ``tau`` = the k-th best similarity ``1 - d``;
2. ``S / (1 + W) >= tau`` is ``S - tau W >= tau``: the query ``[A(q) | -tau w^q]`` fetches every
   item that can still enter the top-k. With a ``Flat`` index this pass is repeated with twice as
   many results until its last score is below ``tau``, so the list is the exact top-k of eq. (10)
   (what the dense evaluator ranks). Approximate indexes (``IVF...``, ``HNSW...``) run it once.

Without regions (the baseline, ``N = 0``) the index holds the normalised global feature and the
first pass alone is exact (cosine distance).

``index`` also writes ``<index>.json`` next to the index: the features file, its number of rows
and the vector size, which ``search`` checks so that an index is never used with the features of
another gallery. Query features come from the model named in the gallery file's ``meta`` (or
``--config-file`` / ``--weights``), or from ``--query-features`` (an ``extract`` file).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .extract import load_features, load_meta
from .predictor import (Features, add_extraction_arguments, build_predictor, prog_name,
                        quiet_warnings, setup_cli_logging, split_overrides)

__all__ = ["gallery_vectors", "build_gallery_index", "save_index", "load_index", "SearchResult",
           "search_index", "region_distances", "main_index", "main_search"]

_TAU_EPS = 1e-5


def _torch_features(f: Features):
    from ..evaluation.distance import as_features

    return as_features((torch.from_numpy(f.global_feat), torch.from_numpy(f.region_feats),
                        torch.from_numpy(f.weights)))


def gallery_vectors(f: Features) -> Tuple[np.ndarray, np.ndarray, bool]:
    """``(A, w, has_regions)``: the weighted embedding ``A`` (M, G + N*R) and ``w`` (M, N)."""
    from ..evaluation.distance import weighted_embedding

    a, w = weighted_embedding(_torch_features(f), "cpu")
    return a.numpy(), w.numpy(), f.region_feats.shape[1] > 0


def _index_vectors(a: np.ndarray, w: np.ndarray, regions: bool) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([a, w], 1) if regions else a, dtype=np.float32)


def build_gallery_index(f: Features, spec: str = "Flat", use_gpu: Optional[bool] = False):
    """A faiss inner-product index over ``[A(g) | w^g]`` (``faiss_search.build_index``)."""
    from ..evaluation.faiss_search import build_index

    a, w, regions = gallery_vectors(f)
    index, on_gpu = build_index(_index_vectors(a, w, regions), spec, use_gpu=use_gpu)
    if on_gpu:
        import faiss

        index = faiss.index_gpu_to_cpu(index)
    return index


def _sidecar(path: str) -> str:
    return path + ".json"


def save_index(index, path: str, features_path: str, f: Features, spec: str) -> None:
    import faiss

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    faiss.write_index(index, path)
    info = {"features": os.path.abspath(features_path), "num_vectors": int(index.ntotal),
            "dim": int(index.d), "spec": spec,
            "layout": [int(f.global_feat.shape[1]), int(f.region_feats.shape[1]),
                       int(f.region_feats.shape[2])],
            "features_size": os.path.getsize(features_path)}
    with open(_sidecar(path), "w") as fh:
        json.dump(info, fh, indent=1)


def load_index(path: str, f: Features, features_path: str = "", params: str = ""):
    """Read an index and check it belongs to the features ``f``."""
    import faiss

    if not os.path.isfile(path):
        raise FileNotFoundError(f"faiss index not found: {path}")
    try:
        index = faiss.read_index(path)
    except RuntimeError as e:
        raise ValueError(f"{path} is not a faiss index: {str(e).splitlines()[-1]}") from None
    n = len(f)
    want_dim = f.global_feat.shape[1] + f.region_feats.shape[1] * (f.region_feats.shape[2] + 1)
    if f.region_feats.shape[1] == 0:
        want_dim = f.global_feat.shape[1]
    if index.ntotal != n or index.d != want_dim:
        raise ValueError(
            f"{path} ({index.ntotal} vectors of {index.d} values) does not belong to the features "
            f"file ({n} images, {want_dim}-value vectors): rebuild it with 'index'")
    side = _sidecar(path)
    if features_path and os.path.isfile(side):
        with open(side) as fh:
            info = json.load(fh)
        if info.get("features_size") not in (None, os.path.getsize(features_path)):
            raise ValueError(f"{path} was built from {info.get('features')}, which differs from "
                             f"{features_path}: rebuild it with 'index'")
        params = params or info.get("spec", "").partition("|")[2]
    if params:
        faiss.ParameterSpace().set_index_parameters(index, params)
    return index


def _is_flat(index) -> bool:
    import faiss

    return isinstance(faiss.downcast_index(index), faiss.IndexFlat)


@dataclass
class SearchResult:
    """Top-k of every query (rows in query order, nearest first)."""

    distances: np.ndarray  # (Q, k) float32 eq. (10) distances; inf where nothing was found
    indices: np.ndarray  # (Q, k) int64 gallery rows; -1 where nothing was found
    exact: np.ndarray  # (Q,) bool: provably the exact top-k of eq. (10)


def _merge(dist: np.ndarray, cand: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The k nearest distinct candidates of each row."""
    out_d = np.full((len(dist), k), np.inf, np.float32)
    out_i = np.full((len(dist), k), -1, np.int64)
    for r in range(len(dist)):
        best: Dict[int, float] = {}
        for c, d in zip(cand[r].tolist(), dist[r].tolist()):
            if c >= 0 and (c not in best or d < best[c]):
                best[c] = d
        items = sorted(best.items(), key=lambda t: (t[1], t[0]))[:k]
        for j, (c, d) in enumerate(items):
            out_i[r, j], out_d[r, j] = c, d
    return out_d, out_i


def search_index(index, gallery: Features, query: Features, k: int = 10,
                 shortlist: Optional[int] = None, max_rounds: int = 32) -> SearchResult:
    """Top-``k`` gallery items of every query under eq. (10), see the module docstring."""
    a_g, w_g, regions = gallery_vectors(gallery)
    a_q, w_q, q_regions = gallery_vectors(query)
    if a_q.shape[1] != a_g.shape[1] or w_q.shape[1] != w_g.shape[1]:
        raise ValueError(f"query features ({a_q.shape[1]} + {w_q.shape[1]} values) do not match "
                         f"the gallery's ({a_g.shape[1]} + {w_g.shape[1]}): another model?")
    num_g, num_q = len(a_g), len(a_q)
    if num_g == 0 or num_q == 0:
        raise ValueError("cannot search: empty query or gallery")
    k = max(1, min(int(k), num_g))
    n = min(num_g, shortlist or (max(2 * k, k + 16) if regions else k))

    def rescore(rows, cand):
        safe = np.where(cand < 0, 0, cand)
        s = np.einsum("qd,qkd->qk", a_q[rows], a_g[safe])
        d = 1.0 - (s / (1.0 + np.einsum("qn,qkn->qk", w_q[rows], w_g[safe])) if regions else s)
        return np.where(cand < 0, np.inf, d).astype(np.float32)

    def query_vecs(rows, tau=None):
        if not regions:
            return np.ascontiguousarray(a_q[rows])
        extra = np.zeros_like(w_q[rows]) if tau is None else -tau[:, None] * w_q[rows]
        return np.ascontiguousarray(np.concatenate([a_q[rows], extra], 1), dtype=np.float32)

    rows = np.arange(num_q)
    _, cand = index.search(query_vecs(rows), n)
    out_d, out_i = _merge(rescore(rows, cand), cand, k)
    flat = _is_flat(index)
    exact = np.full(num_q, flat and (not regions or n >= num_g))
    if regions and n < num_g:
        tau = (1.0 - out_d[:, -1].astype(np.float64))
        tau[~np.isfinite(tau)] = -1.0 - 1e-3  # fewer than k found: everything qualifies
        pending, m = rows, n
        for _ in range(max_rounds):
            scores, c2 = index.search(query_vecs(pending, tau[pending].astype(np.float32)), m)
            d2 = rescore(pending, c2)
            out_d[pending], out_i[pending] = _merge(np.concatenate([out_d[pending], d2], 1),
                                                    np.concatenate([out_i[pending], c2], 1), k)
            if not flat:
                break
            done = (m >= num_g) | (c2[:, -1] < 0) | (scores[:, -1] < tau[pending] - _TAU_EPS)
            exact[pending[done]] = True
            pending = pending[~done]
            if not len(pending):
                break
            m = min(2 * m, num_g)
    return SearchResult(out_d, out_i, exact)


def region_distances(query: Features, qi: int, gallery: Features, gi: Sequence[int]
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """``(d_g, d_j)`` of one query against gallery rows ``gi``: global cosine distance (K,) and
    per-region cosine distances (K, N)."""
    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    gi = np.asarray(gi, dtype=np.int64)
    dg = 1.0 - unit(gallery.global_feat[gi]) @ unit(query.global_feat[qi])
    if query.region_feats.shape[1] == 0:
        return dg.astype(np.float32), np.zeros((len(gi), 0), np.float32)
    dj = 1.0 - np.einsum("knd,nd->kn", unit(gallery.region_feats[gi]),
                         unit(query.region_feats[qi]))
    return dg.astype(np.float32), dj.astype(np.float32)


# ---------------------------------------------------------------------- command line
def build_index_parser(prog: str = prog_name("index")) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Build a faiss index over the gallery features written by "
        "'extract' (vectors [A(g) | w], see docs/tools.md).")
    p.add_argument("--features", required=True, metavar="FILE.npz", help="gallery features")
    p.add_argument("--out", required=True, metavar="FILE.faiss", help="output index")
    p.add_argument("--index-spec", default="Flat",
                   help="faiss factory string, optionally '|params': 'Flat' (exact, default), "
                   "'IVF256,Flat|nprobe=16', 'HNSW32|efSearch=128'")
    p.add_argument("--gpu", action="store_true", help="build on a GPU (faiss-gpu) if available")
    return p


def main_index(argv: Optional[Sequence[str]] = None) -> int:
    args = build_index_parser().parse_args(argv)
    setup_cli_logging()
    try:
        f = load_features(args.features)
        t0 = time.perf_counter()
        index = build_gallery_index(f, args.index_spec, use_gpu=None if args.gpu else False)
        save_index(index, args.out, args.features, f, args.index_spec)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {index.ntotal} vectors of {index.d} values ({args.index_spec}, "
          f"{time.perf_counter() - t0:.2f}s)")
    return 0


def build_search_parser(prog: str = prog_name("search")) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Rank the gallery of an index for query images with eq. (10).")
    p.add_argument("--index", required=True, metavar="FILE.faiss")
    p.add_argument("--features", required=True, metavar="FILE.npz",
                   help="the gallery features the index was built from")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--query", nargs="+", metavar="PATH", help="query image(s) and/or folder(s)")
    q.add_argument("--query-features", metavar="FILE.npz", help="query features from 'extract'")
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--config-file", default="", metavar="FILE",
                   help="model config (default: the one recorded in the gallery features file)")
    p.add_argument("--weights", default="", metavar="PATH",
                   help="checkpoint (default: the one recorded in the gallery features file)")
    p.add_argument("--device", default="auto")
    p.add_argument("--params", default="", help="faiss search parameters, e.g. 'nprobe=32'")
    p.add_argument("--details", action="store_true",
                   help="also print the global distance d_g and every region distance d_j")
    p.add_argument("--json", default="", metavar="FILE", help="also write the results as JSON")
    add_extraction_arguments(p)
    p.add_argument("opts", nargs="*", default=[], metavar="KEY VALUE", help="config overrides")
    return p


def _query_features(args, gallery_path: str) -> Features:
    if args.query_features:
        return load_features(args.query_features)
    from ..data.folder import collect_images

    paths = collect_images(args.query)
    meta = load_meta(gallery_path)
    cfg_file = args.config_file or meta.get("config_file", "")
    weights = args.weights or meta.get("weights", "")
    if not cfg_file or not weights:
        raise ValueError("the gallery features file names no model: pass --config-file and "
                         "--weights to extract the query features")
    predictor = build_predictor(cfg_file, weights, args.opts, device=args.device)
    return predictor.extract(paths, args.batch_size, args.num_workers,
                             progress=not args.no_progress, desc="Query features")


def main_search(argv: Optional[Sequence[str]] = None) -> int:
    args = build_search_parser().parse_args(argv)
    split_overrides(args, "query")
    setup_cli_logging()
    quiet_warnings()
    try:
        gallery = load_features(args.features)
        index = load_index(args.index, gallery, args.features, args.params)
        query = _query_features(args, args.features)
        res = search_index(index, gallery, query, args.topk)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = load_meta(args.features).get("class_names", [])
    records: List[dict] = []
    for qi, qpath in enumerate(query.paths):
        keep = res.indices[qi] >= 0
        gi, dist = res.indices[qi][keep], res.distances[qi][keep]
        dg, dj = region_distances(query, qi, gallery, gi)
        print(f"query {qpath}" + ("" if res.exact[qi] else "  (approximate index)"))
        cols = [f"d_{n}".replace(" ", "_") for n in names]
        widths = [max(len(c), 6) for c in cols]
        head = f"{'rank':>4}  {'distance':>8}"
        if args.details:
            head += f"  {'d_g':>6}" + "".join(f"  {c:>{w}}" for c, w in zip(cols, widths))
        print(head + "  path")
        for r, (g, d) in enumerate(zip(gi.tolist(), dist.tolist())):
            line = f"{r + 1:>4}  {max(d, 0.0):8.4f}"
            if args.details:
                line += f"  {max(dg[r], 0.0):6.3f}" + "".join(
                    f"  {max(v, 0.0):{w}.3f}" for v, w in zip(dj[r], widths))
            print(line + f"  {gallery.paths[g]}")
        records.append({"query": qpath, "exact": bool(res.exact[qi]), "results": [
            {"rank": r + 1, "path": gallery.paths[g], "distance": float(d), "d_g": float(dg[r]),
             "d_regions": [float(v) for v in dj[r]]}
            for r, (g, d) in enumerate(zip(gi.tolist(), dist.tolist()))]})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"class_names": names, "queries": records}, fh, indent=1)
    return 0
