"""Eq. (10) top-100 from 20 thousand to a million gallery images, in bounded memory (issue 23).

    .venv/bin/python benchmarks/bench_scale.py [--sizes 20k,100k,300k,1M] [--widths 512,96]
        [--paths dense,flat,ivf,pq,hnsw] [--queries 2210] [--k 100] [--threads 2]
        [--work /tmp/rganet_scale] [--plot docs/images/scale.png] [--quick]

Features with Occluded-Duke's label structure, scaled with the gallery: 2,210 queries of 519
identities; the gallery has one identity per 15.9 images (17,661 / 1,110), 8 cameras with 2-5 per
identity; global + 4 regions of ``width`` values. ``--features fitted`` (the default) draws them
with the statistics of a trained model's features (``benchmarks/data/feature_stats.npz``, written
by ``--fit`` from ``tools extract`` files: the RGANet demo model of the misaligned world, 96 values
a part; the identity centres and the images are Gaussian with its between- and within-identity
covariances, the confidences are its images' own; at other widths each part goes through a fixed
orthonormal map). ``--features isotropic`` is ``bench_evaluation.make_data``'s identity centres
plus isotropic noise (30 % of regions occluded, low ``w``), which has no neighbourhoods for an
index to find. The gallery is written in shards (``tools/shards.py``: float32 shards at width 96,
float16 at width 512) under ``--work`` and deleted after each size.

Paths (each one process, so that its peak resident memory is its own; ``ru_maxrss``, which
counts the shard pages it mapped):

* ``dense``: exact eq. (10) top-k, chunked over the shards (``shards.exact_topk``: never more than
  a query x shard block); where the Q x G matrix fits in 2 GB also the full dense evaluation
  (CMC / mAP / mINP with every positive). It is the reference of the recall column.
* ``flat``: faiss ``Flat`` index + the certified threshold search (``faiss_search``).
* ``ivf``: ``IVF<L>,Flat`` (``L`` = 4 sqrt(G) rounded to a power of two), ``nprobe`` below.
* ``pq``: the compressed index: ``IVF<L>,PQ<M>`` (PQ of the 484-value vectors at width 96;
  ``PCA256,IVF<L>,PQ64`` at width 512; ``--codes sq8``: 8-bit scalar codes instead), shortlist
  ``--pq-shortlist`` re-scored exactly from the shards on disk (``ShardRows.dot``).
* ``hnsw``: ``HNSW32`` (``efSearch`` below), up to ``--hnsw-max`` images (its build time grows
  fastest).

Each approximate path is followed by the exact eq. (10) re-scoring of its shortlist; the
uncompressed indexes return exact inner products of the stored vectors, the compressed one
reads the candidates' features from the shards. Recall: of the exact top-k (``dense``), on every
query where the exact pass over the gallery costs at most ``--exact-budget`` multiply-adds, on a
query subset (every 10th query) beyond. A path whose index holds the float32 gallery is skipped
where that alone would pass ``--mem-gb``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PATHS = ("dense", "flat", "ivf", "pq", "hnsw")
NUM_REGIONS = 4


def _early_threads(argv):
    if "--threads" in argv:
        n = argv[argv.index("--threads") + 1]
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = n


_early_threads(sys.argv[1:])
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rganet_analysis.machine import cpu_model, load_average  # noqa: E402


def parse_size(s: str) -> int:
    s = s.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(s[-1], 1)
    return int(float(s[:-1] if s[-1] in "km" else s) * mult)


def fmt_size(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else (f"{n // 1000}k" if n % 1000 == 0
                                                             else str(n))


# ---------------------------------------------------------------------- data
def labels(num_gallery: int, num_query: int, seed: int = 0):
    """Identities and cameras with Occluded-Duke's proportions (see the module docstring)."""
    rng = np.random.default_rng(seed)
    num_ids = max(2, round(num_gallery * 1110 / 17661))
    g_pids = np.concatenate([np.arange(num_ids), rng.integers(0, num_ids, num_gallery - num_ids)])
    q_ids = rng.choice(num_ids, min(519, num_ids, num_query), replace=False)
    q_pids = np.concatenate([q_ids, rng.choice(q_ids, num_query - len(q_ids))])
    id_cams = np.argsort(rng.random((num_ids, 8)), axis=1)
    id_ncam = rng.integers(2, 6, num_ids)
    pick = lambda p: id_cams[p, (rng.random(len(p)) * id_ncam[p]).astype(int)]  # noqa: E731
    return q_pids, g_pids, pick(q_pids), pick(g_pids), num_ids


