"""Cloth-changing data and evaluation: the five loaders on tiny trees in their real layouts,
clothes ids through fast-reid's dataset and sampler, and the protocols' junk rules."""
import os
import pickle

import numpy as np
import pytest
from PIL import Image

import rganet_plugin  # noqa: F401
from fastreid.data.common import CommDataset
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.samplers.triplet_sampler import BalancedIdentitySampler
from fire2.data import ClothesItem, clothes_of
from fire2.evaluation.cloth_changing import (compute_protocol_ranks, evaluate_cloth_changing,
                                             junk_mask, same_clothes_queries, single_shot)
from rganet_plugin.data.datasets import DatasetLayoutError, DatasetNotFoundError
from rganet_plugin.evaluation.ranking import compute_query_ranks


def _img(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (8, 16), (120, 30, 200)).save(path)


def _tree(root, files):
    for f in files:
        _img(os.path.join(root, f))


def _load(name, root):
    return DATASET_REGISTRY.get(name)(root=str(root), corrupt_images="off", verbose=False)


# ------------------------------------------------------------------------------------- loaders
def test_ltcc_layout_and_clothes(tmp_path):
    _tree(tmp_path / "LTCC_ReID", ["train/001_1_c11_015861.png", "train/001_2_c3_000001.png",
                                   "query/005_1_c1_000002.png", "test/005_2_c4_000003.png",
                                   "test/005_1_c2_000004.png"])
    (tmp_path / "LTCC_ReID" / "test" / "notes.txt").write_text("not an image")
    ds = _load("LTCC", tmp_path)
    assert [clothes_of(i) for i in ds.train] == ["ltcc_001_1", "ltcc_001_2"]
    assert ds.train[0][1:] == ("ltcc_1", "ltcc_10")
    assert tuple(ds.query[0])[1:] == (5, 0) and clothes_of(ds.query[0]) == "005_1"
    assert sorted(clothes_of(i) for i in ds.gallery) == ["005_1", "005_2"] and ds.has_clothes


def test_prcc_layout_splits_queries_by_camera(tmp_path):
    _tree(tmp_path / "prcc" / "rgb", ["train/001/A_cropped_rgb001.jpg", "train/001/C_cropped_rgb002.jpg",
                                      "test/A/007/cropped_rgb001.jpg", "test/B/007/cropped_rgb002.jpg",
                                      "test/C/007/cropped_rgb003.jpg"])
    ds = _load("PRCC", tmp_path)
    assert [clothes_of(i) for i in ds.train] == ["prcc_001_AB", "prcc_001_C"]
    assert [(i[1], i[2], clothes_of(i)) for i in ds.gallery] == [(7, 0, "007_AB")]
    assert [(i[2], clothes_of(i)) for i in ds.query] == [(1, "007_AB"), (2, "007_C")]
    assert len(ds.query_same_clothes) == len(ds.query_changed_clothes) == 1


def test_celeb_reid_layout_has_no_clothes(tmp_path):
    _tree(tmp_path / "Celeb-reID", ["train/1_1_0.jpg", "train/2_3_0.jpg", "query/10_1_0.jpg",
                                    "gallery/10_2_0.jpg"])
    ds = _load("CelebReID", tmp_path)
    assert sorted(i[1] for i in ds.train) == ["celebreid_1", "celebreid_2"]
    assert (ds.query[0][2], ds.gallery[0][2]) == (0, 1) and not ds.has_clothes


def test_deepchange_layout_with_and_without_tracklet_lists(tmp_path):
    names = {"train-set": "P0001_C3_D2_T0001.jpg", "test-set-query": "P0450_C1_D5_T0002.jpg",
             "test-set-gallery": "P0450_C1_D6_T0003.jpg"}
    for folder, n in names.items():
        _img(str(tmp_path / "DeepChange" / folder / n))
    ds = _load("DeepChange", tmp_path)
    assert clothes_of(ds.train[0]) == "deepchange_P0001_D2" and ds.query[0][2] == 1
    with open(tmp_path / "DeepChange" / "test-set-query-bbox.txt", "w") as f:
        f.write(f"{names['test-set-query']},42\n")
    ds = _load("DeepChange", tmp_path)
    assert ds.query[0][2] == 42  # the tracklet is the camid when the list is there
    with open(tmp_path / "DeepChange" / "test-set-query-bbox.txt", "w") as f:
        f.write("P0450_C1_D5_T0002.jpg;42\n")
    with pytest.raises(ValueError, match="test-set-query-bbox.txt:1"):
        _load("DeepChange", tmp_path)


