"""A gallery of features in shards on disk, and the eq. (10) search over it in bounded memory.

``extract --shard-size M --out DIR`` writes, instead of one ``.npz``::

    DIR/manifest.json         format, version, layout [G, N, R], dtype, class names, the model
                              (``meta``: config file, checkpoint, ...), and the shards in order
    DIR/shard-00000.npy       (M, G + N*R + N) packed rows ``[global | regions | w]``
                              (``modeling/outputs.py``), float32 or float16
    DIR/shard-00000.json      the shard's rows, width, paths (may be empty: rows without names)
                              and the model it was extracted with

A :class:`ShardedGallery` opens the directory (or its ``manifest.json``) and checks it: every
shard listed is there, has the layout's width and row count and names the manifest's model; an
empty gallery is refused. Shards are memory-mapped, one at a time: building an index adds the
vectors ``[A(g) | w^g]`` of one shard after the other (``evaluation.faiss_search.build_index``
with ``chunks``), and the exact eq. (10) re-scoring of a shortlist reads only the candidate rows
(:class:`ShardRows`). So with a compressed index (``IVF...,PQ...``) nothing holds the whole
float32 gallery, and no step holds a query x gallery matrix: what is in memory is the index,
the confidences ``w`` of the gallery (N floats an image), one shard, and the (Q, k') shortlist.
:func:`exact_topk` is the exact (dense, chunked) eq. (10) top-k, streamed shard by shard.
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..evaluation.distance import weighted_embedding, weighted_region_distance
from ..evaluation.faiss_search import GalleryIndex, _index_vectors, build_index
from ..modeling.outputs import FeatureLayout, Features

__all__ = ["MANIFEST", "ShardWriter", "ShardedGallery", "ShardRows", "is_sharded",
           "index_shards", "exact_topk", "merge_topk"]

MANIFEST = "manifest.json"
FORMAT = "rganet-gallery-shards"


def is_sharded(path: str) -> bool:
    """A directory with a manifest, or the manifest itself."""
    return os.path.isdir(path) or os.path.basename(path) == MANIFEST


def _model_id(meta: Dict) -> str:
    """What names the model in a manifest and in each shard (checkpoint, config, region mode)."""
    return json.dumps({k: meta.get(k) for k in ("weights", "config_file", "region_mode")},
                      sort_keys=True)


class ShardWriter:
    """Writes a sharded gallery: :meth:`add` one shard of features at a time, then :meth:`close`
    (which writes the manifest: a directory without one is not a gallery)."""

    def __init__(self, out_dir: str, layout: FeatureLayout, class_names: Sequence[str] = (),
                 meta: Optional[Dict] = None, dtype: str = "float32"):
        if dtype not in ("float32", "float16"):
            raise ValueError(f"shard dtype must be float32 or float16, got {dtype!r}")
        self.dir, self.layout, self.dtype = out_dir, layout, dtype
        self.meta = dict(meta or {})
        self.class_names = list(class_names) or [f"region{j + 1}"
                                                 for j in range(layout.num_regions)]
        self.shards: List[Dict] = []
        os.makedirs(out_dir, exist_ok=True)
        if os.path.exists(os.path.join(out_dir, MANIFEST)):  # rewritten: the old one goes first
            os.remove(os.path.join(out_dir, MANIFEST))

    def add(self, feats: Features) -> None:
        f = feats.to_numpy()
        packed = self.layout.pack(torch.from_numpy(f.global_feat),
                                  torch.from_numpy(f.region_feats), torch.from_numpy(f.weights))
        name = f"shard-{len(self.shards):05d}"
        np.save(os.path.join(self.dir, name + ".npy"), packed.numpy().astype(self.dtype))
        with open(os.path.join(self.dir, name + ".json"), "w") as fh:
            json.dump({"rows": len(f), "width": int(packed.shape[1]),
                       "model": _model_id(self.meta),
                       "paths": [os.path.abspath(p) for p in f.paths]}, fh)
        self.shards.append({"file": name + ".npy", "rows": len(f)})

    def close(self) -> str:
        path = os.path.join(self.dir, MANIFEST)
        lay = self.layout
        with open(path, "w") as fh:
            json.dump({"format": FORMAT, "version": 1, "dtype": self.dtype,
                       "layout": [lay.global_dim, lay.num_regions, lay.region_dim],
                       "class_names": self.class_names, "meta": self.meta,
                       "model": _model_id(self.meta), "shards": self.shards,
                       "num_rows": sum(s["rows"] for s in self.shards)}, fh, indent=1)
        return path


class ShardedGallery:
    """A sharded gallery on disk (see the module docstring), checked when opened."""

    def __init__(self, path: str):
        self.dir = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
        manifest = os.path.join(self.dir, MANIFEST)
        if not os.path.isfile(manifest):
            raise FileNotFoundError(f"no sharded gallery at {path}: {manifest} not found")
        try:
            with open(manifest) as fh:
                m = json.load(fh)
        except (OSError, ValueError) as e:
            raise ValueError(f"{manifest} cannot be read: {e}") from None
        if m.get("format") != FORMAT:
            raise ValueError(f"{manifest} is not the manifest of a sharded gallery")
        self.meta: Dict = m.get("meta", {})
        self.class_names: List[str] = list(m.get("class_names", []))
        self.layout = FeatureLayout(*(int(v) for v in m["layout"]))
        self.files = [os.path.join(self.dir, s["file"]) for s in m["shards"]]
        self.sizes = [int(s["rows"]) for s in m["shards"]]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)])
        if self.offsets[-1] == 0:
            raise ValueError(f"the sharded gallery {self.dir} is empty (no image in "
                             f"{len(self.files)} shards)")
        self.paths: List[str] = []
        for f, rows in zip(self.files, self.sizes):
            self._check_shard(f, rows, m["model"])

    def _check_shard(self, f: str, rows: int, model: str) -> None:
        name = os.path.basename(f)
        if not os.path.isfile(f):
            raise FileNotFoundError(f"shard {name} of the sharded gallery {self.dir} is missing")
        side = f[:-len(".npy")] + ".json"
        try:
            arr = np.load(f, mmap_mode="r")
            with open(side) as fh:
                info = json.load(fh)
        except (OSError, ValueError) as e:
            raise ValueError(f"shard {name} of {self.dir} cannot be read: {e}") from None
        width = self.layout.total_dim
        if arr.ndim != 2 or arr.shape[1] != width:
            raise ValueError(f"shard {name} has rows of {arr.shape[1:]} values but the gallery's "
                             f"layout {self.layout} needs {width}: a shard of another model?")
        if info.get("model") != model:
            raise ValueError(f"shard {name} was extracted with another model than the gallery's "
                             f"manifest ({info.get('model')} vs {model})")
        paths = info.get("paths") or [f"{name}#{i}" for i in range(rows)]  # unnamed rows
        if arr.shape[0] != rows or len(paths) != rows:
            raise ValueError(f"shard {name} has {arr.shape[0]} rows and {len(paths)} paths, the "
                             f"manifest says {rows}")
        self.paths.extend(paths)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def shard(self, i: int) -> np.ndarray:
        """Shard ``i``'s packed rows, memory-mapped (read on access)."""
        return np.load(self.files[i], mmap_mode="r")

    def shard_features(self, i: int, rows: Optional[np.ndarray] = None) -> Features:
        """float32 features of shard ``i`` (all its rows, or the local ``rows``)."""
        a = self.shard(i)
        a = a[np.sort(rows)] if rows is not None else a
        return self.layout.unpack(torch.from_numpy(np.array(a, dtype=np.float32)))

    def iter_features(self, block: Optional[int] = None) -> Iterator[Tuple[int, Features]]:
        """``(first row, features)`` of each shard in turn, or of blocks of at most ``block``
        rows of it (what bounds the float32 copies of a wide gallery)."""
        for i, size in enumerate(self.sizes):
            step = size if block is None else max(1, block)
            for s in range(0, size, step):
                rows = None if step >= size else np.arange(s, min(s + step, size))
                yield int(self.offsets[i]) + s, self.shard_features(i, rows)

    def take(self, idx: Sequence[int]) -> Features:
        """float32 features (and paths) of the gallery rows ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), self.layout.total_dim), np.float32)
        for pos, s in self._positions(idx):
            local = idx[pos] - self.offsets[s]
            order = np.argsort(local, kind="stable")  # read the memory map front to back
            out[pos[order]] = self.shard(s)[local[order]]
        f = self.layout.unpack(torch.from_numpy(out))
        return Features(f.global_feat, f.region_feats, f.weights,
                        tuple(self.paths[j] for j in idx))

    def _positions(self, idx: np.ndarray):
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"gallery rows out of range 0..{len(self) - 1}")
        shard_of = np.searchsorted(self.offsets, idx, side="right") - 1
        for s in np.unique(shard_of):
            yield np.nonzero(shard_of == s)[0], int(s)

    def weights(self) -> torch.Tensor:
        """The (M, N) confidences of the whole gallery (float32: small)."""
        n, start = self.layout.num_regions, self.layout.total_dim - self.layout.num_regions
        return torch.from_numpy(np.concatenate(
            [np.asarray(self.shard(i)[:, start:], dtype=np.float32)
             for i in range(len(self.files))]).reshape(-1, n))


class ShardRows:
    """``A(g)`` of the gallery, read from the shards on demand: :meth:`dot` gives the products
    ``faiss_search`` re-scores a compressed index's candidates with; ``shape`` and ``len`` as the
    ``(G, D)`` matrix it stands for."""

    def __init__(self, gallery: ShardedGallery):
        self.gallery = gallery
        lay = gallery.layout
        self.shape = (len(gallery), lay.global_dim + lay.num_regions * lay.region_dim)

    def __len__(self) -> int:
        return self.shape[0]

    @torch.no_grad()
    def dot(self, a_q: torch.Tensor, idx) -> torch.Tensor:
        """``S[i, j] = a_q[i] . A(g[idx[i, j]])`` for a (Q, K) candidate table: what re-scores a
        compressed index's shortlist. Each shard is read once for all queries (only its
        candidate rows, in file order) and its products are one sampled dense-dense product
        (``torch.sparse.sampled_addmm``: only the listed pairs, no gathered copies of the rows),
        in memory bounded by one shard's candidate rows."""
        idx = np.asarray(idx, dtype=np.int64)
        flat, out = idx.reshape(-1), torch.empty(idx.size, dtype=torch.float32)
        q_of = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
        for pos, s in self.gallery._positions(flat):
            uniq, col = np.unique(flat[pos] - self.gallery.offsets[s], return_inverse=True)
            a, _ = weighted_embedding(self.gallery.shard_features(s, uniq), "cpu")
            order = np.lexsort((col, q_of[pos]))  # CSR: by query, then by row
            crow = np.concatenate([[0], np.cumsum(np.bincount(q_of[pos], minlength=len(a_q)))])
            with warnings.catch_warnings():  # "sparse CSR support is in beta": not the user's
                warnings.simplefilter("ignore", UserWarning)
                pattern = torch.sparse_csr_tensor(
                    torch.from_numpy(crow), torch.from_numpy(col[order]),
                    torch.zeros(len(pos)), size=(len(a_q), len(uniq)))
                s_ = torch.sparse.sampled_addmm(pattern, a_q, a.t(), beta=0.0)
            out[torch.from_numpy(pos[order])] = s_.values()
        return out.view(idx.shape)


