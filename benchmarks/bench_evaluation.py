"""Evaluation speed at Occluded-Duke scale: our eq. (10) evaluation against fast-reid's path.

    .venv/bin/python benchmarks/bench_evaluation.py [--num-query 2210] [--num-gallery 17661]
                                                    [--threads N] [--repeat 3] [--topk 100]

Random features with Occluded-Duke's structure (2,210 queries of 519 identities, 17,661 gallery
images of 1,110 identities, 8 cameras, each identity seen by a few cameras; N = 4 regions + global,
d = 512; occluded regions are noise and get low confidence), fixed seed. Timed paths:

(a) ours, eq. (10): ``weighted_region_distance`` + ``compute_query_ranks`` (CMC, mAP, mINP)
(b) fast-reid on the global feature: ``build_dist(..., "cosine")`` +
    ``fastreid.evaluation.rank.evaluate_rank(use_cython=False)`` (what ReidEvaluator runs)
(c) naive eq. (10): one cosine matrix per region, combined, + fast-reid's ranking
(d) ours, faiss top-k (exact Flat index, shortlist 2k, eq. (10) re-scoring) + top-k metrics
(e) ours on the global feature only (same inputs as (b))

Checks: (e) equals (b) and (a) equals (c) (Rank-1 and mAP to 1e-4). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings


def _early_threads(argv):
    """--threads must reach the BLAS libraries (OpenBLAS in numpy, MKL in torch) before import."""
    for i, a in enumerate(argv):
        value = a.split("=", 1)[1] if a.startswith("--threads=") else (
            argv[i + 1] if a == "--threads" and i + 1 < len(argv) else None)
        if value and int(value) > 0:
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ[var] = value


_early_threads(sys.argv[1:])

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import rganet_plugin  # noqa: E402,F401  (fast-reid compat patches)
from rganet_analysis.machine import cpu_model  # noqa: E402
from rganet_plugin.evaluation import (compute_query_ranks, evaluate_topk,  # noqa: E402
                                      global_distance, ranks_to_metrics, search_topk, summarize,
                                      weighted_region_distance, weighted_region_distance_naive)
from rganet_plugin.modeling.outputs import Features  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastreid.evaluation.rank import evaluate_rank as fastreid_evaluate_rank  # noqa: E402
    from fastreid.utils.compute_dist import build_dist  # noqa: E402


def make_data(num_query: int, num_gallery: int, seed: int = 0, num_regions: int = 4,
              dim: int = 512, num_ids: int = 1110, num_query_ids: int = 519, num_cams: int = 8,
              noise: float = 2.6):
    rng = np.random.default_rng(seed)
    num_ids = min(num_ids, num_gallery)
    num_query_ids = min(num_query_ids, num_ids, num_query)
    # every identity in the gallery, the rest of the images spread at random
    g_pids = np.concatenate([np.arange(num_ids), rng.integers(0, num_ids, num_gallery - num_ids)])
    q_id_set = rng.choice(num_ids, num_query_ids, replace=False)
    q_pids = np.concatenate([q_id_set, rng.choice(q_id_set, num_query - num_query_ids)])
    # each identity is seen by 2-5 cameras
    id_cams = np.stack([rng.permutation(num_cams) for _ in range(num_ids)])
    id_ncam = rng.integers(2, 6, num_ids)
    pick = lambda pids: id_cams[pids, (rng.random(len(pids)) * id_ncam[pids]).astype(int)]  # noqa
    g_cams, q_cams = pick(g_pids), pick(q_pids)

    centres = rng.standard_normal((num_ids, 1 + num_regions, dim), dtype=np.float32)

    def features(pids):
        n = len(pids)
        x = centres[pids] + noise * rng.standard_normal((n, 1 + num_regions, dim), dtype=np.float32)
        occluded = rng.random((n, num_regions)) < 0.3  # occluded regions: noise, low confidence
        x[:, 1:][occluded] = 2.0 * rng.standard_normal((int(occluded.sum()), dim),
                                                       dtype=np.float32)
        x[:, 0] += 0.6 * rng.standard_normal((n, dim), dtype=np.float32) * occluded.any(1)[:, None]
        logits = rng.standard_normal((n, num_regions)).astype(np.float32) - 2.0 * occluded
        w = torch.softmax(torch.from_numpy(logits), dim=1)
        return Features(torch.from_numpy(x[:, 0].copy()),
                        torch.from_numpy(x[:, 1:].copy()), w)

    return features(q_pids), features(g_pids), q_pids, g_pids, q_cams, g_cams


def timed(fn, repeat=1):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def fastreid_metrics(dist, labels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmc, ap, inp = fastreid_evaluate_rank(dist, *labels, use_cython=False)
    return summarize(cmc, ap, inp)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-query", type=int, default=2210)
    ap.add_argument("--num-gallery", type=int, default=17661)
    ap.add_argument("--threads", type=int, default=0, help="0 = torch's default")
    ap.add_argument("--repeat", type=int, default=3, help="runs of our paths (median reported)")
    ap.add_argument("--topk", type=int, default=100)
    ap.add_argument("--chunk-size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-naive", action="store_true", help="skip path (c)")
    args = ap.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
        faiss_version = faiss.__version__
    except Exception:  # pragma: no cover
        faiss_version = "?"
    from importlib.metadata import version

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {threads} threads, "
          f"torch {torch.__version__}, numpy {np.__version__}, faiss {faiss_version}, "
          f"fastreid {version('fastreid')}, Python {platform.python_version()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    q, g, q_pids, g_pids, q_cams, g_cams = make_data(args.num_query, args.num_gallery, args.seed)
    labels = (q_pids, g_pids, q_cams, g_cams)
    print(f"data: {len(q_pids)} queries x {len(g_pids)} gallery, N=4 regions + global, d=512 "
          f"(generated in {time.perf_counter() - t0:.1f} s)")

    rows = []  # (name, seconds, metrics, details)

    # (a) ours, eq. (10)
    def ours_weighted():
        t = time.perf_counter()
        dist = weighted_region_distance(q, g, chunk_size=args.chunk_size)
        t_dist = time.perf_counter() - t
        ranks = compute_query_ranks(dist, *labels, num_threads=threads)
        t_rank = time.perf_counter() - t - t_dist
        return summarize(*ranks_to_metrics(ranks)), t_dist, t_rank, dist

    runs, times = [], []
    for _ in range(args.repeat):
        out, (t,) = timed(ours_weighted)
        runs.append((t,) + out[1:3])
        m_a, dense_a = out[0], out[3]
    t_a, t_dist, t_rank = sorted(runs)[len(runs) // 2]  # the median run and its split
    rows.append(("(a) ours: eq. (10) dense + vectorised ranking", t_a, m_a,
                 f"distance {t_dist:.2f} s + ranking {t_rank:.2f} s"))

    # (e) ours, global feature only
    def ours_global():
        dist = global_distance(q, g, chunk_size=args.chunk_size)
        return summarize(*ranks_to_metrics(compute_query_ranks(dist, *labels,
                                                               num_threads=threads)))

    m_e, times = timed(ours_global, args.repeat)
    t_e = statistics.median(times)

    def then_fastreid_ranking(distance):
        """A distance function, then fast-reid's ranking: (metrics, distance seconds)."""
        def run():
            t = time.perf_counter()
            dist = distance()
            t_dist = time.perf_counter() - t
            return fastreid_metrics(dist, labels), t_dist
        return run

    # (b) fast-reid's ReidEvaluator path on the global feature
    (m_b, t_b_dist), times = timed(then_fastreid_ranking(
        lambda: build_dist(q.global_feat, g.global_feat, "cosine")))
    t_b = times[0]
    rows.append(("(b) fast-reid: global cosine + evaluate_rank (numpy)", t_b, m_b,
                 f"distance {t_b_dist:.2f} s + ranking {t_b - t_b_dist:.2f} s"))

    # (c) naive per-region eq. (10) + fast-reid's ranking
    if not args.skip_naive:
        (m_c, t_c_dist), times = timed(then_fastreid_ranking(
            lambda: weighted_region_distance_naive(q, g, dtype=torch.float32)))
        t_c = times[0]
        rows.append(("(c) naive per-region eq. (10) + fast-reid ranking", t_c, m_c,
                     f"distance {t_c_dist:.2f} s + ranking {t_c - t_c_dist:.2f} s"))

    # (d) ours, faiss top-k
    def faiss_path():
        top = search_topk(q, g, k=args.topk)
        cmc, all_ap, all_inp = evaluate_topk(top.indices, *labels)
        return summarize(cmc, all_ap, all_inp), top

    (m_d, top), times = timed(faiss_path, args.repeat)
    t_d = statistics.median(times)
    kk = top.indices.shape[1]
    dense_top = np.argpartition(dense_a, kk - 1, axis=1)[:, :kk]
    recall = np.mean([len(np.intersect1d(a, b)) / kk for a, b in zip(top.indices, dense_top)])
    del dense_a
    cert = (f"recall of the dense top-{kk}: {recall * 100:.2f}%, "
            f"{top.certified.mean() * 100:.1f}% of queries certified exact")
    rows.append((f"(d) ours: faiss Flat top-{args.topk} (shortlist {top.shortlist}) + top-k "
                 "metrics", t_d, m_d,
                 f"index {top.timings['index']:.2f} s, search {top.timings['search']:.2f} s, "
                 f"re-score {top.timings['rescore']:.2f} s; {cert}; mAP/mINP are lower bounds"))
    rows.append(("(e) ours: global cosine + vectorised ranking", t_e, m_e, "same inputs as (b)"))

    print(f"load average at end: {os.getloadavg()[0]:.2f}\n")
    print("| path | seconds | speed-up vs (b) | Rank-1 | mAP | mINP | notes |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, t, m, note in rows:
        print(f"| {name} | {t:.2f} | {t_b / t:.1f}x | {m['Rank-1']:.2f} | {m['mAP']:.2f} | "
              f"{m['mINP']:.2f} | {note} |")
    print(f"\nours: median of {args.repeat} runs; fast-reid and naive: one run.")

    # correctness checks (fractions, to 1e-4)
    def same(x, y, what):
        for key in ("Rank-1", "mAP"):
            diff = abs(x[key] - y[key]) / 100
            assert diff <= 1e-4, f"{what}: {key} differs by {diff:.2e} ({x[key]} vs {y[key]})"

    same(m_e, m_b, "ours (global) vs fast-reid")
    if not args.skip_naive:
        same(m_a, m_c, "ours (eq. 10) vs naive eq. 10 + fast-reid ranking")
    print("checks passed: (e) == (b)" + ("" if args.skip_naive else ", (a) == (c)")
          + " (Rank-1, mAP to 1e-4)")


if __name__ == "__main__":
    main()