def noise_for(dim: int) -> float:
    """bench_evaluation's noise (2.6) at 512 values; at other widths the noise that keeps the
    identities as separable (same-identity cosine / spread of a random cosine, 1 / sqrt(dim))."""
    return float(np.sqrt(max((1 + 2.6 ** 2) * np.sqrt(dim / 512) - 1, 0.0)))


def features(pids, centres, rng, dim):
    """``--features isotropic``, as bench_evaluation.make_data: identity centre + noise, occluded
    regions are noise with a low confidence, the global feature is disturbed when a region is
    occluded."""
    from rganet_plugin.modeling.outputs import Features

    n, noise = len(pids), noise_for(dim)
    x = centres[pids] + noise * rng.standard_normal((n, 1 + NUM_REGIONS, dim), dtype=np.float32)
    occluded = rng.random((n, NUM_REGIONS)) < 0.3
    x[:, 1:][occluded] = 2.0 * rng.standard_normal((int(occluded.sum()), dim), dtype=np.float32)
    x[:, 0] += 0.6 * rng.standard_normal((n, dim), dtype=np.float32) * occluded.any(1)[:, None]
    logits = rng.standard_normal((n, NUM_REGIONS)).astype(np.float32) - 2.0 * occluded
    w = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    return Features(x[:, 0].copy(), x[:, 1:].copy(), w)


# ------------------------------------------------- features with a trained model's statistics
STATS = os.path.join(HERE, "data", "feature_stats.npz")


def fit_stats(files, out: str, keep: float = 0.999) -> dict:
    """``--fit``: the statistics ``--features fitted`` draws from, measured on features a trained
    model extracted (``tools extract`` .npz files; identities from the Occluded-Duke file names):
    the mean and the between-identity and within-identity covariances of the unit-normalised
    ``[global | region 1..N]`` values, kept as factors ``F`` (``cov ~= F F^T``, the eigenvectors
    holding ``keep`` of the variance, scaled by the square roots of their eigenvalues), and the
    confidence rows ``w`` of every image (drawn whole)."""
    from rganet_plugin.data.datasets.occluded_duke import parse_duke_name

    xs, pids, ws = [], [], []
    for path in files:
        z = np.load(path, allow_pickle=True)
        x = np.concatenate([z["global"][:, None], z["regions"]], 1).astype(np.float64)
        xs.append((x / np.linalg.norm(x, axis=-1, keepdims=True)).reshape(len(x), -1))
        names = [parse_duke_name(os.path.basename(str(p))) for p in z["paths"]]
        if not all(isinstance(n, tuple) for n in names):
            raise ValueError(f"--fit: {path} has images without an Occluded-Duke name")
        pids += [n[0] for n in names]
        ws.append(z["weights"])
    x, pids = np.concatenate(xs), np.array(pids)
    if x.shape[1] % (1 + NUM_REGIONS):
        raise ValueError(f"--fit needs features with {NUM_REGIONS} regions")
    ids, inv = np.unique(pids, return_inverse=True)
    means = np.stack([x[pids == i].mean(0) for i in ids])

    def factor(cov):
        lam, vec = np.linalg.eigh(cov)
        lam, vec = np.clip(lam[::-1], 0, None), vec[:, ::-1]
        k = int(np.searchsorted(np.cumsum(lam) / lam.sum(), keep)) + 1
        return (vec[:, :k] * np.sqrt(lam[:k])).astype(np.float16)

    stats = {"mean": means.mean(0).astype(np.float32), "between": factor(np.cov(means.T)),
             "within": factor(np.cov((x - means[inv]).T)),
             "weights": np.concatenate(ws).astype(np.float16),
             "source": np.array(" ".join(os.path.basename(f) for f in files)),
             "identities": np.array(len(ids)), "images": np.array(len(x))}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    np.savez_compressed(out, **stats)
    return stats


