"""Eq. (10) distances, faiss top-k search and the WeightedRegionEvaluator."""
import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch

import rganet_plugin  # noqa: F401  (fast-reid compat patches)
from rganet_plugin.config import get_rganet_cfg
from rganet_plugin.evaluation import (WeightedRegionEvaluator, evaluate_rank, global_distance,
                                      search_topk, weighted_region_distance,
                                      weighted_region_distance_naive)
from rganet_plugin.modeling.outputs import FeatureLayout, Features

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastreid.evaluation import ReidEvaluator
    from fastreid.utils.compute_dist import build_dist

S2 = 1 / math.sqrt(2)


def _hand_case():
    """2 queries x 2 gallery, N = 2 regions of dimension 2, global dimension 2."""
    t = torch.tensor
    q = Features(
        global_feat=t([[1., 0.], [0., 1.]]),
        region_feats=t([[[1., 0.], [0., 1.]],
                        [[0., 2.], [1., 1.]]]),  # not unit length: cosine ignores the norm
        weights=t([[0.5, 0.5], [1.0, 0.0]]))
    g = Features(
        global_feat=t([[1., 0.], [1., 1.]]),
        region_feats=t([[[1., 0.], [1., 0.]],
                        [[0., 1.], [0., 1.]]]),
        weights=t([[0.5, 0.5], [0.25, 0.75]]))
    # d = (sum_j wq_j wg_j d_j + d_g) / (sum_j wq_j wg_j + 1), d = 1 - cos
    expected = np.array([
        # q0-g0: d_g=0, d_1=0, d_2=1, ww=(.25,.25): (0.25) / 1.5
        # q0-g1: d_g=1-1/sqrt2, d_1=1, d_2=0, ww=(.125,.375): (0.125 + 1 - 1/sqrt2) / 1.5
        [0.25 / 1.5, (0.125 + 1 - S2) / 1.5],
        # q1-g0: d_g=1, d_1=1, d_2=1-1/sqrt2, ww=(.5,0): (0.5 + 1) / 1.5
        # q1-g1: d_g=1-1/sqrt2, d_1=0, ww=(.25,0): (1 - 1/sqrt2) / 1.25
        [1.0, (1 - S2) / 1.25],
    ])
    return q, g, expected


def test_eq10_hand_computed():
    q, g, expected = _hand_case()
    np.testing.assert_allclose(expected, [[1 / 6, 0.27859548], [1.0, 0.23431458]], atol=1e-8)
    d = weighted_region_distance(q, g, device="cpu")
    assert d.dtype == np.float32 and d.shape == (2, 2)
    np.testing.assert_allclose(d, expected, atol=1e-6)
    np.testing.assert_allclose(weighted_region_distance_naive(q, g), expected, atol=1e-12)


def _random_features(rng, n, num_regions=4, dim=32, gdim=48):
    return Features(
        torch.from_numpy(rng.standard_normal((n, gdim)).astype(np.float32)),
        torch.from_numpy(rng.standard_normal((n, num_regions, dim)).astype(np.float32)),
        torch.softmax(torch.from_numpy(rng.standard_normal((n, num_regions)).astype(np.float32)),
                      dim=1))


def test_eq10_matches_naive_loop_and_chunking_is_invisible():
    rng = np.random.default_rng(0)
    q, g = _random_features(rng, 37), _random_features(rng, 53)
    ref = weighted_region_distance_naive(q, g)
    one = weighted_region_distance(q, g, chunk_size=4096)
    np.testing.assert_allclose(one, ref, atol=2e-6)
    for chunk in (1, 5, 36):
        np.testing.assert_allclose(weighted_region_distance(q, g, chunk_size=chunk), one,
                                   atol=1e-6)
    # N = 0 is the plain cosine distance, as fast-reid computes it.
    np.testing.assert_allclose(weighted_region_distance(q.global_feat, g.global_feat),
                               build_dist(q.global_feat, g.global_feat, "cosine"), atol=1e-6)
    for metric in ("cosine", "euclidean"):
        np.testing.assert_allclose(global_distance(q, g, metric=metric, chunk_size=10),
                                   build_dist(q.global_feat, g.global_feat, metric),
                                   rtol=1e-5, atol=1e-4)


