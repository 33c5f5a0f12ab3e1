"""The misaligned world of the generator: shifted and scaled people, partial views (top / bottom
windows resized to the image), garments shared between identities; the default world unchanged."""
import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

import rganet_plugin  # noqa: F401
from rganet_plugin.synthetic import generate_occluded_duke
from rganet_plugin.synthetic.cloth_changing import generate_ltcc
from rganet_plugin.synthetic.framing import assign_framing, crop_window
from rganet_plugin.synthetic.params import params_hash, synthetic_params
from rganet_analysis.mechanism import load_ground_truth, stripe_part_iou

TINY = dict(num_train_ids=6, num_test_ids=4, images_per_id=4, seed=2, height=96, width=48,
            progress=False)
WORLD = dict(num_train_ids=4, num_test_ids=24, images_per_id=4, seed=3, height=128, width=64,
             misaligned_percent=50, partial_percent=50, garment_pool=3, progress=False)


def _manifest(d):
    with open(os.path.join(d, "synthetic_manifest.json")) as f:
        return json.load(f)


def _label(d, rec):
    return np.asarray(Image.open(os.path.join(d, rec["mask"])))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_occluded_duke(str(tmp_path_factory.mktemp("world")), **WORLD)


def test_default_world_is_byte_identical_and_keeps_its_cache_name(tmp_path):
    # the pixels and masks of the default world, as generated before the misaligned world
    # existed (main at d288fcd): the demo's data and figures must not move
    d = generate_occluded_duke(str(tmp_path), **TINY)
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(d)):
        for f in sorted(files):
            if f.endswith((".jpg", ".png")):
                h.update(f.encode())
                with open(os.path.join(root, f), "rb") as fh:
                    h.update(fh.read())
    assert h.hexdigest() == "83b43a4776df7d364b63c0f2f42a56b8230023cde4c78f1ccc35da1410acdaf1"
    assert "framing" not in _manifest(d)["images"][0]
    # new keys at 0 leave the cache name alone; a non-zero one gives another cache
    base = params_hash(synthetic_params())
    assert params_hash(synthetic_params(misaligned_percent=0, garment_pool=0)) == base
    assert params_hash(synthetic_params(misaligned_percent=30)) != base


def test_a_dataset_written_before_the_new_keys_is_still_the_same_dataset(tmp_path):
    d = generate_occluded_duke(str(tmp_path), **TINY)
    path = os.path.join(d, "synthetic_manifest.json")
    m = _manifest(d)
    for k in ("misaligned_percent", "partial_percent", "garment_pool"):
        del m["params"][k]
    with open(path, "w") as f:
        json.dump(m, f)
    assert generate_occluded_duke(str(tmp_path), **TINY) == d  # no FileExistsError


def test_assign_framing_counts_and_partial_queries_are_unoccluded():
    plan = ([{"split": "train", "occluded": False}] * 0
            + [{"split": s, "occluded": s == "query"} for s in ["train"] * 20 + ["query"] * 10
               + ["gallery"] * 30])
    assign_framing(plan, seed=1, misaligned_percent=40, partial_percent=30)
    by = lambda s, fr: sum(1 for p in plan if p["split"] == s and p["framing"] in fr)
    assert by("query", ("top", "bottom")) == 3                    # round(30 % of 10)
    assert by("train", ("shifted",)) == 8 and by("gallery", ("shifted",)) == 12
    assert by("query", ("shifted",)) == 3                         # round(40 % of the other 7)
    assert by("train", ("top", "bottom")) == by("gallery", ("top", "bottom")) == 0
    for p in plan:
        if p["framing"] in ("top", "bottom"):
            assert p["occluded"] is False and 0.4 <= p["frame"]["fraction"] <= 0.8
        elif p["framing"] == "shifted":
            assert 0.55 <= p["frame"]["scale"] <= 1.0 and 0 <= p["frame"]["top"] <= 1
            assert abs(p["frame"]["dx"]) <= 0.15
        else:
            assert p["frame"] is None
    off = [{"split": "query", "occluded": True}]
    assign_framing(off, seed=1, misaligned_percent=0, partial_percent=0)
    assert off[0]["framing"] == "full" and off[0]["occluded"] is True


