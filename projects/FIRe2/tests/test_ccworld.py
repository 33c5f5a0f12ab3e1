"""Issue 22: the generated clothes-changing world (``DATASETS.SYNTHETIC.IDENTITY_CUES 1``), where
an identity keeps cues that survive a change of clothes, and the chance level the clothes-changing
evaluation prints beside its results."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from fire2.config import load_fire2_config
from fire2.evaluation.cloth_changing import chance_level, evaluate_cloth_changing, junk_mask
from rganet_plugin.synthetic.cloth_changing import CUE_KEYS, OUTFIT_KEYS, generate_ltcc, outfits_of
from rganet_plugin.synthetic.occluded_duke import generate_occluded_duke
from rganet_plugin.synthetic.params import params_hash, synthetic_params

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_cues_persist_across_outfits_and_differ_between_people():
    looks = {pid: outfits_of(0, pid, 3, cues=True) for pid in range(1, 41)}
    for outfits in looks.values():
        for key in CUE_KEYS + ("skin", "hair", "build", "height", "shoes"):
            assert len({repr(o[key]) for o in outfits}) == 1, key  # the person keeps them
        assert len({repr(o["upper"]) for o in outfits}) == 3  # the clothes change
        assert all(o["hat"] is None for o in outfits)
    firsts = [o[0] for o in looks.values()]
    assert len({o["hair"] for o in firsts}) >= 8 and len({o["hair_style"] for o in firsts}) == 5
    assert np.ptp([o["head_scale"] for o in firsts]) > 0.3 and np.ptp([o["height"] for o in firsts]) > 0.15
    # the default world draws exactly what it drew before (no cue keys, same body, hats allowed)
    plain = outfits_of(0, 7, 3)
    assert not set(CUE_KEYS) & set(plain[0]) and plain[1]["upper"] == looks[7][1]["upper"]
    assert all(plain[k][key] == looks[7][k][key] for k in range(3) for key in OUTFIT_KEYS if key != "hat")


def test_default_world_keeps_its_cache_name_and_bad_values_are_refused(tmp_path):
    assert params_hash(synthetic_params(identity_cues=0), 1) == params_hash(synthetic_params(), 1)
    assert params_hash(synthetic_params(identity_cues=1), 1) != params_hash(synthetic_params(), 1)
    with pytest.raises(ValueError, match="IDENTITY_CUES must be 0 .* or 1"):
        synthetic_params(identity_cues=2)
    with pytest.raises(ValueError, match="IDENTITY_CUES is for the cloth-changing set"):
        generate_occluded_duke(str(tmp_path / "occ"), identity_cues=1, progress=False)
    assert not (tmp_path / "occ").exists()  # refused before anything is written


def _descriptor(dataset_dir, rec):
    """Mean colour of the head (hair, face) and of the bag at 64x32: cues clothes do not carry."""
    img = np.asarray(Image.open(os.path.join(dataset_dir, rec["file"])), np.float32)
    lab = np.asarray(Image.open(os.path.join(dataset_dir, rec["mask"])))
    return np.concatenate([img[lab == k].mean(0) if (lab == k).any() else np.zeros(3) for k in (1, 5)])


def test_identity_survives_a_change_of_clothes_at_the_training_size(tmp_path):
    """At 64x32, a query's head and bag colours find the person in another outfit far above chance
    (the clothes-changing protocol's junk rule, chance level from chance_level)."""
    d = generate_ltcc(str(tmp_path / "w"), num_train_ids=1, num_test_ids=30, images_per_id=6,
                      height=64, width=32, outfits_per_id=3, bags_percent=100, identity_cues=1,
                      progress=False)
    man = json.load(open(os.path.join(d, "synthetic_manifest.json")))
    assert man["params"]["identity_cues"] == 1 and set(CUE_KEYS) <= set(man["body_keys"])
    q = [r for r in man["images"] if r["split"] == "query"]
    g = [r for r in man["images"] if r["split"] == "gallery"]
    fq, fg = (np.stack([_descriptor(d, r) for r in rs]) for rs in (q, g))
    dist = ((fq[:, None] - fg[None]) ** 2).sum(-1)
    cols = {k: [np.array([r[k] for r in rs]) for rs in (q, g)] for k in ("pid", "camid", "clothes")}
    res = evaluate_cloth_changing(dist, cols["pid"][0], cols["pid"][1], cols["camid"][0],
                                  cols["camid"][1], list(cols["clothes"][0]), list(cols["clothes"][1]))
    cc = res["cloth_changing"]
    assert cc["num_queries"] >= 85  # a few queries may see their other outfits only on their own camera
    assert cc["Rank-1"] > 40 and cc["Rank-1"] > 10 * cc["chance Rank-1"], cc


def test_ccworld_config_has_300_clothes_changing_queries():
    cfg = load_fire2_config(os.path.join(REPO, "configs", "Demo", "fire2_ccworld.yml"))
    s = cfg.DATASETS.SYNTHETIC
    assert s.IDENTITY_CUES == 1 and s.BAGS_PERCENT == 100
    assert s.NUM_TEST_IDS * s.OUTFITS_PER_ID >= 300  # one query per outfit of each test identity
    for arm in ("baseline", "ffm", "far"):
        c = load_fire2_config(os.path.join(REPO, "configs", "Demo", f"fire2_{arm}_ccworld.yml"))
        assert c.DATASETS.SYNTHETIC == s and c.MODEL.FIRE2.FFM.K1 == cfg.MODEL.FIRE2.FFM.K1


def test_chance_level_by_hand_and_against_random_rankings():
    # one query, 4 gallery images, 1 true match: R1 1/4, AP = H_4 / 4
    junk = np.zeros((1, 4), bool)
    same = np.array([[True, False, False, False]])
    c = chance_level(junk, same)
    assert c["chance Rank-1"] == pytest.approx(25.0)
    assert c["chance mAP"] == pytest.approx(100 * (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    # random distances: the mean of many evaluations approaches the expectation
    rng = np.random.default_rng(0)
    rep = 200  # 4 kinds of query, 200 of each: one evaluation averages 800 random rankings
    q_p, g_p = np.tile([0, 0, 1, 2], rep), np.array([0, 0, 0, 1, 1, 2, 2, 3, 3, 4])
    q_c, g_c = np.tile([0, 1, 0, 1], rep), np.arange(10) % 3
    q_cl, g_cl = ["a", "b", "c", "d"] * rep, ["a", "a", "b", "c", "x", "d", "y", "z", "z", "w"]
    runs = [evaluate_cloth_changing(rng.random((4 * rep, 10)), q_p, g_p, q_c, g_c, q_cl, g_cl)
            for _ in range(15)]
    for proto in ("standard", "cloth_changing"):
        for m in ("Rank-1", "mAP"):
            mean = np.mean([r[proto][m] for r in runs])
            assert mean == pytest.approx(runs[0][proto][f"chance {m}"], abs=0.8), (proto, m)
    junk = junk_mask(q_p, q_c, q_cl, g_p, g_c, g_cl)
    assert np.isnan(chance_level(junk, q_p[:, None] == g_p[None], np.zeros(4 * rep, bool))["chance mAP"])
