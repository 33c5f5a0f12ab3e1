"""Vectorised CMC / AP / INP against fast-reid's reference loop (Market-1501 protocol)."""
import warnings

import numpy as np
import pytest
import torch

import rganet_plugin  # noqa: F401  (fast-reid compat patches)
from rganet_plugin.evaluation.faiss_search import evaluate_topk, topk_query_ranks
from rganet_plugin.evaluation.ranking import (compute_query_ranks, evaluate_rank,
                                              ranks_to_metrics, summarize)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastreid.evaluation.rank import evaluate_rank as fastreid_evaluate_rank


def _labels(rng, num_q, num_g, num_ids=30, num_cams=4, absent_ids=3):
    """Query ids partly absent from the gallery, so some queries have no valid match."""
    g_pids = rng.integers(0, num_ids, num_g)
    q_pids = rng.integers(0, num_ids + absent_ids, num_q)
    return q_pids, g_pids, rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g)


def _reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    cmc, ap, inp = fastreid_evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank,
                                          use_cython=False)
    return cmc, np.asarray(ap), np.asarray(inp)


def _assert_same(ours, ref):
    for a, b, name in zip(ours, ref, ("cmc", "AP", "INP")):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("seed", range(4))
def test_identical_to_fastreid_random_tie_free(seed):
    rng = np.random.default_rng(seed)
    num_q, num_g = int(rng.integers(20, 200)), int(rng.integers(60, 500))
    labels = _labels(rng, num_q, num_g)
    dist = rng.permuted(np.tile(np.arange(num_g, dtype=np.float32), (num_q, 1)), axis=1)
    dist += rng.random(dist.shape, dtype=np.float32) * 0.5  # distinct values within each row
    ref = _reference(dist, *labels)
    ranks = compute_query_ranks(dist, *labels)
    assert ranks.num_tie_rows == 0
    assert (~ranks.valid).any(), "the data should contain queries without a valid match"
    for method in ("auto", "argsort"):
        _assert_same(evaluate_rank(dist, *labels, method=method), ref)


def test_queries_without_valid_match_are_skipped():
    # query 0: only junk (same pid, same camera); query 1: pid absent; query 2: one true match.
    q_pids, q_camids = np.array([1, 7, 2]), np.array([0, 0, 0])
    g_pids, g_camids = np.array([1, 1, 2, 3, 4]), np.array([0, 0, 1, 1, 1])
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5],
                     [0.5, 0.4, 0.3, 0.2, 0.1],
                     [0.1, 0.2, 0.9, 0.3, 0.4]], np.float32)
    ranks = compute_query_ranks(dist, q_pids, g_pids, q_camids, g_camids)
    assert ranks.valid.tolist() == [False, False, True]
    # query 2: junk removed -> order g0(pid1) g1(pid1) g3 g4 g2 -> the match is 5th: AP = 1/5.
    assert ranks.first_hit[2] == 4 and ranks.ap[2] == pytest.approx(0.2)
    ours = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids)
    _assert_same(ours, _reference(dist, q_pids, g_pids, q_camids, g_camids))
    assert len(ours[1]) == 1


def test_ties_follow_numpy_argsort_like_fastreid():
    rng = np.random.default_rng(5)
    labels = _labels(rng, 80, 300, num_ids=20)
    dist = np.round(rng.random((80, 300)), 1).astype(np.float32)  # heavy ties
    ranks = compute_query_ranks(dist, *labels)
    assert ranks.num_tie_rows > 0
    _assert_same(evaluate_rank(dist, *labels), _reference(dist, *labels))


def test_chunking_threads_and_torch_input_do_not_change_results():
    rng = np.random.default_rng(1)
    labels = _labels(rng, 150, 400)
    dist = rng.random((150, 400)).astype(np.float32)
    base = evaluate_rank(dist, *labels, chunk_size=1000, num_threads=1)
    for chunk, threads in ((1, 1), (7, 2), (64, 3)):
        _assert_same(evaluate_rank(dist, *labels, chunk_size=chunk, num_threads=threads), base)
    _assert_same(evaluate_rank(torch.from_numpy(dist), *[torch.from_numpy(x) for x in labels]),
                 base)