def test_distance_input_errors():
    rng = np.random.default_rng(1)
    q, g = _random_features(rng, 3), _random_features(rng, 4, num_regions=3)
    with pytest.raises(ValueError, match="region features differ"):
        weighted_region_distance(q, g)
    with pytest.raises(ValueError, match="regions but 2 confidence"):
        weighted_region_distance((q.global_feat, q.region_feats, q.weights[:, :2]), q)
    with pytest.raises(ValueError, match="global features differ"):
        weighted_region_distance(q.global_feat, g.global_feat[:, :10])


# ---------------------------------------------------------------------------- faiss
def test_faiss_exact_topk_equals_dense_topk():
    rng = np.random.default_rng(2)
    q, g = _random_features(rng, 40), _random_features(rng, 300)
    k = 10
    for global_only in (True, False):
        dense = (global_distance(q, g) if global_only else weighted_region_distance(q, g))
        order = np.argsort(dense, axis=1, kind="stable")[:, :k]
        top = search_topk(q, g, k=k, global_only=global_only, shortlist=300, use_gpu=False)
        assert top.certified.all()
        np.testing.assert_array_equal(top.indices, order)
        np.testing.assert_allclose(top.distances, np.take_along_axis(dense, order, 1), atol=1e-5)
    # Default shortlist (2k) + threshold search: proven exact for every query.
    top = search_topk(q, g, k=k, use_gpu=False)
    assert top.shortlist == 2 * k and top.certified.all()
    dense = weighted_region_distance(q, g)
    order = np.argsort(dense, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(top.indices, order)
    # Without the threshold search (shortlist only) nothing is claimed.
    assert search_topk(q, g, k=k, shortlist=k, refine=False, use_gpu=False).certified is None


def test_faiss_approximate_indexes_run():
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((20, 48)).astype(np.float32)
    gal = centres[np.arange(400) % 20] + 0.05 * rng.standard_normal((400, 48)).astype(np.float32)
    qry = centres[np.arange(20)] + 0.05 * rng.standard_normal((20, 48)).astype(np.float32)
    exact = search_topk(qry, gal, k=5, use_gpu=False)
    for spec in ("IVF8,Flat|nprobe=8", "HNSW16"):
        top = search_topk(qry, gal, k=5, index_spec=spec, use_gpu=False)
        assert top.certified is None and top.indices.shape == (20, 5)
        assert np.mean(top.indices == exact.indices) > 0.9
    with pytest.raises(ValueError, match="lists but the gallery has only"):
        search_topk(qry, gal[:10], k=5, index_spec="IVF64,Flat", use_gpu=False)


# ---------------------------------------------------------------------------- evaluator
LAYOUT = FeatureLayout(global_dim=16, num_regions=3, region_dim=8)


def _cfg(**overrides):
    cfg = get_rganet_cfg()
    cfg.MODEL.DEVICE = "cpu"
    for key, value in overrides.items():
        node = cfg
        *path, leaf = key.split(".")
        for p in path:
            node = node[p]
        node[leaf] = value
    return cfg


def _synthetic(rng, num_ids=12, q_per_id=2, g_per_id=5, noise=0.05, distractors=6):
    """Packed features clustered by identity; queries on camera 0, gallery on cameras 1-2 plus one
    same-camera (junk) image per identity."""
    dim = LAYOUT.total_dim - LAYOUT.num_regions
    centres = rng.standard_normal((num_ids + distractors, dim)).astype(np.float32)

    def make(ids, cams):
        x = centres[ids] + noise * rng.standard_normal((len(ids), dim)).astype(np.float32)
        w = rng.random((len(ids), LAYOUT.num_regions)).astype(np.float32)
        w /= w.sum(1, keepdims=True)
        return torch.from_numpy(np.concatenate([x, w], 1)), ids, cams

    q_ids = np.repeat(np.arange(num_ids), q_per_id)
    g_ids = np.concatenate([np.repeat(np.arange(num_ids), g_per_id), np.arange(num_ids),
                            num_ids + np.arange(distractors)])
    g_cams = np.concatenate([1 + np.arange(num_ids * g_per_id) % 2, np.zeros(num_ids, int),
                             np.ones(distractors, int)])
    return make(q_ids, np.zeros(len(q_ids), int)), make(g_ids, g_cams)


def _run(evaluator, query, gallery, batch=7):
    evaluator.reset()
    feats = torch.cat([query[0], gallery[0]])
    pids = np.concatenate([query[1], gallery[1]])
    cams = np.concatenate([query[2], gallery[2]])
    for s in range(0, len(feats), batch):
        evaluator.process({"targets": torch.as_tensor(pids[s:s + batch]),
                           "camids": torch.as_tensor(cams[s:s + batch])}, feats[s:s + batch])
    return evaluator.evaluate()


def test_evaluator_separable_features_score_100():
    rng = np.random.default_rng(4)
    query, gallery = _synthetic(rng)
    ev = WeightedRegionEvaluator(_cfg(), num_query=len(query[1]), layout=LAYOUT)
    res = _run(ev, query, gallery)
    assert isinstance(res, OrderedDict)
    assert list(res) == ["Rank-1", "Rank-3", "Rank-5", "Rank-10", "mAP", "mINP", "metric"]
    for key in res:
        assert res[key] == pytest.approx(100.0)
    dist = ev.compute_distance(query[0], gallery[0])
    assert dist.shape == (len(query[1]), len(gallery[1]))
    np.testing.assert_allclose(dist, weighted_region_distance_naive(
        LAYOUT.unpack(query[0]), LAYOUT.unpack(gallery[0])), atol=1e-5)


def test_evaluator_matches_distance_and_ranking_on_noisy_features():
    rng = np.random.default_rng(5)
    query, gallery = _synthetic(rng, noise=1.5)
    ev = WeightedRegionEvaluator(_cfg(**{"TEST.RGANET.CHUNK_SIZE": 5}), len(query[1]), LAYOUT)
    res = _run(ev, query, gallery)
    q, g = LAYOUT.unpack(query[0]), LAYOUT.unpack(gallery[0])
    dist = weighted_region_distance_naive(q, g)
    cmc, ap, _ = evaluate_rank(dist, query[1], gallery[1], query[2], gallery[2])
    assert res["Rank-1"] == pytest.approx(cmc[0] * 100)
    assert res["mAP"] == pytest.approx(np.mean(ap) * 100, abs=1e-4)
    assert res["mAP"] < 100


def test_fast_eq10_path_gives_the_reference_cmc_map_minp():
    """The evaluator's fused eq. (10) path (one product, one division pass, sort-based ranking)
    against the reference: the literal per-region eq. (10) in float64 ranked by fast-reid's own
    ``evaluate_rank`` (numpy). CMC, mAP and mINP agree (issue 23)."""
    from fastreid.evaluation.rank import evaluate_rank as fastreid_evaluate_rank

    rng = np.random.default_rng(23)
    query, gallery = _synthetic(rng, num_ids=20, g_per_id=6, noise=2.0, distractors=30)
    ev = WeightedRegionEvaluator(_cfg(**{"TEST.RGANET.CHUNK_SIZE": 7}), len(query[1]), LAYOUT)
    res = _run(ev, query, gallery)
    dist = weighted_region_distance_naive(LAYOUT.unpack(query[0]), LAYOUT.unpack(gallery[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmc, ap, inp = fastreid_evaluate_rank(dist, query[1], gallery[1], query[2], gallery[2],
                                              use_cython=False)
    for r in (1, 3, 5, 10):
        assert res[f"Rank-{r}"] == pytest.approx(cmc[r - 1] * 100, abs=1e-6)
    assert res["mAP"] == pytest.approx(np.mean(ap) * 100, abs=1e-6)
    assert res["mINP"] == pytest.approx(np.mean(inp) * 100, abs=1e-6)
    assert 0 < res["mAP"] < 100 and res["Rank-1"] < 100  # a case where the order matters


def test_global_only_equals_fastreid_reid_evaluator():
    rng = np.random.default_rng(6)
    query, gallery = _synthetic(rng, noise=1.5)
    cfg = _cfg(**{"TEST.RGANET.GLOBAL_ONLY": True})
    ours = _run(WeightedRegionEvaluator(cfg, len(query[1]), LAYOUT), query, gallery)
    g = LAYOUT.global_dim
    theirs = _run(ReidEvaluator(cfg, len(query[1])), (query[0][:, :g],) + query[1:],
                  (gallery[0][:, :g],) + gallery[1:])
    # same keys as fast-reid's, plus Rank-3 (the partial-ReID benchmarks report R1 / R3)
    assert [k for k in ours if k != "Rank-3"] == list(theirs)
    for key in theirs:
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-4)


def test_rerank_changes_the_combined_distance():
    rng = np.random.default_rng(7)
    query, gallery = _synthetic(rng, noise=1.0)
    cfg = _cfg(**{"TEST.RERANK.ENABLED": True, "TEST.RERANK.K1": 6, "TEST.RERANK.K2": 3})
    ev = WeightedRegionEvaluator(cfg, len(query[1]), LAYOUT)
    res = _run(ev, query, gallery)
    plain = WeightedRegionEvaluator(_cfg(), len(query[1]), LAYOUT).compute_distance(
        query[0], gallery[0])
    reranked = ev.compute_distance(query[0], gallery[0])
    assert reranked.shape == plain.shape
    assert not np.allclose(reranked, plain, atol=1e-3)
    assert 0 <= res["mAP"] <= 100


def test_evaluator_faiss_search_equals_dense_when_k_covers_gallery():
    rng = np.random.default_rng(8)
    query, gallery = _synthetic(rng, noise=1.0)
    n_g = len(gallery[1])
    dense = _run(WeightedRegionEvaluator(_cfg(), len(query[1]), LAYOUT), query, gallery)
    ev = WeightedRegionEvaluator(_cfg(**{"TEST.RGANET.SEARCH": "faiss", "TEST.RGANET.TOPK": n_g}),
                                 len(query[1]), LAYOUT)
    res = _run(ev, query, gallery)
    for key in dense:
        assert res[key] == pytest.approx(dense[key], abs=1e-4)


def test_evaluator_gathers_predictions_from_all_processes(monkeypatch):
    """Two ranks each process half of the batches; rank 0 evaluates everything, others get {}."""
    from fastreid.utils import comm

    rng = np.random.default_rng(10)
    query, gallery = _synthetic(rng, noise=1.0)
    single = WeightedRegionEvaluator(_cfg(), len(query[1]), LAYOUT)
    expected = _run(single, query, gallery)

    ranks = [WeightedRegionEvaluator(_cfg(), len(query[1]), LAYOUT) for _ in range(2)]
    feats = torch.cat([query[0], gallery[0]])
    pids = np.concatenate([query[1], gallery[1]])
    cams = np.concatenate([query[2], gallery[2]])
    half = len(feats) // 2  # batches in dataset order, as fast-reid's inference sampler
    for ev, sl in zip(ranks, (slice(0, half), slice(half, None))):
        ev.process({"targets": torch.as_tensor(pids[sl]), "camids": torch.as_tensor(cams[sl])},
                   feats[sl])
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(comm, "synchronize", lambda: None)
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: [r._predictions for r in ranks])
    monkeypatch.setattr(comm, "is_main_process", lambda: True)
    assert ranks[0].evaluate() == expected
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert ranks[1].evaluate() == {}


def test_evaluator_errors_are_clear():
    rng = np.random.default_rng(9)
    query, gallery = _synthetic(rng)
    ev = WeightedRegionEvaluator(_cfg(), num_query=0, layout=LAYOUT)
    with pytest.raises(ValueError, match="query set is empty"):
        _run(ev, query, gallery)
    ev = WeightedRegionEvaluator(_cfg(), num_query=len(query[1]), layout=LAYOUT)
    with pytest.raises(ValueError, match="gallery set is empty"):
        _run(ev, query, (gallery[0][:0], gallery[1][:0], gallery[2][:0]))
    ev.reset()
    with pytest.raises(ValueError, match="no features were processed"):
        ev.evaluate()
    other = FeatureLayout(global_dim=16, num_regions=4, region_dim=8)
    ev = WeightedRegionEvaluator(_cfg(), num_query=len(query[1]), layout=other)
    with pytest.raises(ValueError, match="disagree on the feature layout"):
        _run(ev, query, gallery)
    with pytest.raises(ValueError, match="columns but the layout"):
        ev.compute_distance(query[0], gallery[0])
    with pytest.raises(ValueError, match="cannot be used with TEST.RGANET.SEARCH = 'faiss'"):
        WeightedRegionEvaluator(_cfg(**{"TEST.RGANET.SEARCH": "faiss",
                                        "TEST.RERANK.ENABLED": True}), 3, LAYOUT)
    with pytest.raises(ValueError, match="AQE"):
        WeightedRegionEvaluator(_cfg(**{"TEST.AQE.ENABLED": True}), 3, LAYOUT)
