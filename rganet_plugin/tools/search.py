"""``index`` and ``search``: a faiss index over extracted gallery features, and top-k retrieval of
query images with the weighted region distance of eq. (10).

::

    python -m rganet_plugin.tools index --features gallery.npz --out gallery.faiss
    python -m rganet_plugin.tools search --index gallery.faiss --features gallery.npz \\
        --query person.jpg --topk 10

What is indexed and how a search is done is the evaluator's faiss search
(:mod:`rganet_plugin.evaluation.faiss_search`): the index stores ``[A(g) | w^g]``, a search takes
a shortlist by eq. (10)'s numerator, re-scores it exactly and, with a ``Flat`` index, grows a
threshold search until the list is provably the exact top-k of eq. (10) (what the dense evaluator
ranks). Approximate indexes (``IVF...``, ``HNSW...``) run each step once.

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
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..evaluation.faiss_search import GalleryIndex, TopK, index_gallery, search_gallery
from ..modeling.outputs import Features
from .extract import load_features, load_meta
from .predictor import (add_extraction_arguments, build_predictor, prog_name, quiet_warnings,
                        setup_cli_logging, split_overrides)

__all__ = ["build_gallery_index", "save_index", "load_index", "search_index", "region_distances",
           "main_index", "main_search"]


def build_gallery_index(f, spec: str = "Flat", use_gpu: Optional[bool] = None):
    """The faiss index of ``evaluation.faiss_search.index_gallery`` (built on a GPU when faiss
    has one, returned on the CPU, to be saved); ``f``: Features or a ``ShardedGallery``, indexed
    shard by shard (``tools/shards.py``)."""
    if isinstance(f, Features):
        gidx = index_gallery(f, spec, use_gpu=use_gpu)
    else:
        from .shards import index_shards

        gidx = index_shards(f, spec, use_gpu=use_gpu)
    if gidx.on_gpu:
        import faiss

        return faiss.index_gpu_to_cpu(gidx.index)
    return gidx.index


def _sidecar(path: str) -> str:
    return path + ".json"


def _features_file(path: str) -> str:
    """The file that stands for a gallery: the ``.npz``, or a sharded gallery's manifest."""
    from .shards import MANIFEST, is_sharded

    return os.path.join(path, MANIFEST) if is_sharded(path) and os.path.isdir(path) else path


def load_gallery(path: str):
    """Features of an ``extract`` file, or a checked ``ShardedGallery`` (a directory)."""
    from .shards import ShardedGallery, is_sharded

    return ShardedGallery(path) if is_sharded(path) else load_features(path)


def _layout(f) -> List[int]:
    if isinstance(f, Features):
        return [int(f.global_feat.shape[1]), int(f.region_feats.shape[1]),
                int(f.region_feats.shape[2])]
    return [f.layout.global_dim, f.layout.num_regions, f.layout.region_dim]


def save_index(index, path: str, features_path: str, f, spec: str) -> None:
    import faiss

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    faiss.write_index(index, path)
    info = {"features": os.path.abspath(features_path), "num_vectors": int(index.ntotal),
            "dim": int(index.d), "spec": spec, "layout": _layout(f),
            "features_size": os.path.getsize(_features_file(features_path))}
    with open(_sidecar(path), "w") as fh:
        json.dump(info, fh, indent=1)


def load_index(path: str, f, features_path: str = "", params: str = ""):
    """Read an index and check it belongs to the features ``f``."""
    import faiss

    if not os.path.isfile(path):
        raise FileNotFoundError(f"faiss index not found: {path}")
    try:
        index = faiss.read_index(path)
    except RuntimeError as e:
        raise ValueError(f"{path} is not a faiss index: {str(e).splitlines()[-1]}") from None
    n, (g, nr, r) = len(f), _layout(f)
    want_dim = g + nr * (r + 1)
    if index.ntotal != n or index.d != want_dim:
        raise ValueError(
            f"{path} ({index.ntotal} vectors of {index.d} values) does not belong to the features "
            f"file ({n} images, {want_dim}-value vectors): rebuild it with 'index'")
    side = _sidecar(path)
    if features_path and os.path.isfile(side):
        with open(side) as fh:
            info = json.load(fh)
        if info.get("features_size") not in (None, os.path.getsize(_features_file(features_path))):
            raise ValueError(f"{path} was built from {info.get('features')}, which differs from "
                             f"{features_path}: rebuild it with 'index'")
        params = params or info.get("spec", "").partition("|")[2]
    if params:
        faiss.ParameterSpace().set_index_parameters(index, params)
    return index