class FittedFeatures:
    """``--features fitted``: identity centres ``mean + between z`` and images ``centre + within
    z'`` (``z, z'`` standard normal) with the statistics of a trained model's features
    (:func:`fit_stats`), confidences drawn from its images. At another width than the model's
    each of the 1 + N parts goes through one fixed random orthonormal map (an isometry when
    wider: eq. (10) distances unchanged; a projection when narrower)."""

    def __init__(self, path: str, width: int, num_ids: int, seed: int = 1):
        z = np.load(path)
        self.mean, self.between = z["mean"], z["between"].astype(np.float32)
        self.within, self.w = z["within"].astype(np.float32), z["weights"].astype(np.float32)
        self.src = len(self.mean) // (1 + NUM_REGIONS)
        rng = np.random.default_rng(seed)
        self.centres = self.mean + (rng.standard_normal((num_ids, self.between.shape[1]),
                                                        dtype=np.float32) @ self.between.T)
        q, _ = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal(
            (max(width, self.src), min(width, self.src))))
        self.map = (q.T if width >= self.src else q).astype(np.float32)  # (src, width)

    def __call__(self, pids, rng):
        from rganet_plugin.modeling.outputs import Features

        x = self.centres[pids] + rng.standard_normal((len(pids), self.within.shape[1]),
                                                     dtype=np.float32) @ self.within.T
        x = x.reshape(len(pids), 1 + NUM_REGIONS, self.src) @ self.map
        w = self.w[rng.integers(0, len(self.w), len(pids))]
        return Features(x[:, 0].copy(), x[:, 1:].copy(), w)


def cell_generate(c):
    """Shards of the gallery, the queries and the labels under c['dir']."""
    from rganet_plugin.modeling.outputs import FeatureLayout
    from rganet_plugin.tools.shards import ShardWriter

    q_pids, g_pids, q_cams, g_cams, num_ids = labels(c["size"], c["queries"])
    dim = c["width"]
    if c["features"] == "fitted":
        make = FittedFeatures(c["stats"], dim, num_ids)
    else:
        centres = np.random.default_rng(1).standard_normal((num_ids, 1 + NUM_REGIONS, dim),
                                                            dtype=np.float32)
        make = lambda p, r: features(p, centres, r, dim)  # noqa: E731
    rng = np.random.default_rng(2)
    q = make(q_pids, rng)
    np.savez(os.path.join(c["dir"], "data.npz"), q_global=q.global_feat, q_regions=q.region_feats,
             q_weights=q.weights, q_pids=q_pids, g_pids=g_pids, q_cams=q_cams, g_cams=g_cams)
    writer = ShardWriter(os.path.join(c["dir"], "gallery"), FeatureLayout(dim, NUM_REGIONS, dim),
                         meta={"weights": "synthetic"}, dtype=c["dtype"])
    for s in range(0, c["size"], c["shard"]):
        writer.add(make(g_pids[s:s + c["shard"]], rng))
    writer.close()
    return {}


def _load(c):
    from rganet_plugin.modeling.outputs import Features
    from rganet_plugin.tools.shards import ShardedGallery

    z = np.load(os.path.join(c["dir"], "data.npz"))
    q = Features(z["q_global"], z["q_regions"], z["q_weights"])
    lab = (z["q_pids"], z["g_pids"], z["q_cams"], z["g_cams"])
    return q, ShardedGallery(os.path.join(c["dir"], "gallery")), lab