def test_deepchange_without_tracklet_lists_says_so_in_one_line(tmp_path, caplog):
    """Issue 22 item 6: without the test splits' -bbox.txt lists the camera ids fall back to the
    file names' cameras; one warning line names the missing lists, none when they are there."""
    names = {"train-set": "P0001_C3_D2_T0001.jpg", "test-set-query": "P0450_C1_D5_T0002.jpg",
             "test-set-gallery": "P0450_C1_D6_T0003.jpg"}
    for folder, n in names.items():
        _img(str(tmp_path / "DeepChange" / folder / n))
    with caplog.at_level("WARNING", logger="fire2.data.deepchange"):
        ds = _load("DeepChange", tmp_path)
    lines = [r.getMessage() for r in caplog.records if "bbox.txt" in r.getMessage()]
    assert len(lines) == 1 and "test-set-query-bbox.txt or test-set-gallery-bbox.txt" in lines[0]
    assert "camera ids are the cameras in the file names" in lines[0] and ds.query[0][2] == 1
    for folder in ("test-set-query", "test-set-gallery"):
        with open(tmp_path / "DeepChange" / f"{folder}-bbox.txt", "w") as f:
            f.write(f"{names[folder]},7\n")
    caplog.clear()
    with caplog.at_level("WARNING", logger="fire2.data.deepchange"):
        _load("DeepChange", tmp_path)
    assert not [r for r in caplog.records if "bbox.txt" in r.getMessage()]


def test_last_layout_train_clothes_only(tmp_path):
    _tree(tmp_path / "last", ["train/000000/000000_000_000000_0.jpg",
                              "train/000000/000000_001_000007_1.jpg",
                              "test/query/005000_000_000001_0.jpg",
                              "test/gallery/005000/005000_002_000003_2.jpg"])
    ds = _load("LaST", tmp_path)
    assert [clothes_of(i) for i in ds.train] == ["last_000000_0", "last_000000_1"]
    assert clothes_of(ds.query[0]) is None and not ds.has_clothes


def test_missing_and_malformed_folders_are_named(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="LTCC_ReID"):
        _load("LTCC", tmp_path)
    _tree(tmp_path / "LTCC_ReID", ["train/001_1_c11_015861.png", "query/005_1_c1_000002.png"])
    with pytest.raises(DatasetNotFoundError, match="no gallery folder"):
        _load("LTCC", tmp_path)
    _tree(tmp_path / "LTCC_ReID", ["test/badname.png"])
    with pytest.raises(DatasetLayoutError, match="no usable image"):
        _load("LTCC", tmp_path)


def test_clothes_items_pass_through_fastreid():
    items = [ClothesItem(f"/x/{i}.png", f"d_{i // 2}", f"d_{i % 3}", f"d_{i // 2}_1") for i in range(8)]
    again = pickle.loads(pickle.dumps(items))
    assert again == items and [clothes_of(i) for i in again] == [clothes_of(i) for i in items]
    ds = CommDataset(items, relabel=True)
    assert ds.num_classes == 4 and ds.img_items[3].clothes == "d_1_1"
    sampler = BalancedIdentitySampler(items, mini_batch_size=4, num_instances=2, seed=0)
    batch = [next(iter(sampler)) for _ in range(1)]
    assert 0 <= batch[0] < 8


# ------------------------------------------------------------------------------------- protocols
# query 0: pid 1 in clothes a, camera 0. Gallery: g0 pid 1 clothes a cam 1 (same clothes),
# g1 pid 1 clothes b cam 0 (same camera), g2 pid 1 clothes b cam 2 (the only cloth-changing match),
# g3 pid 2, g4 pid 1 clothes a cam 0.
Q = dict(pids=[1], cams=[0], clothes=["1_a"])
G = dict(pids=[1, 1, 1, 2, 1], cams=[1, 0, 2, 1, 0], clothes=["1_a", "1_b", "1_b", "2_a", "1_a"])


def test_junk_rule_by_hand():
    std = junk_mask(Q["pids"], Q["cams"], Q["clothes"], G["pids"], G["cams"], G["clothes"], "standard")
    cc = junk_mask(Q["pids"], Q["cams"], Q["clothes"], G["pids"], G["cams"], G["clothes"])
    assert std.tolist() == [[False, True, False, False, True]]
    assert cc.tolist() == [[True, True, False, False, True]]


def test_cloth_changing_ranks_by_hand():
    dist = np.array([[0.1, 0.2, 0.5, 0.3, 0.05]], np.float32)
    std = compute_protocol_ranks(dist, Q["pids"], G["pids"], Q["cams"], G["cams"])
    cc = compute_protocol_ranks(dist, Q["pids"], G["pids"], Q["cams"], G["cams"], Q["clothes"],
                                G["clothes"], "cloth_changing")
    # standard: ranking without junk (g1, g4) is g0 (0.1, match), g3, g2 (match): AP = (1 + 2/3) / 2
    assert std.first_hit[0] == 0 and std.ap[0] == pytest.approx((1 + 2 / 3) / 2)
    # cloth-changing: only g3 (0.3) and g2 (0.5, match) remain: first hit at rank 2, AP 1/2
    assert cc.first_hit[0] == 1 and cc.ap[0] == pytest.approx(0.5)