def test_crop_window_against_a_hand_computed_case():
    # a 100 x 50 label map: body rows 10..89 (80 rows), head 10-29, upper 30-49, lower 50-79,
    # foot 80-89, columns 15..34
    h, w = 100, 50
    label = np.zeros((h, w), np.uint8)
    for k, (a, b) in enumerate([(10, 30), (30, 50), (50, 80), (80, 90)], start=1):
        label[a:b, 15:35] = k
    img = np.repeat(label[..., None].astype(np.float32) * 40, 3, axis=2)
    # top window: 0.5 of 80 body rows from row 10 -> rows [10 - 3, 50); margin 3 = 0.03 x 100
    view, view_label, outside = crop_window(img, label, "top", 0.5, 4)
    assert view.shape == (h, w, 3) and view_label.shape == (h, w)
    assert outside == [0.0, 0.0, 1.0, 1.0]
    assert set(np.unique(view_label)) == {0, 1, 2}
    # the window is 43 rows tall, so the head (20 of them) fills about 20/43 of the view
    head_rows = np.nonzero((view_label == 1).any(axis=1))[0]
    assert abs(len(head_rows) - 20 * h / 43) <= 2
    # bottom window: 0.375 of 80 rows up from row 90 -> rows [60, 93): lower 20 of 30 rows in
    view, view_label, outside = crop_window(img, label, "bottom", 0.375, 4)
    assert outside[0] == outside[1] == 1.0 and outside[3] == 0.0
    assert outside[2] == pytest.approx(10 / 30)
    with pytest.raises(ValueError, match="no body"):
        crop_window(img, np.zeros_like(label), "top", 0.5, 4)
    with pytest.raises(ValueError, match="'top' or 'bottom'"):
        crop_window(img, label, "left", 0.5, 4)


def test_generated_views_follow_their_framing(world):
    m = _manifest(world)
    assert m["params"]["misaligned_percent"] == 50 and m["params"]["partial_percent"] == 50
    recs = m["images"]
    seen = {r["framing"] for r in recs}
    assert {"full", "shifted", "top", "bottom"} <= seen
    h = WORLD["height"]
    for r in recs:
        lab = _label(world, r)
        rows = np.nonzero((lab > 0).any(axis=1))[0]
        if r["framing"] == "top":
            # a window of at most 80 % of the body never reaches the feet
            assert r["part_covered"][3] == 1.0 and not (lab == 4).any()
            assert r["part_covered"][0] == 0.0 and (lab == 1).any()
            assert r["split"] == "query" and r["occluder"] is None
        elif r["framing"] == "bottom":
            assert r["part_covered"][0] == 1.0 and not (lab == 1).any()
            assert r["part_covered"][3] == 0.0 and (lab == 4).any()
        elif r["framing"] == "shifted" and not r["occluded"] and r["frame"]["scale"] < 0.75:
            # default people are 0.75-0.93 of the image tall; these are scaled down
            assert len(rows) < 0.75 * h
    # partial views are about a part, not a row: stripes find the parts worse there
    gt = load_ground_truth(world)
    f = np.array(gt.framings())
    full = stripe_part_iou(gt.subset(f == "full"), 4)["part_miou"]
    partial = stripe_part_iou(gt.subset(np.isin(f, ["top", "bottom"])), 4)["part_miou"]
    assert partial < full - 0.2
    assert set(gt.by_alignment()) == {"aligned", "misaligned"}


def test_garment_pool_shares_garments_between_identities(tmp_path, world):
    plain = generate_occluded_duke(str(tmp_path), **dict(WORLD, misaligned_percent=0,
                                                         partial_percent=0, garment_pool=0))
    from rganet_plugin.synthetic.people import _identity, share_garments

    idents = {pid: _identity(np.random.default_rng([3, 1, pid])) for pid in range(1, 41)}
    before = {pid: dict(i) for pid, i in idents.items()}
    share_garments(idents, 3, seed=3)
    assert len({i["upper"] for i in idents.values()}) <= 3
    assert len({(i["lower"], i["lower_kind"]) for i in idents.values()}) <= 3
    assert all(idents[p]["skin"] == before[p]["skin"] and idents[p]["hair"] == before[p]["hair"]
               for p in idents)  # what is not a garment stays the identity's own
    assert plain != world


def test_bad_world_parameters_are_refused(tmp_path):
    for kw, msg in [(dict(misaligned_percent=101), "MISALIGNED_PERCENT must be in 0..100"),
                    (dict(partial_percent=-1), "PARTIAL_PERCENT must be in 0..100"),
                    (dict(garment_pool=-2), "GARMENT_POOL must be >= 0")]:
        with pytest.raises(ValueError, match=msg):
            synthetic_params(**kw)
    with pytest.raises(ValueError, match="MISALIGNED_PERCENT is for the occluded set"):
        generate_ltcc(str(tmp_path), num_train_ids=2, num_test_ids=2, images_per_id=6,
                      misaligned_percent=10, progress=False)