# ---------------------------------------------------------------------- paths
def cell_exact(c):
    """The ``dense`` path: exact top-k streamed over the shards, on the reference queries (all,
    or every 10th), kept for the recall column; before it, where the Q x G matrix fits, the full
    dense evaluation (every positive counted)."""
    from rganet_plugin.evaluation import (compute_query_ranks, ranks_to_metrics, summarize,
                                          weighted_region_distance)
    from rganet_plugin.evaluation.faiss_search import evaluate_topk
    from rganet_plugin.tools.shards import exact_topk

    q, gallery, lab = _load(c)
    out = {"build": 0.0}
    if c["full_dense"]:
        t0 = time.perf_counter()
        g = gallery.take(np.arange(len(gallery)))
        dist = weighted_region_distance(q, g, device="cpu")
        del g
        m = summarize(*ranks_to_metrics(compute_query_ranks(dist, *lab)))
        out["dense_seconds"] = time.perf_counter() - t0
        out["dense"] = {k: m[k] for k in ("Rank-1", "mAP")}
        del dist
    rows = np.arange(0, len(q), c["ref_step"])
    t0, cpu0 = time.perf_counter(), time.process_time()
    _, idx = exact_topk(_rows(q, rows), gallery, c["k"])
    out["search"], out["search_cpu"] = time.perf_counter() - t0, time.process_time() - cpu0
    np.save(os.path.join(c["dir"], "exact.npy"), idx)
    out["recall"], out["queries"] = 1.0, len(rows)
    if c["ref_step"] == 1:
        m = summarize(*evaluate_topk(idx, *lab))
        out["topk"] = {k: m[k] for k in ("Rank-1", "mAP")}
    return out


def _rows(f, rows):
    from rganet_plugin.modeling.outputs import Features

    return Features(f.global_feat[rows], f.region_feats[rows], f.weights[rows])


def _nlist(size: int) -> int:
    return int(2 ** round(np.log2(4 * np.sqrt(size))))


def spec_of(path: str, size: int, width: int, args) -> str:
    nl = _nlist(size)
    if path == "flat":
        return "Flat"
    if path == "ivf":
        return f"IVF{nl},Flat|nprobe={args.nprobe}"
    if path == "pq":
        dim = width + NUM_REGIONS * (width + 1)
        pre, m = ("PCA256,", 64) if dim > 1024 else ("", next(
            m for m in (44, 32, 22, 16, 11, 8, 4, 2, 1) if dim % m == 0))
        if args.codes == "sq8":  # one byte a value (of the PCA's 256 at width 512)
            return f"{pre}IVF{nl},SQ8|nprobe={args.nprobe}"
        bits = 8 if size >= 10_000 else 4  # 2^8 centroids need ~10k training rows
        return f"{pre}IVF{nl},PQ{m}x{bits}np|nprobe={args.nprobe}"  # np: no polysemous training
    return f"HNSW32|efSearch={args.ef_search}"