def index_shards(gallery: ShardedGallery, spec: str = "Flat", use_gpu: Optional[bool] = None,
                 search_k: int = 100, train_size: int = 65536, seed: int = 0,
                 add_block: int = 8192) -> GalleryIndex:
    """The :class:`GalleryIndex` of a sharded gallery, built shard by shard: trained (if the index
    needs it) on ``train_size`` rows drawn at random, then the vectors added ``add_block`` rows at
    a time.
    Re-scoring reads candidate rows from the shards (:class:`ShardRows`)."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(gallery), min(train_size, len(gallery)), replace=False))

    weights = []  # the gallery's w, kept while the shards pass (no second read of the shards)

    def vectors(f: Features) -> np.ndarray:
        a, w = weighted_embedding(f, "cpu")
        weights.append(w.clone())  # a view would keep the whole block alive (10 GB at 1M x 2,564)
        return _index_vectors(a, w)

    chunks = (vectors(f) for _, f in gallery.iter_features(block=add_block))
    index, on_gpu = build_index(vectors(gallery.take(sample)), spec, use_gpu=use_gpu,
                                search_k=search_k, chunks=chunks, total=len(gallery))
    return GalleryIndex(index, ShardRows(gallery), torch.cat(weights[1:]), str(spec), on_gpu)


def merge_topk(d_a: np.ndarray, i_a: np.ndarray, d_b: np.ndarray, i_b: np.ndarray,
               k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The k smallest of two (Q, *) candidate lists, nearest first."""
    d, i = torch.from_numpy(np.concatenate([d_a, d_b], 1)), np.concatenate([i_a, i_b], 1)
    d, pos = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False, sorted=True)
    return d.numpy(), np.take_along_axis(i, pos.numpy(), 1)


@torch.no_grad()
def exact_topk(query: Features, gallery: ShardedGallery, k: int = 100,
               chunk_size: int = 4096) -> Tuple[np.ndarray, np.ndarray]:
    """Exact eq. (10) top-``k`` of every query, streamed over the shards (dense and chunked:
    never more than a query x shard block): ``(distances, indices)``, nearest first."""
    num_q = len(query)
    best_d = np.full((num_q, 0), np.inf, np.float32)
    best_i = np.full((num_q, 0), -1, np.int64)
    for first, f in gallery.iter_features():
        d = torch.from_numpy(weighted_region_distance(query, f, chunk_size=chunk_size,
                                                      device="cpu"))
        d, part = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False, sorted=False)
        best_d, best_i = merge_topk(best_d, best_i, d.numpy(), part.numpy() + first, k)
    return best_d, best_i
