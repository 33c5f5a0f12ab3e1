"""The user tools (``python -m rganet_plugin.tools ...``): predictor, region and ranking
pictures, extract / index / search, export, and reading a folder of crops.

Everything runs on one untrained tiny CLIP (random weights, 128x64 inputs) saved as a checkpoint,
and on a tiny generated Occluded-Duke: the tools' plumbing, not the model's accuracy, is tested.
"""
import json
import logging
import os
import re
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from rganet_tiny import tiny_cfg

from rganet_plugin.data.folder import (EmptyFolderError, ImageListDataset, collect_images,
                                       identity_of, list_images)
from rganet_plugin.tools.__main__ import main as tools_main

SIZE = [128, 64]


def _write_cfg(path, cfg):
    with open(path, "w") as f:
        f.write(cfg.dump())
    return str(path)


def _checkpoint(tmp, name, cfg):
    from fastreid.modeling.meta_arch import build_model
    from fastreid.utils.checkpoint import Checkpointer

    torch.manual_seed(0)
    model = build_model(cfg)
    Checkpointer(model, str(tmp)).save(name)
    return str(tmp / f"{name}.pth"), model


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An untrained RGANet (RGM with learnable prompts, so the checkpoint holds prompt context
    and token embeddings of the prompts) + config file + a tiny generated test set."""
    tmp = tmp_path_factory.mktemp("tools")
    over = {"INPUT.SIZE_TRAIN": SIZE, "INPUT.SIZE_TEST": SIZE,
            "DATASETS.ROOT": str(tmp / "data"), "DATASETS.TESTS": ("SyntheticOccludedDuke",),
            "DATASETS.NAMES": ("SyntheticOccludedDuke",),
            "DATASETS.SYNTHETIC.NUM_TRAIN_IDS": 2, "DATASETS.SYNTHETIC.NUM_TEST_IDS": 4,
            "DATASETS.SYNTHETIC.IMAGES_PER_ID": 4, "TEST.IMS_PER_BATCH": 16}
    cfg = tiny_cfg(prompt="learnable", num_classes=0, **over)
    cfg.MODEL.HEADS.NUM_CLASSES = 6  # the checkpoint says 6; the config file says 0 (as training)
    weights, _ = _checkpoint(tmp, "rgm", cfg)
    cfg.MODEL.HEADS.NUM_CLASSES = 0
    cfg_file = _write_cfg(tmp / "rgm.yml", cfg)

    from rganet_plugin.data.build import build_dataset

    data = build_dataset(cfg, "SyntheticOccludedDuke")
    return {"tmp": tmp, "cfg_file": cfg_file, "weights": weights, "cfg": cfg,
            "gallery_dir": os.path.dirname(data.gallery[0][0]),
            "query_dir": os.path.dirname(data.query[0][0]), "data": data}


def _model_args(env):
    return ["--config-file", env["cfg_file"], "--weights", env["weights"], "--device", "cpu"]


# ---------------------------------------------------------------------- predictor
def test_predictor_loads_checkpoint_and_extracts(env):
    from rganet_plugin.tools.predictor import build_predictor

    p = build_predictor(env["cfg_file"], env["weights"], device="auto")
    assert p.cfg.MODEL.HEADS.NUM_CLASSES == 6  # read from heads.weight
    assert not p.model.training
    assert p.layout.num_regions == 4 and p.class_names[0] == "head"
    paths = [g[0] for g in env["data"].gallery[:5]]
    f = p.extract(paths, batch_size=2, progress=False)
    assert f.global_feat.shape == (5, p.layout.global_dim)
    assert f.region_feats.shape == (5, 4, p.layout.region_dim)
    np.testing.assert_allclose(f.weights.sum(1), 1.0, atol=1e-5)
    # the same rows as the model on the test transform, whatever the batch size
    packed = p.packed(paths)
    np.testing.assert_allclose(f.global_feat, packed[:, :p.layout.global_dim].numpy(), atol=1e-4)


def test_predictor_refuses_another_models_checkpoint(env, tmp_path, capsys):
    cfg = env["cfg"].clone()
    cfg.MODEL.RGANET.REGION_MODE = "stripes"
    cfg.MODEL.HEADS.NUM_CLASSES = 6
    weights, _ = _checkpoint(tmp_path, "stripes", cfg)
    rc = tools_main(["extract", "--config-file", env["cfg_file"], "--weights", weights,
                     "--images", env["gallery_dir"], "--out", str(tmp_path / "x.npz"),
                     "--num-workers", "0", "--no-progress"])
    assert rc == 2
    assert "does not belong to this model" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


# ---------------------------------------------------------------------- regions (Fig. 4)
def _parse_tables(text):
    tables, cur = [], None
    for line in text.splitlines():
        if line.startswith("image: "):
            cur = {"image": line[7:], "rows": []}
            tables.append(cur)
        elif cur is not None and re.match(r"^  \S", line) and not line.strip().startswith(
                ("region", "sum w")):
            name, a, b, w = re.match(r"^  (.+?)\s+(\S+)\s+(\S+)\s+(\S+)$", line).groups()
            cur["rows"].append((name, float(a), float(b), float(w)))
    return tables


def test_regions_command_pictures_and_table(env, tmp_path, capsys):
    from rganet_plugin.tools.visualize_regions import font, panel_layout

    out = tmp_path / "regions"
    imgs = [q[0] for q in env["data"].query[:2]]
    # an override typed after --images goes to the config, not to the image list
    rc = tools_main(["regions", *_model_args(env), "--out", str(out), "--height", "128",
                     "--images", *imgs, "TEST.IMS_PER_BATCH", "8"])
    assert rc == 0
    tables = _parse_tables(capsys.readouterr().out)
    assert len(tables) == 2
    for t in tables:
        assert [r[0] for r in t["rows"]] == ["head", "upper body", "lower body", "foot"]
        assert abs(sum(r[3] for r in t["rows"]) - 1.0) < 1e-3
        assert all(0.0 < r[1] < 1.0 and 0.0 < r[2] < 1.0 for r in t["rows"])
    # image + 4 regions + background, 64x128 panels
    lay = panel_layout(6, (64, 128), font(11))
    for p in imgs:
        png = out / (os.path.splitext(os.path.basename(p))[0] + "_regions.png")
        with Image.open(png) as im:
            assert im.size == (lay["width"], lay["height"])
    with Image.open(out / "regions.png") as im:
        assert im.width == lay["width"] and im.height > 2 * lay["height"]
    rec = json.loads((out / "regions.json").read_text())
    assert len(rec["images"]) == 2 and len(rec["images"][0]["regions"]) == 4
    assert rec["images"][0]["regions"][0]["w"] == pytest.approx(tables[0]["rows"][0][3], abs=1e-4)


def test_regions_on_the_generated_dataset_split(env, tmp_path, capsys):
    out = tmp_path / "r"
    rc = tools_main(["regions", *_model_args(env), "--dataset-split", "query", "--num-images",
                     "3", "--no-background", "--out", str(out), "--height", "64", "--scale",
                     "panel", "--png-colors", "64"])
    assert rc == 0
    assert len(_parse_tables(capsys.readouterr().out)) == 3
    pngs = list(out.glob("*_regions.png"))
    assert len(pngs) == 3
    with Image.open(pngs[0]) as im:
        assert im.mode == "P" and len(im.getpalette()) // 3 <= 64


def test_heatmap_colours():
    from rganet_plugin.tools.visualize_regions import heatmap, overlay

    h = heatmap(np.array([0.0, 0.5, 1.0]))
    assert h.dtype == np.uint8 and h.shape == (3, 3)
    assert h[0, 2] > h[0, 0] and h[2, 0] > h[2, 2]  # blue at 0, red at 1
    img = np.full((4, 2, 3), 100, np.uint8)
    assert overlay(img, np.zeros((4, 2))).shape == (4, 2, 3)


# ---------------------------------------------------------------------- ranking (Fig. 5)
def test_ranking_command_dataset(env, tmp_path, capsys):
    out = tmp_path / "rank"
    rc = tools_main(["ranking", *_model_args(env), "--query-index", "0", "3", "--topk", "3",
                     "--out", str(out), "--height", "64", "--num-workers", "0", "--no-progress"])
    assert rc == 0
    rec = json.loads((out / "ranking.json").read_text())
    data = env["data"]
    assert [q["query"] for q in rec["queries"]] == [data.query[0][0], data.query[3][0]]
    g_by_path = {g[0]: g for g in data.gallery}
    for q, (qpath, qpid, qcam) in zip(rec["queries"], [data.query[0], data.query[3]]):
        assert len(q["results"]) == 3
        ds = [r["d"] for r in q["results"]]
        assert ds == sorted(ds)
        for r in q["results"]:
            _, pid, cam = g_by_path[r["path"]]
            assert r["match"] == (pid == qpid)
            assert not (pid == qpid and cam == qcam)  # junk (same id and camera) is left out
            assert len(r["d_regions"]) == 4
            # eq. (10) from the parts shown: (sum_j wq wg d_j + d_g) / (sum_j wq wg + 1)
            assert 0.0 <= r["d"] <= 2.0
    with Image.open(out / "ranking.png") as im:
        assert im.width > 4 * 32 and im.height > 2 * 64
    page = (out / "ranking.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 2 * (1 + 3)
    assert "<script" not in page


def test_ranking_combined_distance_is_eq10(env):
    from rganet_plugin.tools.predictor import build_predictor
    from rganet_plugin.tools.visualize_ranking import rank_queries

    p = build_predictor(env["cfg_file"], env["weights"], device="cpu")
    g = p.extract([x[0] for x in env["data"].gallery], progress=False)
    q = p.extract([env["data"].query[1][0]], progress=False)
    res = rank_queries(q, ["-1"], [-1], g, ["x"] * len(g), [0] * len(g), topk=4)[0]
    for r in res["results"]:
        gi = g.paths.index(r["path"])
        ww = q.weights[0] * g.weights[gi]
        expect = (np.dot(ww, r["d_regions"]) + r["d_g"]) / (ww.sum() + 1.0)
        assert r["d"] == pytest.approx(expect, abs=1e-4)


def test_ranking_command_folders_html_relative(env, tmp_path):
    out = tmp_path / "rank_f"
    rc = tools_main(["ranking", *_model_args(env), "--query", env["gallery_dir"], "--gallery",
                     env["gallery_dir"], "--num-queries", "1", "--topk", "2", "--out", str(out),
                     "--html-images", "relative", "--height", "64", "--num-workers", "0",
                     "--no-progress"])
    assert rc == 0
    q = json.loads((out / "ranking.json").read_text())["queries"][0]
    assert all(r["path"] != q["query"] for r in q["results"])  # never the query itself
    page = (out / "ranking.html").read_text()
    assert "base64" not in page and "../" in page


# ---------------------------------------------------------------------- extract / index / search
def test_extract_index_search_query_finds_itself(env, tmp_path, capsys):
    feats, index = tmp_path / "g.npz", tmp_path / "g.faiss"
    assert tools_main(["extract", *_model_args(env), "--images", env["gallery_dir"],
                       "--out", str(feats), "--num-workers", "0", "--batch-size", "5"]) == 0
    with np.load(feats, allow_pickle=False) as z:
        n = len(env["data"].gallery)
        assert z["global"].shape == (n, 64) and z["global"].dtype == np.float32
        assert z["regions"].shape == (n, 4, 64) and z["regions"].dtype == np.float32
        assert z["weights"].shape == (n, 4) and z["weights"].dtype == np.float32
        assert z["paths"].shape == (n,) and z["paths"].dtype.kind == "U"
        assert z["layout"].tolist() == [64, 4, 64]
        assert list(z["class_names"]) == ["head", "upper body", "lower body", "foot"]
        np.testing.assert_allclose(z["weights"].sum(1), 1.0, atol=1e-5)
        paths = list(z["paths"])
        assert paths == sorted(paths)
    assert tools_main(["index", "--features", str(feats), "--out", str(index)]) == 0
    assert index.exists() and (tmp_path / "g.faiss.json").exists()
    capsys.readouterr()
    query = paths[5]
    assert tools_main(["search", "--index", str(index), "--features", str(feats), "--query",
                       query, "--topk", "4", "--details", "--no-progress", "--num-workers",
                       "0", "--json", str(tmp_path / "s.json")]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if re.match(r"^\s+\d+\s", ln)]
    assert len(lines) == 4
    rank, dist, *_, path = lines[0].split()
    assert rank == "1" and path == query and float(dist) < 1e-4
    ranked = json.loads((tmp_path / "s.json").read_text())["queries"][0]["results"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4]
    assert all(a["distance"] <= b["distance"] for a, b in zip(ranked, ranked[1:]))


def test_search_refuses_index_of_another_gallery(env, tmp_path, capsys):
    from rganet_plugin.tools.extract import save_features
    from rganet_plugin.modeling.outputs import Features

    rng = np.random.default_rng(0)
    small = Features(rng.normal(size=(3, 64)).astype(np.float32),
                     rng.normal(size=(3, 4, 64)).astype(np.float32),
                     np.full((3, 4), 0.25, np.float32), ["a.jpg", "b.jpg", "c.jpg"])
    big = Features(*(np.concatenate([x, x]) for x in (small.global_feat, small.region_feats,
                                                      small.weights)), small.paths * 2)
    save_features(str(tmp_path / "small.npz"), small)
    save_features(str(tmp_path / "big.npz"), big)
    assert tools_main(["index", "--features", str(tmp_path / "small.npz"), "--out",
                       str(tmp_path / "s.faiss")]) == 0
    rc = tools_main(["search", "--index", str(tmp_path / "s.faiss"), "--features",
                     str(tmp_path / "big.npz"), "--query-features", str(tmp_path / "small.npz")])
    assert rc == 2 and "rebuild it" in capsys.readouterr().err


@pytest.mark.parametrize("regions", [4, 0])
def test_search_index_is_the_exact_eq10_topk(tmp_path, regions):
    """The two-pass faiss search over [A(g) | w] gives the dense eq. (10) top-k."""
    from rganet_plugin.evaluation import weighted_region_distance
    from rganet_plugin.modeling.outputs import Features
    from rganet_plugin.tools.search import build_gallery_index, search_index

    rng = np.random.default_rng(1)

    def feats(m):
        w = rng.dirichlet(np.full(regions, 0.3), size=m).astype(np.float32) if regions else \
            np.zeros((m, 0), np.float32)
        return Features(rng.normal(size=(m, 16)).astype(np.float32),
                        rng.normal(size=(m, regions, 8 if regions else 0)).astype(np.float32),
                        w, [f"{i}.jpg" for i in range(m)])

    g, q = feats(300), feats(25)
    index = build_gallery_index(g)
    res = search_index(index, g, q, k=6, shortlist=6)  # tiny shortlist: the threshold pass works
    dense = weighted_region_distance(q, g, device="cpu")
    expect = np.argsort(dense, axis=1, kind="stable")[:, :6]
    assert res.certified.all()
    np.testing.assert_allclose(res.distances, np.take_along_axis(dense, expect, 1), atol=1e-5)
    np.testing.assert_array_equal(res.indices, expect)


# ---------------------------------------------------------------------- folders
def _save(path, size, colour=(200, 30, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_folder_listing_skips_corrupt_files_with_a_warning(tmp_path, caplog):
    root = tmp_path / "crops"
    _save(str(root / "b" / "0002_c1s1_000451_03.jpg"), (64, 128))
    _save(str(root / "a.png"), (50, 170))  # another size
    _save(str(root / "b" / "deep" / "c.jpeg"), (33, 90))
    (root / "empty.jpg").write_bytes(b"")
    (root / "b" / "html.png").write_text("<html>404</html>")
    (root / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="rganet_plugin"):
        paths = list_images(str(root))
    assert [os.path.relpath(p, root) for p in paths] == [
        "a.png", os.path.join("b", "0002_c1s1_000451_03.jpg"), os.path.join("b", "deep", "c.jpeg")]
    msg = caplog.text
    assert "skipped 2 unreadable image file(s) of 5" in msg
    assert "empty.jpg" in msg and "html.png" in msg
    assert list_images(str(root), recursive=False, check=False) == [
        str(root / "a.png"), str(root / "empty.jpg")]
    # mixed sizes go through the test transform to one size
    from fastreid.data.transforms import build_transforms

    ds = ImageListDataset(paths, build_transforms(tiny_cfg(**{"INPUT.SIZE_TEST": SIZE}), False))
    assert {tuple(ds[i]["images"].shape) for i in range(len(ds))} == {(3, 128, 64)}
    assert identity_of(paths[1]) == ("2", 0)
    assert identity_of(paths[2]) == ("deep", -1)
    assert collect_images([paths[0], str(root / "b")])[0] == paths[0]


def test_folder_errors(tmp_path, env, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(EmptyFolderError, match="no images found in .*empty"):
        list_images(str(empty))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(EmptyFolderError, match="all 1 image file"):
        list_images(str(bad))
    with pytest.raises(FileNotFoundError):
        list_images(str(tmp_path / "missing"))
    rc = tools_main(["extract", *_model_args(env), "--images", str(empty), "--out",
                     str(tmp_path / "f.npz")])
    assert rc == 2
    assert "no images found" in capsys.readouterr().err


# ---------------------------------------------------------------------- export
def _text_side_names(names):
    from rganet_plugin.tools.export import text_tower_keys

    return text_tower_keys(names)


def _device_constants(ts):
    """Tensors the traced graph creates on a fixed device (they would break .to('cuda'))."""
    return re.findall(r'value="(?:cpu|cuda[:0-9]*)"', str(ts.inlined_graph))


def test_export_torchscript_matches_eager_and_has_no_text_tower(env, tmp_path, capsys):
    from rganet_plugin.tools.export import load_torchscript
    from rganet_plugin.tools.predictor import build_predictor

    out = tmp_path / "m.ts"
    assert tools_main(["export", *_model_args(env), "--out", str(out)]) == 0
    assert "max |exported - eager|" in capsys.readouterr().out
    ts, info = load_torchscript(str(out))
    p = build_predictor(env["cfg_file"], env["weights"], device="cpu")
    assert info["layout"]["total_dim"] == p.layout.total_dim
    assert info["class_names"] == p.class_names
    # the ReID model keeps only the prototypes of its prompts; neither it nor the export has any
    # of the text side (the prompt learner, stage 1, has: its checkpoint is the test's weights'
    # MODEL.WEIGHTS)
    assert not _text_side_names(p.model.state_dict())
    assert not _text_side_names([k for k, _ in ts.named_parameters()])
    assert not _text_side_names([k for k, _ in ts.named_buffers()])
    with zipfile.ZipFile(out) as z:
        blob = b"".join(z.read(n) for n in z.namelist() if not n.endswith(".storage")
                        and "/data/" not in n)
    assert b"token_embedding" not in blob and b"token_prefix" not in blob
    torch.manual_seed(1)
    for b in (1, 4):  # another batch size than the trace's
        x = torch.rand(b, 3, *SIZE) * 255
        with torch.no_grad():
            torch.testing.assert_close(ts(x), p.model({"images": x}), atol=1e-4, rtol=0)
    assert not _device_constants(ts)  # the file runs on a GPU after ts.to("cuda")
    # no larger than backbone + heads: below the eager model with its classifiers
    n_ts = sum(t.numel() for t in ts.state_dict().values())
    n_eager = sum(t.numel() for t in p.model.state_dict().values())
    assert n_ts < n_eager


@pytest.mark.parametrize("mode", ["stripes", "none"])
def test_export_other_region_modes(env, tmp_path, mode):
    from rganet_plugin.tools.export import InferenceRGANet, export_torchscript

    cfg = env["cfg"].clone()
    cfg.MODEL.RGANET.REGION_MODE = mode
    cfg.MODEL.HEADS.NUM_CLASSES = 6
    _, model = _checkpoint(tmp_path, mode, cfg)
    model.eval()
    ts = export_torchscript(InferenceRGANet(model, SIZE), str(tmp_path / "m.ts"), SIZE, {})
    x = torch.rand(3, 3, *SIZE) * 255
    with torch.no_grad():
        torch.testing.assert_close(ts(x), model({"images": x}), atol=1e-4, rtol=0)
    assert not _device_constants(ts)


def test_export_onnx_matches_eager(env, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from rganet_plugin.tools.predictor import build_predictor

    out = tmp_path / "m.onnx"
    assert tools_main(["export", *_model_args(env), "--out", str(out)]) == 0
    assert b"token_embedding" not in out.read_bytes()
    p = build_predictor(env["cfg_file"], env["weights"], device="cpu")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, *SIZE) * 255
    with torch.no_grad():
        ref = p.model({"images": x}).numpy()
    np.testing.assert_allclose(sess.run(None, {"images": x.numpy()})[0], ref, atol=1e-4)


# ---------------------------------------------------------------------- dispatcher
def test_dispatcher_help_and_unknown_command(capsys):
    assert tools_main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("regions", "ranking", "extract", "index", "search", "export", "train"):
        assert cmd in out
    assert tools_main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_checkpoint_error_is_clean(env, tmp_path, capsys):
    rc = tools_main(["export", "--config-file", env["cfg_file"], "--weights",
                     str(tmp_path / "nope.pth"), "--out", str(tmp_path / "m.ts")])
    assert rc == 2 and "checkpoint not found" in capsys.readouterr().err


def test_export_to_a_path_that_cannot_be_written(env, tmp_path, capsys):
    """Refused before anything is loaded or traced, naming the path and why."""
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    out = blocker / "m.ts"
    assert tools_main(["export", *_model_args(env), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {out}" in err and "cannot be made" in err
    assert tools_main(["export", *_model_args(env), "--out", str(tmp_path)]) == 2
    assert "it is a folder" in capsys.readouterr().err


# ---------------------------------------------------------------------- sharded galleries
def _random_features(rng, m, regions=4, rdim=8, gdim=16):
    return _features_of(rng.normal(size=(m, gdim)).astype(np.float32),
                        rng.normal(size=(m, regions, rdim)).astype(np.float32),
                        rng.dirichlet(np.full(regions, 0.3), size=m).astype(np.float32),
                        [f"/g/{i}.jpg" for i in range(m)])


def _features_of(*parts):
    from rganet_plugin.modeling.outputs import Features

    return Features(*parts)


def _write_shards(path, feats, shard=40, meta=None, dtype="float32"):
    from rganet_plugin.modeling.outputs import FeatureLayout
    from rganet_plugin.tools.shards import ShardWriter

    layout = FeatureLayout(feats.global_feat.shape[1], *feats.region_feats.shape[1:])
    w = ShardWriter(str(path), layout, meta=meta or {"weights": "/m/model.pth"}, dtype=dtype)
    for s in range(0, len(feats), shard):
        w.add(feats.rows(s, s + shard))
    return w.close()


def test_sharded_extract_index_search_query_finds_itself(env, tmp_path, capsys):
    shards, index = tmp_path / "gallery", tmp_path / "g.faiss"
    assert tools_main(["extract", *_model_args(env), "--images", env["gallery_dir"], "--out",
                       str(shards), "--shard-size", "5", "--num-workers", "0",
                       "--no-progress"]) == 0
    n = len(env["data"].gallery)
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["num_rows"] == n and len(manifest["shards"]) == -(-n // 5)
    assert manifest["layout"] == [64, 4, 64] and manifest["meta"]["weights"] == env["weights"]
    assert tools_main(["index", "--features", str(shards), "--out", str(index)]) == 0
    capsys.readouterr()
    from rganet_plugin.tools.shards import ShardedGallery

    query = ShardedGallery(str(shards)).paths[7]
    assert tools_main(["search", "--index", str(index), "--features", str(shards), "--query",
                       query, "--topk", "3", "--details", "--no-progress", "--num-workers",
                       "0"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if re.match(r"^\s+\d+\s", ln)]
    rank, dist, dg, *dj, path = lines[0].split()
    assert len(lines) == 3 and rank == "1" and path == query and float(dist) < 1e-4
    assert len(dj) == 4 and float(dg) < 1e-3


@pytest.mark.parametrize("spec", ["Flat", "IVF8,PQ4x4"])  # (PQ4x8 trains slowly on 500 rows)
def test_sharded_search_is_the_dense_eq10_topk_read_from_the_shards(tmp_path, spec):
    """Index built shard by shard; candidates re-scored exactly from the (memory-mapped) shards:
    Flat gives the dense top-k (certified); with a compressed index the re-scored distances are
    exact eq. (10) values and a long shortlist recovers the top-k. exact_topk streams the
    dense top-k shard by shard. The index is added in blocks smaller than a shard."""
    from rganet_plugin.evaluation import weighted_region_distance
    from rganet_plugin.evaluation.faiss_search import search_gallery
    from rganet_plugin.tools.shards import ShardedGallery, ShardRows, exact_topk, index_shards

    rng = np.random.default_rng(2)
    g, q = _random_features(rng, 500), _random_features(rng, 20)
    _write_shards(tmp_path / "s", g, shard=130)
    gallery = ShardedGallery(str(tmp_path / "s"))
    dense = weighted_region_distance(q, g, device="cpu")
    expect = np.argsort(dense, axis=1, kind="stable")[:, :10]
    ex_d, ex_i = exact_topk(q, gallery, 10)
    np.testing.assert_array_equal(ex_i, expect)
    gidx = index_shards(gallery, spec, use_gpu=False, train_size=500, add_block=50)  # 3 a shard
    assert isinstance(gidx.a_g, ShardRows) and gidx.index.ntotal == 500
    top = search_gallery(gidx, q, 10, shortlist=10 if spec == "Flat" else 400)
    np.testing.assert_allclose(top.distances, np.take_along_axis(dense, top.indices, 1),
                               atol=1e-5)
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(top.indices, expect)])
    assert recall == 1.0
    if spec == "Flat":
        assert top.certified.all()


def test_shard_rows_dot_reads_each_shard_once_and_equals_the_dense_products(tmp_path,
                                                                           monkeypatch):
    """ShardRows.dot (the re-scoring of a compressed index's shortlist): every (query, candidate)
    product equals A(q) . A(g) of the in-memory features, repeated candidates and candidates of
    every shard included, with each shard read once for all queries."""
    from rganet_plugin.evaluation.distance import weighted_embedding
    from rganet_plugin.tools.shards import ShardedGallery, ShardRows

    rng = np.random.default_rng(3)
    g, q = _random_features(rng, 300), _random_features(rng, 7)
    _write_shards(tmp_path / "s", g, shard=70)
    rows = ShardRows(ShardedGallery(str(tmp_path / "s")))
    reads = []
    orig = ShardedGallery.shard_features
    monkeypatch.setattr(ShardedGallery, "shard_features",
                        lambda self, i, r=None: reads.append(i) or orig(self, i, r))
    idx = rng.integers(0, 300, (7, 50))
    idx[:, :3] = idx[:, 3:6]  # repeated candidates
    a_q, _ = weighted_embedding(q)
    a_g, _ = weighted_embedding(g)
    s = rows.dot(a_q, idx)
    np.testing.assert_allclose(s.numpy(), np.einsum("qd,qkd->qk", a_q.numpy(), a_g.numpy()[idx]),
                               atol=1e-5)
    assert sorted(reads) == sorted(set(reads)) == list(range(5))


_BLOCKS_FREED = r"""
import resource, sys
import numpy as np
from rganet_plugin.modeling.outputs import FeatureLayout, Features
from rganet_plugin.tools.shards import ShardWriter, ShardedGallery, index_shards
rng = np.random.default_rng(0)
w = ShardWriter(sys.argv[1], FeatureLayout(512, 4, 512), meta={"weights": "m"})
for _ in range(3):  # 3 shards of 10,000 images x 2,564 values: 308 MB of float32 blocks
    w.add(Features(rng.standard_normal((10000, 512), dtype=np.float32),
                   rng.standard_normal((10000, 4, 512), dtype=np.float32),
                   np.full((10000, 4), 0.25, np.float32)))
w.close()
gallery = ShardedGallery(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
index_shards(gallery, "IVF4,SQ8", use_gpu=False, train_size=2000, add_block=1000)
print("GROWTH", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before)
"""


def test_building_an_index_from_shards_frees_each_block(tmp_path):
    """index_shards keeps only each block's confidences: the 30 blocks of 10 MB it adds are freed
    as it goes (a view of w kept the whole block alive: 13.3 GB at a million x 2,564 values)."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", _BLOCKS_FREED, str(tmp_path / "s")], cwd=root,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    growth = float(r.stdout.split("GROWTH")[1])
    assert growth < 150, f"the peak grew by {growth:.0f} MB while adding 308 MB of blocks"


@pytest.mark.parametrize("fault", ["missing", "model", "width", "empty"])
def test_sharded_gallery_faults_are_one_error_line(tmp_path, capsys, fault):
    rng = np.random.default_rng(3)
    g = _random_features(rng, 100)
    shards = tmp_path / "s"
    if fault == "empty":
        _write_shards(shards, g.rows(0, 0))
    else:
        _write_shards(shards, g)
    if fault == "missing":
        os.remove(shards / "shard-00001.npy")
    elif fault == "model":  # a shard written by another model's extraction
        _write_shards(tmp_path / "other", g, meta={"weights": "/m/other.pth"})
        os.replace(tmp_path / "other" / "shard-00001.json", shards / "shard-00001.json")
    elif fault == "width":  # a shard of a model with another layout
        _write_shards(tmp_path / "other", _random_features(rng, 100, rdim=6))
        os.replace(tmp_path / "other" / "shard-00001.npy", shards / "shard-00001.npy")
    rc = tools_main(["index", "--features", str(shards), "--out", str(tmp_path / "x.faiss")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ")
    expect = {"missing": "shard shard-00001.npy of the sharded gallery",
              "model": "extracted with another model",
              "width": "a shard of another model?", "empty": "is empty"}[fault]
    assert expect in err[0] and not (tmp_path / "x.faiss").exists()


def test_faiss_gpu_is_chosen_when_faiss_has_gpus(monkeypatch):
    """The same command uses faiss GPU where faiss sees GPUs (faiss.get_num_gpus() > 0 and
    CUDA): only the selection is tested here (this machine has faiss-cpu, no GPU)."""
    import faiss

    from rganet_plugin.evaluation import faiss_search

    vecs = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    assert faiss_search.build_index(vecs, "Flat")[1] == faiss_search.faiss_gpu_available()
    class MovedToGpu:  # stands for the GPU index faiss would return
        def __init__(self, index):
            self.cpu = index

        def __getattr__(self, name):
            return getattr(self.cpu, name)

    moved = []
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: "res", raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda res, dev, index: moved.append(
        (res, dev)) or MovedToGpu(index), raising=False)
    monkeypatch.setattr(faiss, "GpuParameterSpace", faiss.ParameterSpace, raising=False)
    assert faiss_search.faiss_gpu_available()
    index, on_gpu = faiss_search.build_index(vecs, "Flat")  # no use_gpu: chosen from faiss
    assert on_gpu and moved == [("res", 0)] and isinstance(index, MovedToGpu)
    assert index.ntotal == 50
    assert not faiss_search.build_index(vecs, "Flat", use_gpu=False)[1]  # index --cpu
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    assert not faiss_search.faiss_gpu_available()
