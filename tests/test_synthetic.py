"""The generated occluded dataset: layout, determinism, occlusion ratios, masks, cache, loader."""
import hashlib
import json
import os
import re
import threading
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

import rganet_plugin  # noqa: F401  (patches fast-reid, registers the datasets)
from fastreid.config import CfgNode
from fastreid.data.datasets import DATASET_REGISTRY
from rganet_plugin.data.datasets import OccludedDuke
from rganet_plugin.synthetic import occluded_duke as gen_duke
from rganet_plugin.synthetic import (
    MANIFEST_NAME,
    OCCLUSION_RATIOS,
    generate_occluded_duke,
    synthetic_cache_dir,
    synthetic_params,
)

SMALL = dict(num_train_ids=12, num_test_ids=8, images_per_id=6, seed=3)
SMALL_CFG = {k.upper(): v for k, v in SMALL.items()}
DUKE_NAME = re.compile(r"^(\d{4})_c([1-8])_f(\d{7})\.jpg$")


def tree_hash(d):
    h = hashlib.sha256()
    for cur, dirs, files in os.walk(d):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(cur, f)
            h.update(os.path.relpath(p, d).encode())
            with open(p, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    d = generate_occluded_duke(str(out), progress=False, **SMALL)
    with open(os.path.join(d, MANIFEST_NAME)) as f:
        return d, json.load(f)


# ---------------------------------------------------------------------------- layout
def test_real_occluded_duke_layout_and_naming(small):
    d, manifest = small
    assert os.path.basename(d) == "Occluded_Duke"
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        names = os.listdir(os.path.join(d, split))
        assert names and all(DUKE_NAME.match(n) for n in names), split
    recs = manifest["images"]
    by = defaultdict(list)
    for r in recs:
        by[r["split"]].append(r)
    assert len(by["train"]) == SMALL["num_train_ids"] * SMALL["images_per_id"]
    assert len(by["gallery"]) == SMALL["num_test_ids"] * SMALL["images_per_id"]
    train_ids, test_ids = {r["pid"] for r in by["train"]}, {r["pid"] for r in by["gallery"]}
    assert len(train_ids) == SMALL["num_train_ids"] and len(test_ids) == SMALL["num_test_ids"]
    assert not train_ids & test_ids
    assert {r["pid"] for r in by["query"]} == test_ids
    # one or two queries per test id, each in a camera other than at least one gallery image's
    per_id = Counter(r["pid"] for r in by["query"])
    assert set(per_id.values()) <= {1, 2}
    gal_cams = defaultdict(set)
    for r in by["gallery"]:
        gal_cams[r["pid"]].add(r["camid"])
    for r in by["query"]:
        assert gal_cams[r["pid"]] - {r["camid"]}
    # the real loader reads it
    ds = OccludedDuke(root=os.path.dirname(d))
    assert ds.parse_data(ds.train)[0] == SMALL["num_train_ids"]
    assert len(ds.query) == len(by["query"]) and len(ds.gallery) == len(by["gallery"])
    with Image.open(os.path.join(d, by["train"][0]["file"])) as im:
        assert im.size == (128, 256) and im.mode == "RGB"


def test_occlusion_ratios(small):
    _, manifest = small
    recs = manifest["images"]
    for split, ratio in OCCLUSION_RATIOS.items():
        rs = [r for r in recs if r["split"] == split]
        n_occ = sum(r["occluded"] for r in rs)
        assert n_occ == round(ratio * len(rs)), split
        for r in rs:
            if r["occluded"]:
                assert 0.2 <= r["occluded_area"] <= 0.5 and r["occluder"]
            else:
                assert r["occluded_area"] == 0 and r["occluder"] is None
    assert all(r["occluded"] for r in recs if r["split"] == "query")


def test_masks_for_every_training_image(small):
    d, manifest = small
    train = [r for r in manifest["images"] if r["split"] == "train"]
    mask_dir = os.path.join(d, "masks", "bounding_box_train")
    stems = {os.path.splitext(f)[0] for f in os.listdir(os.path.join(d, "bounding_box_train"))}
    assert {os.path.splitext(f)[0] for f in os.listdir(mask_dir)} == stems
    fg = {True: [], False: []}
    for r in train:
        stem = os.path.splitext(os.path.basename(r["file"]))[0]
        with Image.open(os.path.join(mask_dir, stem + ".png")) as m:
            assert m.mode == "L" and m.size == (128, 256)
            a = np.asarray(m)
        labels = set(np.unique(a).tolist())
        assert labels <= {0, 1, 2, 3, 4}
        if not r["occluded"]:
            assert labels == {0, 1, 2, 3, 4}  # head, upper, lower body and feet all visible
        fg[r["occluded"]].append((a > 0).mean())
    # occluder pixels are background in the masks: occluded images show less of the person
    assert np.mean(fg[True]) < np.mean(fg[False])


def test_generation_is_deterministic(small, tmp_path):
    d, _ = small
    again = generate_occluded_duke(str(tmp_path / "again"), progress=False, **SMALL)
    assert tree_hash(again) == tree_hash(d)
    other = generate_occluded_duke(str(tmp_path / "other"), progress=False, **dict(SMALL, seed=4))
    assert tree_hash(other) != tree_hash(d)


# ---------------------------------------------------------------------------- cache + loader
def test_registered_loader_generates_into_the_cache(tmp_path):
    cls = DATASET_REGISTRY.get("SyntheticOccludedDuke")
    ds = cls(root=tmp_path, synthetic=SMALL_CFG)
    expected = os.path.join(synthetic_cache_dir(tmp_path, SMALL_CFG), "Occluded_Duke")
    assert expected.startswith(os.path.join(str(tmp_path), "synthetic") + os.sep)
    assert ds.dataset_dir == expected
    assert ds.masks_dir == os.path.join(expected, "masks")
    assert ds.parse_data(ds.train) == (SMALL["num_train_ids"], len({c for _, _, c in ds.train}))
    assert all(p.startswith("syntheticoccludedduke_") for _, p, _ in ds.train)
    assert ds.parse_data(ds.gallery)[0] == SMALL["num_test_ids"]
    # second use: no regeneration, the same files
    stamp = os.stat(ds.manifest_path).st_mtime_ns
    ds2 = cls(root=tmp_path, synthetic=CfgNode(SMALL_CFG))  # a yacs node works too
    assert ds2.train == ds.train and os.stat(ds.manifest_path).st_mtime_ns == stamp
    # other parameters: another cache entry
    assert synthetic_cache_dir(tmp_path, dict(SMALL_CFG, SEED=9)) != synthetic_cache_dir(tmp_path, SMALL_CFG)


def test_default_parameters(tmp_path):
    # how long generation takes is a benchmark's business, not a test's (a busy CI machine)
    ds = DATASET_REGISTRY.get("SyntheticOccludedDuke")(root=tmp_path)  # synthetic=None: defaults
    assert ds.synthetic_params == dict(num_train_ids=48, num_test_ids=32, images_per_id=8, seed=0,
                                       height=256, width=128, bags_percent=0, outfits_per_id=0,
                                       misaligned_percent=0, partial_percent=0, garment_pool=0,
                                       identity_cues=0)
    assert len(ds.train) == 48 * 8 and ds.parse_data(ds.train)[0] == 48
    assert len(ds.gallery) == 32 * 8 and 32 <= len(ds.query) <= 64


def test_comm_dataset_reads_an_item(tmp_path):
    from fastreid.config import get_cfg
    from fastreid.data.common import CommDataset
    from fastreid.data.transforms import build_transforms

    ds = DATASET_REGISTRY.get("SyntheticOccludedDuke")(root=tmp_path, synthetic=SMALL_CFG)
    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = [256, 128]
    train_set = CommDataset(ds.train, build_transforms(cfg, is_train=True), relabel=True)
    assert train_set.num_classes == SMALL["num_train_ids"]
    item = train_set[0]
    assert tuple(item["images"].shape) == (3, 256, 128)
    assert 0 <= item["targets"] < SMALL["num_train_ids"]
    assert item["img_paths"] == ds.train[0][0]


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="NUM_TRIAN_IDS"):
        synthetic_params({"NUM_TRIAN_IDS": 3})
    with pytest.raises(ValueError, match="IMAGES_PER_ID"):
        synthetic_params({"IMAGES_PER_ID": 1})
    assert synthetic_params({"num_train_ids": 5})["num_train_ids"] == 5  # any case


