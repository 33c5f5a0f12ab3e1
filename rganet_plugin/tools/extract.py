"""``python -m rganet_plugin.tools extract``: features of a folder of person crops, into one ``.npz``.

::

    python -m rganet_plugin.tools extract --config-file configs/Demo/rganet_demo.yml \\
        --weights logs/demo/rganet/model_final.pth --images crops/ --out gallery.npz

The file (``numpy.load(path)``, no pickle needed) holds, for ``M`` images, ``N`` regions:

==============  ================  =========  ==================================================
key             shape             dtype      content
==============  ================  =========  ==================================================
``global``      (M, G)            float32    global feature (BNNeck output of the global head)
``regions``     (M, N, R)         float32    region features (region BNNeck output)
``weights``     (M, N)            float32    region confidences ``w`` (rows sum to 1)
``paths``       (M,)              str        absolute image paths, row order
``class_names`` (N,)              str        region names (``head``, ``upper body``, ...)
``layout``      (3,)              int64      ``[G, N, R]``
``version``     ()                int64      format version (1)
``meta``        ()                str        JSON: config file, checkpoint, input size, ...
==============  ================  =========  ==================================================

These are the parts of the packed row the model returns (``modeling/outputs.py``): features are
**not** normalised (eq. (10) and the search normalise them). The baseline (``N = 0``) stores
``regions`` of shape (M, 0, 0) and ``weights`` of shape (M, 0).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, Optional, Sequence

import numpy as np

from ..modeling.outputs import Features
from .predictor import (add_extraction_arguments, add_model_arguments, prog_name,
                        predictor_from_args, setup_cli_logging, split_overrides)

__all__ = ["FORMAT_VERSION", "save_features", "load_features", "load_meta", "main"]

FORMAT_VERSION = 1
_REQUIRED = ("global", "regions", "weights", "paths")


def save_features(path: str, feats: Features, class_names: Sequence[str] = (),
                  meta: Optional[Dict] = None, compress: bool = False) -> str:
    """Write :class:`~rganet_plugin.modeling.outputs.Features` in the format above."""
    g = np.ascontiguousarray(feats.global_feat, dtype=np.float32)
    r = np.ascontiguousarray(feats.region_feats, dtype=np.float32)
    w = np.ascontiguousarray(feats.weights, dtype=np.float32)
    m = g.shape[0]
    if r.shape[0] != m or w.shape[0] != m or len(feats.paths) != m:
        raise ValueError(f"inconsistent features: {m} global rows, {r.shape[0]} region rows, "
                         f"{w.shape[0]} weight rows, {len(feats.paths)} paths")
    n = r.shape[1] if r.ndim == 3 else 0
    rdim = r.shape[2] if r.ndim == 3 else 0
    names = list(class_names) if class_names else [f"region{j + 1}" for j in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} class names for {n} regions")
    info = dict(meta or {})
    info.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    save = np.savez_compressed if compress else np.savez
    with open(path, "wb") as f:  # a file object: numpy would append '.npz' to other suffixes
        save(f, **{
            "global": g, "regions": r.reshape(m, n, rdim), "weights": w.reshape(m, n),
            "paths": np.asarray([os.path.abspath(p) for p in feats.paths], dtype=np.str_),
            "class_names": np.asarray(names, dtype=np.str_),
            "layout": np.asarray([g.shape[1], n, rdim], dtype=np.int64),
            "version": np.asarray(FORMAT_VERSION, dtype=np.int64),
            "meta": np.asarray(json.dumps(info)),
        })
    return path


def load_features(path: str) -> Features:
    """Read a features file, checking its keys and shapes."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"features file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path} is not a features file written by 'extract': {e}") from None
    with data:
        missing = [k for k in _REQUIRED if k not in data.files]
        if missing:
            raise ValueError(f"{path} is not a features file written by 'extract': it lacks "
                             f"{', '.join(missing)}")
        g = data["global"].astype(np.float32, copy=False)
        r = data["regions"].astype(np.float32, copy=False)
        w = data["weights"].astype(np.float32, copy=False)
        paths = [str(p) for p in data["paths"]]
    if g.ndim != 2 or r.ndim != 3 or w.ndim != 2 or not (len(g) == len(r) == len(w) == len(paths)):
        raise ValueError(f"{path}: inconsistent shapes global {g.shape}, regions {r.shape}, "
                         f"weights {w.shape}, {len(paths)} paths")
    return Features(g, r, w, tuple(paths))