def search_index(index, gallery, query: Features, k: int = 10,
                 shortlist: Optional[int] = None) -> TopK:
    """Top-``k`` gallery items of every query under eq. (10) with a saved index: the evaluator's
    search (``evaluation.faiss_search.search_gallery``); ``certified`` marks exact rows. A
    sharded gallery is re-scored from its shards (``tools/shards.py``)."""
    if isinstance(gallery, Features):
        gidx = GalleryIndex.wrap(index, gallery)
    else:
        from .shards import ShardRows

        gidx = GalleryIndex(index, ShardRows(gallery), gallery.weights())
    return search_gallery(gidx, query, k, shortlist=shortlist)


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
    p.add_argument("--features", required=True, metavar="FILE.npz|DIR",
                   help="gallery features: an .npz or a sharded gallery (extract --shard-size)")
    p.add_argument("--out", required=True, metavar="FILE.faiss", help="output index")
    p.add_argument("--index-spec", default="Flat",
                   help="faiss factory string, optionally '|params': 'Flat' (exact, default), "
                   "'IVF256,Flat|nprobe=16', 'HNSW32|efSearch=128'")
    p.add_argument("--cpu", action="store_true",
                   help="build on the CPU even where faiss has a GPU (used by default)")
    return p


def main_index(argv: Optional[Sequence[str]] = None) -> int:
    args = build_index_parser().parse_args(argv)
    setup_cli_logging()
    try:
        f = load_gallery(args.features)
        t0 = time.perf_counter()
        index = build_gallery_index(f, args.index_spec, use_gpu=False if args.cpu else None)
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
    p.add_argument("--features", required=True, metavar="FILE.npz|DIR",
                   help="the gallery features the index was built from (.npz or sharded)")
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


def _query_features(args, gallery_path: str, gallery) -> Features:
    if args.query_features:
        return load_features(args.query_features)
    from ..data.folder import collect_images

    paths = collect_images(args.query)
    meta = load_meta(gallery_path) if isinstance(gallery, Features) else gallery.meta
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
        gallery = load_gallery(args.features)
        index = load_index(args.index, gallery, args.features, args.params)
        query = _query_features(args, args.features, gallery)
        res = search_index(index, gallery, query, args.topk)
        exact = (res.certified if res.certified is not None
                 else np.zeros(len(res.indices), bool))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = (load_meta(args.features).get("class_names", []) if isinstance(gallery, Features)
             else gallery.class_names)
    records: List[dict] = []
    for qi, qpath in enumerate(query.paths):
        keep = res.indices[qi] >= 0
        gi, dist = res.indices[qi][keep], res.distances[qi][keep]
        rows = gallery if isinstance(gallery, Features) else gallery.take(gi).to_numpy()
        dg, dj = region_distances(query, qi, rows, gi if rows is gallery else np.arange(len(gi)))
        print(f"query {qpath}" + ("" if exact[qi] else "  (approximate index)"))
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
        records.append({"query": qpath, "exact": bool(exact[qi]), "results": [
            {"rank": r + 1, "path": gallery.paths[g], "distance": float(d), "d_g": float(dg[r]),
             "d_regions": [float(v) for v in dj[r]]}
            for r, (g, d) in enumerate(zip(gi.tolist(), dist.tolist()))]})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"class_names": names, "queries": records}, fh, indent=1)
    return 0