def test_small_gallery_caps_max_rank():
    rng = np.random.default_rng(2)
    q_pids, g_pids = np.arange(10) % 5, np.arange(12) % 5
    q_camids, g_camids = np.zeros(10, int), np.ones(12, int)
    dist = rng.random((10, 12)).astype(np.float32)
    cmc, _, _ = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids)
    assert cmc.shape == (12,) and cmc[-1] == 1.0
    _assert_same(evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids),
                 _reference(dist, q_pids, g_pids, q_camids, g_camids))


def test_summarize_matches_fastreid_keys():
    rng = np.random.default_rng(3)
    labels = _labels(rng, 50, 200)
    dist = rng.random((50, 200)).astype(np.float32)
    cmc, ap, inp = _reference(dist, *labels)
    res = summarize(*evaluate_rank(dist, *labels))
    assert list(res) == ["Rank-1", "Rank-3", "Rank-5", "Rank-10", "mAP", "mINP", "metric"]
    assert res["Rank-1"] == pytest.approx(cmc[0] * 100)
    assert res["mAP"] == pytest.approx(np.mean(ap) * 100)
    assert res["mINP"] == pytest.approx(np.mean(inp) * 100)
    assert res["metric"] == pytest.approx((np.mean(ap) + cmc[0]) / 2 * 100)


def test_errors_are_clear():
    d = np.zeros((2, 3), np.float32)
    ids = (np.array([0, 1]), np.array([0, 1, 2]), np.array([0, 0]), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="query set is empty"):
        evaluate_rank(np.zeros((0, 3), np.float32), ids[0][:0], ids[1], ids[2][:0], ids[3])
    with pytest.raises(ValueError, match="gallery set is empty"):
        evaluate_rank(np.zeros((2, 0), np.float32), ids[0], ids[1][:0], ids[2], ids[3][:0])
    with pytest.raises(ValueError, match="3 gallery columns"):
        evaluate_rank(d, ids[0], ids[1][:2], ids[2], ids[3])
    with pytest.raises(ValueError, match="2 query rows"):
        evaluate_rank(d, ids[0][:1], ids[1], ids[2], ids[3])
    with pytest.raises(ValueError, match="2-D"):
        evaluate_rank(np.zeros(3, np.float32), ids[0], ids[1], ids[2], ids[3])
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate_rank(d, np.array([5, 6]), ids[1], ids[2], ids[3])
    bad = d.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf.*row 1"):
        evaluate_rank(bad, *ids)


def test_topk_metrics_equal_dense_when_every_positive_is_retrieved():
    rng = np.random.default_rng(4)
    labels = _labels(rng, 60, 250)
    dist = rng.random((60, 250)).astype(np.float32)
    full = np.argsort(dist, axis=1)
    dense = evaluate_rank(dist, *labels)
    _assert_same(evaluate_topk(full, *labels), dense)

    # Truncated lists: CMC exact while the lists are long enough, AP/INP lower bounds.
    k = 40
    cmc_k, ap_k, inp_k = evaluate_topk(full[:, :k], *labels)
    junk_in_list = (labels[1][full[:, :k]] == labels[0][:, None]) & \
                   (labels[3][full[:, :k]] == labels[2][:, None])
    exact_upto = k - junk_in_list.sum(1).max()
    np.testing.assert_allclose(cmc_k[:exact_upto], dense[0][:exact_upto], atol=1e-6)
    assert (ap_k <= dense[1] + 1e-12).all() and (inp_k <= dense[2] + 1e-12).all()
    assert ap_k.mean() < dense[1].mean()
    ranks = topk_query_ranks(full[:, :k], *labels)
    assert ranks.num_valid == len(dense[1])
    assert ranks_to_metrics(ranks)[0].shape == (k,)