def load_meta(path: str) -> Dict:
    """``class_names``, ``layout`` and the ``meta`` JSON of a features file."""
    with np.load(path, allow_pickle=False) as data:
        out = json.loads(str(data["meta"])) if "meta" in data.files else {}
        if "class_names" in data.files:
            out["class_names"] = [str(c) for c in data["class_names"]]
        if "layout" in data.files:
            out["layout"] = [int(v) for v in data["layout"]]
    return out


def extract_meta(predictor, args) -> Dict:
    return {"config_file": os.path.abspath(args.config_file),
            "weights": os.path.abspath(predictor.cfg.MODEL.WEIGHTS),
            "region_mode": predictor.region_mode,
            "input_size": list(predictor.input_size),
            "device": str(predictor.device)}


def build_parser(prog: str = prog_name("extract")) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Extract RGANet features (global, regions, confidences) of a folder "
        "of person crops into an .npz file (format: docs/tools.md).")
    add_model_arguments(p)
    p.add_argument("--images", nargs="+", required=True, metavar="PATH",
                   help="image files and/or folders (searched recursively)")
    p.add_argument("--out", required=True, metavar="FILE.npz|DIR",
                   help="output features file (a directory with --shard-size)")
    p.add_argument("--shard-size", type=int, default=0, metavar="M",
                   help="write a sharded gallery: M images a shard + manifest.json in the --out "
                   "directory, extracted one shard at a time (format: rganet_plugin/tools/"
                   "shards.py); 0 (default): one .npz")
    p.add_argument("--shard-dtype", default="float32", choices=("float32", "float16"),
                   help="number format of the shards (float16 halves the disk and reads)")
    p.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    p.add_argument("--compress", action="store_true", help="write a compressed .npz")
    p.add_argument("--verbose", action="store_true")
    add_extraction_arguments(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    split_overrides(args, "images")
    setup_cli_logging(args.verbose)
    from ..data.folder import collect_images

    try:
        paths = collect_images(args.images, recursive=not args.no_recursive)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.shard_size < 0:
        print(f"error: --shard-size must be >= 0, got {args.shard_size}", file=sys.stderr)
        return 2
    predictor = predictor_from_args(args)
    t0 = time.perf_counter()
    if args.shard_size:  # one shard in memory at a time
        from .shards import ShardWriter

        writer = ShardWriter(args.out, predictor.layout, predictor.class_names,
                             extract_meta(predictor, args), dtype=args.shard_dtype)
        for s in range(0, len(paths), args.shard_size):
            writer.add(predictor.extract(paths[s:s + args.shard_size], args.batch_size,
                                         args.num_workers, progress=not args.no_progress))
        writer.close()
        feats, dt = paths, time.perf_counter() - t0
    else:
        feats = predictor.extract(paths, args.batch_size, args.num_workers,
                                  progress=not args.no_progress)
        dt = time.perf_counter() - t0
        save_features(args.out, feats, predictor.class_names, extract_meta(predictor, args),
                      compress=args.compress)
    g, n, r = predictor.layout.global_dim, predictor.layout.num_regions, predictor.layout.region_dim
    print(f"wrote {args.out}: {len(feats)} images, global {g}-d, {n} regions x {r}-d "
          f"({len(feats) / max(dt, 1e-9):.1f} img/s on {predictor.device})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