def test_same_clothes_setting_by_hand():
    """CAL's SC setting: only true matches in the query's clothes count."""
    sc = junk_mask(Q["pids"], Q["cams"], Q["clothes"], G["pids"], G["cams"], G["clothes"],
                   "same_clothes_only")
    assert sc.tolist() == [[False, True, True, False, True]]
    dist = np.array([[0.4, 0.2, 0.1, 0.3, 0.05]], np.float32)
    r = compute_protocol_ranks(dist, Q["pids"], G["pids"], Q["cams"], G["cams"], Q["clothes"],
                               G["clothes"], "same_clothes_only")
    # left: g3 (0.3, other id), g0 (0.4, match): first hit at rank 2, AP 1/2
    assert r.first_hit[0] == 1 and r.ap[0] == pytest.approx(0.5)
    res = evaluate_cloth_changing(dist, Q["pids"], G["pids"], Q["cams"], G["cams"], Q["clothes"],
                                  G["clothes"], same_clothes_only=True)
    assert res["same_clothes_only"]["Rank-1"] == 0.0 and res["same_clothes_only"]["mAP"] == 50.0
    assert "same_clothes_only" not in evaluate_cloth_changing(
        dist, Q["pids"], G["pids"], Q["cams"], G["cams"], Q["clothes"], G["clothes"])


def test_single_shot_gallery_draws_one_image_per_identity():
    """PRCC's single-shot protocol: one gallery image per identity, N draws, mean."""
    q_p, q_c, q_cl = [7], [1], ["7_AB"]
    g_p, g_c, g_cl = [7, 8, 7, 8], [0, 0, 0, 0], ["7_AB", "8_AB", "7_AB", "8_AB"]
    dist = np.array([[0.1, 0.5, 0.9, 0.6]], np.float32)  # 7's first image beats 8, its second does not
    res = single_shot(dist, q_p, g_p, q_c, g_c, q_cl, g_cl, repeats=10, seed=3)
    rng = np.random.default_rng(3)
    draws = [(int(rng.choice([0, 2])), int(rng.choice([1, 3]))) for _ in range(10)]  # per id, in order
    first = [seven == 0 for seven, _ in draws]
    assert res["single_shot_standard"]["Rank-1"] == pytest.approx(100 * np.mean(first))
    assert 0 < np.mean(first) < 1  # the draws differ: the mean is not one gallery's
    with pytest.raises(ValueError, match="repeats >= 1"):
        single_shot(dist, q_p, g_p, q_c, g_c, q_cl, g_cl, repeats=0)


@pytest.mark.parametrize("protocol", ["cloth_changing", "same_clothes_only"])
def test_grouped_rule_equals_direct_junk_mask(protocol):
    rng = np.random.default_rng(0)
    nq, ng = 30, 80
    qp, gp = rng.integers(0, 5, nq), rng.integers(0, 5, ng)
    qc, gc = rng.integers(0, 4, nq), rng.integers(0, 4, ng)
    qcl = [f"{p}_{k}" for p, k in zip(qp, rng.integers(0, 3, nq))]
    gcl = [f"{p}_{k}" for p, k in zip(gp, rng.integers(0, 3, ng))]
    dist = rng.random((nq, ng)).astype(np.float32)
    got = compute_protocol_ranks(dist, qp, gp, qc, gc, qcl, gcl, protocol)
    junk = junk_mask(qp, qc, qcl, gp, gc, gcl, protocol)
    for i in range(nq):  # reference: drop the junk columns, rank with no junk rule at all
        keep = ~junk[i]
        ref = compute_query_ranks(dist[i:i + 1, keep], qp[i:i + 1], gp[keep], np.array([-1]), gc[keep])
        assert got.valid[i] == ref.valid[0]
        if ref.valid[0]:
            assert got.first_hit[i] == ref.first_hit[0] and got.ap[i] == pytest.approx(ref.ap[0])


def test_prcc_style_query_split_and_missing_clothes():
    q_pids, q_cams, q_cl = [7, 7], [1, 2], ["7_AB", "7_C"]
    g_pids, g_cams, g_cl = [7, 8], [0, 0], ["7_AB", "8_AB"]
    assert same_clothes_queries(q_pids, q_cl, g_pids, g_cl).tolist() == [True, False]
    dist = np.array([[0.1, 0.5], [0.9, 0.2]], np.float32)
    res = evaluate_cloth_changing(dist, q_pids, g_pids, q_cams, g_cams, q_cl, g_cl)
    assert res["same_clothes"]["Rank-1"] == 100.0 and res["changed_clothes"]["Rank-1"] == 0.0
    # cloth-changing: query 1's only match wears its clothes (junk), query 2's is kept (rank 2)
    assert res["cloth_changing"]["num_queries"] == 1 and res["cloth_changing"]["Rank-1"] == 0.0
    only_std = evaluate_cloth_changing(dist, q_pids, g_pids, q_cams, g_cams, None, None)
    assert list(only_std) == ["standard"]
    with pytest.raises(ValueError, match="clothes id"):
        junk_mask(q_pids, q_cams, [None, "x"], g_pids, g_cams, g_cl)