def test_existing_folder_with_other_params(tmp_path):
    generate_occluded_duke(str(tmp_path), progress=False, **dict(SMALL, num_train_ids=2, num_test_ids=2))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_occluded_duke(str(tmp_path), progress=False, **dict(SMALL, num_train_ids=3, num_test_ids=2))
    d = generate_occluded_duke(str(tmp_path), progress=False, overwrite=True,
                               **dict(SMALL, num_train_ids=3, num_test_ids=2))
    assert len(os.listdir(os.path.join(d, "bounding_box_train"))) == 3 * SMALL["images_per_id"]


def test_failed_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = gen_duke._render

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(gen_duke, "_render", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_occluded_duke(str(tmp_path), progress=False, **SMALL)
    assert [n for n in os.listdir(tmp_path) if not n.endswith(".lock")] == []


def test_concurrent_first_use_generates_once(tmp_path, monkeypatch):
    calls = Counter()
    real = gen_duke._write_dataset

    def counted(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(gen_duke, "_write_dataset", counted)
    params = dict(SMALL_CFG, NUM_TRAIN_IDS=3, NUM_TEST_IDS=2, IMAGES_PER_ID=2)
    results, errors = [], []

    def worker():
        try:
            results.append(gen_duke.ensure_synthetic_occluded_duke(str(tmp_path), params, progress=False))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and calls["n"] == 1
    cache = os.path.dirname(results[0])
    assert sorted(n for n in os.listdir(cache) if not n.endswith(".lock")) == ["Occluded_Duke"]


def test_test_split_masks_and_part_occlusion_record(small):
    """Ground truth for the mechanism checks: every query/gallery image has its part mask, and
    ``part_covered`` says which fraction of each part the occluder hides (0 without one)."""
    d, manifest = small
    seen_covered = False
    for r in manifest["images"]:
        assert len(r["part_covered"]) == 4 and all(0.0 <= c <= 1.0 for c in r["part_covered"])
        with Image.open(os.path.join(d, r["mask"])) as m:
            a = np.asarray(m)
        assert r["mask"].split("/")[1] == r["file"].split("/")[0]
        if not r["occluded"]:
            assert r["part_covered"] == [0.0] * 4
            assert set(np.unique(a).tolist()) == {0, 1, 2, 3, 4}
        elif max(r["part_covered"]) > 0.99:
            # a fully covered part is gone from the mask
            k = int(np.argmax(r["part_covered"])) + 1
            assert not (a == k).any()
            seen_covered = True
    assert seen_covered


def test_leftovers_of_a_killed_generation_are_removed(tmp_path):
    """A generation killed mid-way leaves its temporary folder; the next one removes it."""
    out = tmp_path / "gen"
    leftover = out / ".Occluded_Duke.tmp-dead1234"
    (leftover / "query").mkdir(parents=True)
    (leftover / "query" / "0001_c1_f0000001.jpg").write_bytes(b"half")
    d = generate_occluded_duke(str(out), progress=False, num_train_ids=2, num_test_ids=2,
                               images_per_id=2, seed=1)
    assert not leftover.exists()
    assert sorted(os.listdir(out)) == [".Occluded_Duke.lock", "Occluded_Duke"]
    assert os.path.isfile(os.path.join(d, MANIFEST_NAME))
