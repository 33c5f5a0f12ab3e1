"""Loaders of the real dataset layouts: ids / images / cameras, layout errors, corrupt images.

Each test builds a tiny copy of a real layout (tiny images, real file naming) in tmp_path.
"""
import logging
import os

import numpy as np
import pytest
from PIL import Image

import rganet_plugin  # noqa: F401  (patches fast-reid, registers the datasets)
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.bases import ImageDataset
from rganet_plugin.data.datasets import (
    DatasetError,
    DatasetLayoutError,
    DatasetNotFoundError,
    OccludedDuke,
    OccludedREID,
    PartialiLIDS,
    PartialREID,
)
from rganet_plugin.data.image_io import CorruptImageError, check_image, filter_corrupt_images

NAMES = ["OccludedDuke", "OccludedREID", "PartialREID", "PartialiLIDS", "SyntheticOccludedDuke"]


# ---------------------------------------------------------------------------- fixtures
def _write_image(path, seed=0, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(16, 8, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def _touch(path, data=b""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


DUKE = {
    # split folder: [(pid, camera 1..8), ...]
    "bounding_box_train": [(5, 2), (5, 3), (5, 3), (12, 1), (12, 8), (40, 4), (40, 5), (40, 6)],
    "query": [(101, 1), (102, 2), (102, 7)],
    "bounding_box_test": [(101, 2), (101, 3), (102, 1), (102, 5), (103, 8), (0, 4)],
}


def make_duke(root):
    d = os.path.join(root, "Occluded_Duke")
    for split, items in DUKE.items():
        for i, (pid, cam) in enumerate(items):
            _write_image(os.path.join(d, split, f"{pid:04d}_c{cam}_f{46985 + 37 * i:07d}.jpg"), seed=i)
    return d


def make_occluded_reid(root, flat=False, ext="tif", folder="Occluded_REID"):
    d = os.path.join(root, folder)
    splits = ("query", "gallery") if flat else ("occluded_body_images", "whole_body_images")
    fmt = "TIFF" if ext == "tif" else "JPEG"
    for split in splits:
        for pid in (1, 2, 17):
            for n in range(1, 4):
                name = f"{pid:03d}_{n:02d}.{ext}"
                sub = (split, name) if flat else (split, f"{pid:03d}", name)
                _write_image(os.path.join(d, *sub), seed=pid * 10 + n, fmt=fmt)
    return d


def make_partial_reid(root):
    d = os.path.join(root, "Partial_REID")
    for split in ("partial_body_images", "whole_body_images"):
        for pid in (1, 2, 3, 60):
            for n in range(1, 6):
                _write_image(os.path.join(d, split, f"{pid:03d}_{n:02d}.jpg"), seed=pid + n)
    return d


def make_partial_ilids(root, folders=("Probe", "Gallery")):
    d = os.path.join(root, "Partial_iLIDS")
    for split in folders:
        for pid in (1, 2, 3, 119):
            _write_image(os.path.join(d, split, f"{pid:03d}.jpg"), seed=pid)
    return d


def counts(ds, split):
    data = getattr(ds, split)
    n_ids, n_cams = ds.parse_data(data)
    return n_ids, len(data), n_cams


# ---------------------------------------------------------------------------- registry
def test_all_names_registered_as_fastreid_image_datasets():
    for name in NAMES:
        cls = DATASET_REGISTRY.get(name)
        assert cls.__name__ == name
        assert issubclass(cls, ImageDataset)


# ---------------------------------------------------------------------------- real layouts
def test_occluded_duke_counts_and_fastreid_conventions(tmp_path):
    make_duke(tmp_path)
    ds = DATASET_REGISTRY.get("OccludedDuke")(root=str(tmp_path))
    assert counts(ds, "train") == (3, 8, 7)
    assert counts(ds, "query") == (2, 3, 3)
    assert counts(ds, "gallery") == (4, 6, 6)
    # train ids/cams are prefixed strings (fast-reid's DukeMTMC convention), test ones are ints
    path, pid, camid = ds.train[0]
    assert pid == "occludedduke_5" and camid == "occludedduke_1"
    assert path.endswith("0005_c2_f0046985.jpg")
    assert sorted({c for _, _, c in ds.gallery}) == [0, 1, 2, 3, 4, 7]  # camera c -> c - 1
    assert all(isinstance(p, int) and isinstance(c, int) for _, p, c in ds.query + ds.gallery)
    assert ds.train_dir.endswith("bounding_box_train") and ds.gallery_dir.endswith("bounding_box_test")
    # sorted, deterministic order
    assert [x[0] for x in ds.gallery] == sorted(x[0] for x in ds.gallery)


def test_occluded_duke_accepts_and_ignores_unknown_kwargs(tmp_path):
    make_duke(tmp_path)
    ds = OccludedDuke(root=tmp_path, transform=None, mode="query", verbose=False, some_future_key=3)
    assert len(ds) == 3  # mode="query" -> fast-reid's Dataset serves the query list


def test_badly_named_files_are_skipped_with_one_counting_warning(tmp_path, caplog):
    d = make_duke(tmp_path)
    _write_image(os.path.join(d, "query", "holiday.jpg"))
    _write_image(os.path.join(d, "query", "0101_c9_f0000001.jpg"))  # camera outside 1..8
    _touch(os.path.join(d, "query", "notes.txt"), b"x")
    _touch(os.path.join(d, "query", ".DS_Store"), b"x")  # hidden: ignored silently
    with caplog.at_level(logging.WARNING):
        ds = OccludedDuke(root=tmp_path)
    assert len(ds.query) == 3
    msgs = [r.getMessage() for r in caplog.records if "do not match" in r.getMessage()]
    assert len(msgs) == 1
    assert "OccludedDuke query: skipped 3 file(s)" in msgs[0]
    assert "holiday.jpg" in msgs[0] and ".DS_Store" not in msgs[0]


def test_occluded_reid_nested_tif_layout(tmp_path):
    make_occluded_reid(tmp_path)
    ds = DATASET_REGISTRY.get("OccludedREID")(root=tmp_path)
    assert ds.train == []
    assert counts(ds, "query") == (3, 9, 1)
    assert counts(ds, "gallery") == (3, 9, 1)
    assert {p for _, p, _ in ds.query} == {1, 2, 17}
    # query and gallery are different cameras: fast-reid's same-camera rule removes nothing
    assert {c for _, _, c in ds.query} == {0} and {c for _, _, c in ds.gallery} == {1}
    assert ds.query_dir.endswith("occluded_body_images")
    assert all(p.endswith(".tif") for p, _, _ in ds.query)


def test_occluded_reid_flat_query_gallery_variant(tmp_path):
    # fast-reid's projects/PartialReID layout: OccludedREID/{query,gallery}/<pid>_<nn>.jpg
    make_occluded_reid(tmp_path, flat=True, ext="jpg", folder="OccludedREID")
    ds = OccludedREID(root=tmp_path)
    assert counts(ds, "query") == (3, 9, 1) and counts(ds, "gallery") == (3, 9, 1)
    assert ds.query_dir.endswith(os.path.join("OccludedREID", "query"))


def test_partial_reid_layout(tmp_path):
    make_partial_reid(tmp_path)
    ds = DATASET_REGISTRY.get("PartialREID")(root=tmp_path)
    assert ds.train == []
    assert counts(ds, "query") == (4, 20, 1)
    assert counts(ds, "gallery") == (4, 20, 1)
    assert {p for _, p, _ in ds.gallery} == {1, 2, 3, 60}
    assert {c for _, _, c in ds.query} == {0} and {c for _, _, c in ds.gallery} == {1}


@pytest.mark.parametrize("folders", [("Probe", "Gallery"), ("query", "gallery")])
def test_partial_ilids_layouts(tmp_path, folders):
    make_partial_ilids(tmp_path, folders)
    ds = DATASET_REGISTRY.get("PartialiLIDS")(root=tmp_path)
    assert ds.train == []
    assert counts(ds, "query") == (4, 4, 1) and counts(ds, "gallery") == (4, 4, 1)
    assert sorted(p for _, p, _ in ds.query) == [1, 2, 3, 119]
    assert {c for _, _, c in ds.query} == {0} and {c for _, _, c in ds.gallery} == {1}


# ---------------------------------------------------------------------------- layout errors
@pytest.mark.parametrize("cls,folder,subfolder", [
    (OccludedDuke, "Occluded_Duke", "bounding_box_train/"),
    (OccludedREID, "Occluded_REID", "occluded_body_images/"),
    (PartialREID, "Partial_REID", "partial_body_images/"),
    (PartialiLIDS, "Partial_iLIDS", "Probe/"),
])
def test_missing_dataset_folder_is_a_clear_file_not_found(tmp_path, cls, folder, subfolder):
    with pytest.raises(FileNotFoundError) as info:
        cls(root=tmp_path)
    assert isinstance(info.value, DatasetNotFoundError) and isinstance(info.value, DatasetError)
    msg = str(info.value)
    assert msg.startswith(cls.__name__ + ":")
    assert str(tmp_path) in msg
    assert f"{folder}/" in msg and subfolder in msg  # the expected tree
    assert "└──" in msg


def test_missing_split_folder_names_the_split(tmp_path):
    d = make_duke(tmp_path)
    os.rename(os.path.join(d, "query"), os.path.join(d, "queries"))
    with pytest.raises(FileNotFoundError) as info:
        OccludedDuke(root=tmp_path)
    msg = str(info.value)
    assert "malformed dataset folder" in msg and "no query folder" in msg
    assert "queries" in msg  # what is there instead
    assert "bounding_box_test/" in msg


def test_split_that_is_a_file_is_a_layout_error(tmp_path):
    d = make_partial_reid(tmp_path)
    wb = os.path.join(d, "whole_body_images")
    for f in os.listdir(wb):
        os.remove(os.path.join(wb, f))
    os.rmdir(wb)
    _touch(wb, b"oops")
    with pytest.raises(ValueError) as info:
        PartialREID(root=tmp_path)
    assert isinstance(info.value, DatasetLayoutError)
    assert "is not a folder" in str(info.value) and "PartialREID" in str(info.value)


def test_split_without_valid_names_is_an_error_naming_the_folder(tmp_path):
    d = make_duke(tmp_path)
    q = os.path.join(d, "query")
    for f in os.listdir(q):
        os.rename(os.path.join(q, f), os.path.join(q, "img_" + f))
    with pytest.raises(ValueError) as info:
        OccludedDuke(root=tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, DatasetLayoutError)
    assert q in msg and "no usable image" in msg and "3 other file(s) skipped" in msg
    assert "0005_c2_f0046985.jpg" in msg


# ---------------------------------------------------------------------------- corrupt images
def _add_corrupt(d):
    rand = _touch(os.path.join(d, "bounding_box_test", "0101_c4_f0099999.jpg"),
                  np.random.default_rng(1).bytes(700))
    empty = _touch(os.path.join(d, "bounding_box_test", "0102_c6_f0099998.jpg"))
    return rand, empty


def test_corrupt_images_are_skipped_with_a_counting_warning(tmp_path, caplog):
    d = make_duke(tmp_path)
    rand, empty = _add_corrupt(d)
    with caplog.at_level(logging.WARNING):
        ds = OccludedDuke(root=tmp_path)
    assert len(ds.gallery) == 6
    assert rand not in {p for p, _, _ in ds.gallery}
    msgs = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(msgs) == 1
    assert "skipped 2 unreadable image file(s) of 8" in msgs[0]
    assert rand in msgs[0] and empty in msgs[0] and "0 bytes" in msgs[0]


def test_corrupt_images_error_policy_names_the_files(tmp_path):
    d = make_duke(tmp_path)
    rand, empty = _add_corrupt(d)
    with pytest.raises(CorruptImageError) as info:
        OccludedDuke(root=tmp_path, corrupt_images="error")
    assert isinstance(info.value, ValueError)
    assert rand in str(info.value) and empty in str(info.value)
    assert {p for p, _ in info.value.paths} == {rand, empty}


def test_corrupt_images_off_and_bad_policy(tmp_path):
    d = make_duke(tmp_path)
    _add_corrupt(d)
    assert len(OccludedDuke(root=tmp_path, corrupt_images="off").gallery) == 8
    with pytest.raises(ValueError, match="corrupt_images"):
        OccludedDuke(root=tmp_path, corrupt_images="sometimes")


def test_check_image_catches_truncated_jpeg_and_passes_good_formats(tmp_path):
    good = _write_image(str(tmp_path / "a.jpg"))
    arr = np.random.default_rng(0).integers(0, 255, size=(64, 32, 3), dtype=np.uint8)
    big = str(tmp_path / "big.jpg")
    Image.fromarray(arr).save(big)
    data = open(big, "rb").read()
    trunc = _touch(str(tmp_path / "trunc.jpg"), data[: len(data) // 2])
    tif = _write_image(str(tmp_path / "a.tif"), fmt="TIFF")
    png = _write_image(str(tmp_path / "a.png"))
    html = _touch(str(tmp_path / "page.jpg"), b"<html><body>404</body></html>")
    assert check_image(good) is None and check_image(tif) is None and check_image(png) is None
    assert check_image(trunc) is not None
    assert check_image(html) is not None
    kept = filter_corrupt_images([(good, 1, 0), (trunc, 2, 0)], "skip")
    assert kept == [(good, 1, 0)]


def test_corrupt_scan_reads_headers_only(tmp_path, monkeypatch):
    """The scan checks each file's header and end, never decodes pixels (that is why it is
    cheap: ~40 us an image; timing belongs in benchmarks, not in a test)."""
    from PIL import Image

    p = _write_image(str(tmp_path / "x.jpg"))
    items = [(p, i, 0) for i in range(300)]

    def no_decode(self, *a, **k):
        raise AssertionError("the scan decoded pixels")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    assert filter_corrupt_images(items, "skip") == items


# ---------------------------------------------------------------------------- fast-reid builders
@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_fastreid_test_loader_builder_passes_kwargs(tmp_path, monkeypatch):
    import fastreid.data.build as build
    from fastreid.config import get_cfg

    make_occluded_reid(tmp_path)
    monkeypatch.setattr(build, "_root", str(tmp_path))
    cfg = get_cfg()
    loader, num_query = build.build_reid_test_loader(cfg, dataset_name="OccludedREID",
                                                     corrupt_images="error")
    assert num_query == 9
    assert len(loader.dataset) == 18