def cell_path(c):
    from rganet_plugin.evaluation import summarize
    from rganet_plugin.evaluation.faiss_search import evaluate_topk, search_gallery
    from rganet_plugin.tools.shards import index_shards

    q, gallery, lab = _load(c)
    out = {}
    t0 = time.perf_counter()
    gidx = index_shards(gallery, c["spec"], search_k=c["k"], train_size=c["train"])
    out["build"] = time.perf_counter() - t0
    out["peak_build_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    t0, cpu0 = time.perf_counter(), time.process_time()
    top = search_gallery(gidx, q, c["k"], shortlist=c.get("shortlist"))
    out["search"], out["search_cpu"] = time.perf_counter() - t0, time.process_time() - cpu0
    out["certified"] = None if top.certified is None else float(top.certified.mean())
    idx = top.indices
    ref = np.load(os.path.join(c["dir"], "exact.npy"))
    sub = idx[::c["ref_step"]]
    out["recall"] = float(np.mean([len(np.intersect1d(a, b)) / c["k"] for a, b in zip(sub, ref)]))
    m = summarize(*evaluate_topk(idx, *lab))
    out["topk"] = {k: m[k] for k in ("Rank-1", "mAP")}
    return out


CELLS = {"generate": cell_generate, "exact": cell_exact, "path": cell_path}


def run_cell(c, in_process: bool):
    """A cell in its own process (its own peak memory) or, for --quick, in this one."""
    if in_process:
        res = CELLS[c["cell"]](c)
        res["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        return res
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--cell", json.dumps(c)],
                       capture_output=True, text=True, cwd=ROOT)
    line = [x for x in r.stdout.splitlines() if x.startswith("CELL ")]
    if r.returncode != 0 or not line:
        return {"error": (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]}
    return json.loads(line[-1][5:])


# ---------------------------------------------------------------------- report
def table(rows) -> str:
    head = ("| width | gallery | path | index | build s | top-k s (CPU s) | peak GB (build) | "
            "recall@k | R1 / mAP (top-k) | R1 / mAP (dense) |\n"
            "|---|---:|---|---|---:|---:|---:|---:|---|---|")
    lines = [head]
    for r in rows:
        if "error" in r or "skipped" in r:
            lines.append(f"| {r['width']} | {fmt_size(r['size'])} | {r['path']} | {r['spec']} | "
                         f"| | | | {r.get('skipped') or 'failed: ' + r['error']} | | |")
            continue
        rec = f"{r['recall']:.4f}" + ("" if r["ref_step"] == 1 else f" ({r['ref_q']} q)")
        if r.get("certified") is not None:
            rec += f", {r['certified'] * 100:.0f} % certified"
        tk = f"{r['topk']['Rank-1']:.2f} / {r['topk']['mAP']:.2f}" if r.get("topk") else ""
        dn = (f"{r['dense']['Rank-1']:.2f} / {r['dense']['mAP']:.2f} "
              f"({r['dense_seconds']:.1f} s)") if r.get("dense") else ""
        lines.append(f"| {r['width']} | {fmt_size(r['size'])} | {r['path']} | {r['spec']} | "
                     f"{r['build']:.1f} | {r['search']:.1f} ({r['search_cpu']:.1f}) | "
                     f"{r['peak_gb']:.2f}" + (f" ({r['peak_build_gb']:.2f})" if "peak_build_gb"
                                              in r else "") + f" | {rec} | {tk} | "
                     f"{dn} |")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (width, name), style in zip(sorted({(r["width"], r["path"]) for r in rows}),
                                    [f"{m}{ls}" for ls in ("-", "--") for m in "osd^v"]):
        pts = sorted((r["size"], r["search_cpu"], r["peak_gb"]) for r in rows  # all queries only
                     if r["width"] == width and r["path"] == name and "search" in r)
        if not pts:
            continue
        x, t, m = zip(*pts)
        label = f"{name}, {NUM_REGIONS + 1} x {width}"
        axes[0].loglog(x, t, style, label=label)
        axes[1].loglog(x, m, style, label=label)
    axes[0].set(xlabel="gallery images", ylabel="CPU seconds to the top-100 (2,210 queries)",
                title="time (index built beforehand; CPU s: the machine's load varied)")
    axes[1].set(xlabel="gallery images", ylabel="peak resident memory, GB", title="memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[1].axhline(8, color="grey", lw=0.8)
    axes[0].axhline(120, color="grey", lw=0.8)  # 60 s of two cores
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="20k,100k,300k,1M")
    ap.add_argument("--widths", default="512,96")
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--queries", type=int, default=2210)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--ef-search", type=int, default=256)
    ap.add_argument("--pq-shortlist", type=int, default=1000)
    ap.add_argument("--codes", default="pq", choices=("pq", "sq8"),
                    help="the compressed path's codes: product quantisation or 8-bit scalar")
    ap.add_argument("--hnsw-max", type=parse_size, default=parse_size("300k"))
    ap.add_argument("--train", type=int, default=65536, help="rows the IVF / PQ are trained on")
    ap.add_argument("--exact-budget", type=float, default=1.2e12,
                    help="multiply-adds of the exact pass over all queries; beyond: every 10th")
    ap.add_argument("--mem-gb", type=float, default=8.0)
    ap.add_argument("--shard", type=int, default=50_000)
    ap.add_argument("--work", default="/tmp/rganet_scale")
    ap.add_argument("--features", default="fitted", choices=("fitted", "isotropic"),
                    help="fitted: a trained model's feature statistics (--stats); isotropic: "
                         "identity centres + isotropic noise (bench_evaluation's)")
    ap.add_argument("--stats", default=STATS, help="the statistics --features fitted draws from")
    ap.add_argument("--fit", nargs="+", default=[], metavar="FEATURES.npz",
                    help="no run: write --stats from features a trained model extracted")
    ap.add_argument("--plot", default="", help="write the log-log plot here")
    ap.add_argument("--json", default="", help="append the rows to this JSON-lines file")
    ap.add_argument("--report", default="", metavar="FILE.jsonl",
                    help="no run: the table (and --plot) of the rows --json collected")
    ap.add_argument("--quick", action="store_true",
                    help="tiny run in this process (800 images, width 16, 40 queries, top-10)")
    ap.add_argument("--cell", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.cell:
        c = json.loads(args.cell)
        res = CELLS[c["cell"]](c)
        res["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        print("CELL " + json.dumps(res))
        return
    if args.fit:
        st = fit_stats(args.fit, args.stats)
        print(f"wrote {args.stats}: {int(st['images'])} images of {int(st['identities'])} "
              f"identities, {len(st['mean'])} values; between-identity factor "
              f"{st['between'].shape[1]} directions, within-identity {st['within'].shape[1]}")
        return
    if args.quick:
        args.sizes, args.widths, args.queries, args.k, args.shard = "800", "16", 40, 10, 300
        args.train, args.pq_shortlist, args.nprobe = 600, 200, 4
    if args.report:
        with open(args.report) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        rows.sort(key=lambda r: (-r["width"], r["size"], PATHS.index(r["path"].split()[0])
                                 if r["path"].split()[0] in PATHS else 9))
        print(table(rows))
        if args.plot:
            plot(rows, args.plot)
        return
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    widths = [int(w) for w in args.widths.split(",")]
    paths = [p for p in args.paths.split(",") if p]
    unknown = set(paths) - set(PATHS)
    if unknown:
        ap.error(f"unknown --paths {sorted(unknown)}: choose from {','.join(PATHS)}")
    import faiss

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {args.threads} threads, "
          f"torch {torch.__version__}, numpy {np.__version__}, faiss {faiss.__version__}, "
          f"faiss GPUs {faiss.get_num_gpus()}")
    print(f"load average at start: {load_average()}", flush=True)
    rows = []
    for width in widths:
        dim = width + NUM_REGIONS * (width + 1)
        for size in sizes:
            d = os.path.join(args.work, f"w{width}_{size}")
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            base = {"dir": d, "size": size, "width": width, "queries": args.queries, "k": args.k,
                    "shard": args.shard, "dtype": "float16" if width >= 256 else "float32",
                    "features": args.features, "stats": args.stats}
            try:
                gen = run_cell({**base, "cell": "generate"}, args.quick)
                if "error" in gen:
                    raise RuntimeError(gen["error"])
                ref_step = 1 if args.queries * size * dim <= args.exact_budget else 10
                ex = run_cell({**base, "cell": "exact", "ref_step": ref_step,
                               "full_dense": args.queries * size * 4 <= 2 ** 31}, args.quick)
                if "error" in ex:
                    raise RuntimeError(ex["error"])
                for path in ["dense"] + [p for p in paths if p != "dense"]:
                    spec = "exact, chunked" if path == "dense" else spec_of(path, size, width,
                                                                             args)
                    row = {"width": width, "size": size, "path": path, "spec": spec,
                           "ref_step": ref_step, "ref_q": len(range(0, args.queries, ref_step))}
                    full_gb = size * dim * 4 / 2 ** 30
                    if path == "dense":
                        row.update(ex)
                        if ref_step != 1:
                            row["path"] = f"dense ({ex['queries']} queries)"
                    elif path in ("flat", "ivf", "hnsw") and full_gb * 1.3 > args.mem_gb:
                        row["skipped"] = (f"not run: the index holds the float32 gallery "
                                          f"({full_gb:.1f} GB)")
                    elif path == "hnsw" and size > args.hnsw_max:
                        row["skipped"] = f"not run above {fmt_size(args.hnsw_max)} (build time)"
                    else:
                        c = {**base, "cell": "path", "path": path, "spec": spec,
                             "ref_step": ref_step, "train": args.train,
                             "shortlist": args.pq_shortlist if path == "pq" else None}
                        row.update(run_cell(c, args.quick))
                    rows.append(row)
                    print(table([row]).splitlines()[-1], f"(load {load_average()})", flush=True)
            except RuntimeError as e:
                rows.append({"width": width, "size": size, "path": "all", "spec": "",
                             "error": str(e)})
                print(f"width {width}, {fmt_size(size)}: failed: {e}", flush=True)
            finally:
                shutil.rmtree(d, ignore_errors=True)
            if args.json:
                with open(args.json, "a") as fh:
                    for r in rows:
                        if r["width"] == width and r["size"] == size:
                            fh.write(json.dumps(r) + "\n")
    print(f"load average at end: {load_average()}\n")
    print(table(rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
