"""The generator's opt-in features: bags (part label 5) and outfits (the cloth-changing set)."""
import json
import os
import re
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

import rganet_plugin  # noqa: F401
from rganet_plugin.synthetic import BAG_LABEL, generate_occluded_duke
from rganet_plugin.synthetic.cloth_changing import (BODY_KEYS, OUTFIT_KEYS, generate_ltcc,
                                                         outfits_of)

SMALL = dict(num_train_ids=6, num_test_ids=4, images_per_id=4, seed=2, height=96, width=48,
             progress=False)
LTCC_NAME = re.compile(r"^(\d{3})_(\d+)_c(\d+)_(\d{6})\.png$")


def _manifest(d):
    with open(os.path.join(d, "synthetic_manifest.json")) as f:
        return json.load(f)


def test_bags_change_only_the_carriers_bag_pixels(tmp_path):
    plain = generate_occluded_duke(str(tmp_path / "plain"), **SMALL)
    bags = generate_occluded_duke(str(tmp_path / "bags"), bags_percent=50, **SMALL)
    mp, mb = _manifest(plain), _manifest(bags)
    assert "bag_carriers" not in mp and "5" not in mp["part_labels"]
    assert mb["part_labels"]["5"] == "bags" and mb["params"]["bags_percent"] == 50
    carriers = set(mb["bag_carriers"])
    assert len(carriers) == 5  # round(50% of 10 identities)
    seen_bag_pixels = 0
    for rp, rb in zip(mp["images"], mb["images"]):
        assert rp["file"] == rb["file"]
        assert (rb["bag"] is not None) == (rb["pid"] in carriers)
        assert len(rb["part_covered"]) == 5 and len(rp["part_covered"]) == 4
        lp = np.asarray(Image.open(os.path.join(plain, rp["mask"])))
        lb = np.asarray(Image.open(os.path.join(bags, rb["mask"])))
        if rb["pid"] in carriers:
            keep = lb != BAG_LABEL
            np.testing.assert_array_equal(lb[keep], lp[keep])  # only bag pixels changed
            seen_bag_pixels += int((~keep).sum())
        else:
            np.testing.assert_array_equal(lb, lp)
            with open(os.path.join(plain, rp["file"]), "rb") as a, \
                    open(os.path.join(bags, rb["file"]), "rb") as b:
                assert a.read() == b.read()
    assert seen_bag_pixels > 0


def test_bags_percent_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match="BAGS_PERCENT"):
        generate_occluded_duke(str(tmp_path), bags_percent=101, **SMALL)


def test_occluded_set_refuses_outfits(tmp_path):
    with pytest.raises(ValueError, match="SyntheticLTCC"):
        generate_occluded_duke(str(tmp_path), outfits_per_id=2, **SMALL)


def test_outfits_keep_body_cues_and_change_garments():
    looks = outfits_of(0, 17, 3)
    assert len(looks) == 3
    for look in looks[1:]:
        assert all(look[k] == looks[0][k] for k in BODY_KEYS)
        assert any(look[k] != looks[0][k] for k in OUTFIT_KEYS)


def test_cloth_changing_set_in_ltcc_layout(tmp_path):
    d = generate_ltcc(str(tmp_path), num_train_ids=5, num_test_ids=4, images_per_id=7, seed=1,
                      height=96, width=48, progress=False)
    assert os.path.basename(d) == "LTCC_ReID"
    m = _manifest(d)
    clothes = defaultdict(set)
    test_split = defaultdict(lambda: defaultdict(set))
    for r in m["images"]:
        name = os.path.basename(r["file"])
        g = LTCC_NAME.match(name)
        assert g, name
        assert int(g.group(1)) == r["pid"] and int(g.group(2)) == r["outfit"]
        assert 1 <= int(g.group(3)) <= 12
        assert r["clothes"] == f"{r['pid']:03d}_{r['outfit']}"
        assert os.path.isfile(os.path.join(d, r["file"])) and os.path.isfile(os.path.join(d, r["mask"]))
        clothes[r["pid"]].add(r["outfit"])
        if r["split"] != "train":
            test_split[r["pid"]][r["split"]].add(r["outfit"])
    assert sorted(os.listdir(d)) == ["masks", "query", "synthetic_manifest.json", "test", "train"]
    assert all(len(v) in (2, 3) for v in clothes.values())
    assert len(test_split) == 4
    for pid, splits in test_split.items():  # every outfit is queried and found in the gallery
        assert splits["query"] == splits["gallery"] == clothes[pid]


def test_cloth_changing_set_needs_two_images_per_outfit(tmp_path):
    with pytest.raises(ValueError, match="IMAGES_PER_ID >= 8"):
        generate_ltcc(str(tmp_path), num_train_ids=2, num_test_ids=2, images_per_id=6,
                      outfits_per_id=4, progress=False)
