"""fast-reid's own recipes (BoT, AGW, SBS, MGN) as configs of this project, their ImageNet weights
from a local file, and the comparison tool (docs/baselines.md)."""
import glob
import json
import os

import pytest
import torch

from rganet_plugin.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")
RECIPES = ["bagtricks_R50", "bagtricks_R50-ibn", "AGW_R50", "AGW_R50-ibn", "sbs_R50",
           "sbs_R50-ibn", "mgn_R50-ibn"]
TINY_DATA = ["DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "8", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "4",
             "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "DATALOADER.NUM_WORKERS", "0",
             "MODEL.DEVICE", "cpu", "SOLVER.IMS_PER_BATCH", "8", "DATALOADER.NUM_INSTANCE", "4",
             "TEST.IMS_PER_BATCH", "32"]


# ---------------------------------------------------------------------------- the recipes
def test_recipe_files_are_upstreams_values():
    """Spot checks of each re-expressed base against fast-reid's configs/ (commit c9bc3ce)."""
    bot = load_config(os.path.join(CONFIGS, "FastReID", "Base-bagtricks.yml"))
    assert bot.MODEL.META_ARCHITECTURE == "Baseline" and bot.SOLVER.STEPS == [40, 90]
    assert bot.SOLVER.WARMUP_ITERS == 2000 and bot.MODEL.LOSSES.TRI.MARGIN == 0.3
    assert bot.SOLVER.AMP.ENABLED and bot.MODEL.BACKBONE.PRETRAIN
    agw = load_config(os.path.join(CONFIGS, "FastReID", "Base-AGW.yml"))
    assert agw.MODEL.BACKBONE.WITH_NL and agw.MODEL.HEADS.POOL_LAYER == "GeneralizedMeanPooling"
    assert agw.MODEL.LOSSES.TRI.MARGIN == 0.0 and not agw.MODEL.LOSSES.TRI.HARD_MINING
    sbs = load_config(os.path.join(CONFIGS, "FastReID", "Base-SBS.yml"))
    assert sbs.MODEL.HEADS.CLS_LAYER == "CircleSoftmax" and sbs.MODEL.HEADS.MARGIN == 0.35
    assert sbs.INPUT.SIZE_TRAIN == [384, 128] and sbs.INPUT.AUTOAUG.ENABLED
    assert sbs.SOLVER.SCHED == "CosineAnnealingLR" and sbs.SOLVER.FREEZE_ITERS == 1000
    assert sbs.MODEL.FREEZE_LAYERS == ["backbone"] and sbs.DATALOADER.NUM_INSTANCE == 16
    mgn = load_config(os.path.join(CONFIGS, "FastReID", "Base-MGN.yml"))
    assert mgn.MODEL.META_ARCHITECTURE == "MGN" and mgn.MODEL.HEADS.EMBEDDING_DIM == 256
    assert not mgn.MODEL.BACKBONE.WITH_NL and mgn.MODEL.FREEZE_LAYERS == ["backbone", "b1", "b2", "b3"]


@pytest.mark.parametrize("dataset,train,test", [
    ("OccludedDuke", "OccludedDuke", "OccludedDuke"), ("OccludedREID", "Market1501", "OccludedREID"),
    ("PartialREID", "Market1501", "PartialREID"), ("PartialiLIDS", "Market1501", "PartialiLIDS")])
def test_each_recipe_on_each_dataset(dataset, train, test):
    for recipe in RECIPES:
        cfg = load_config(os.path.join(CONFIGS, dataset, f"{recipe}.yml"))
        assert cfg.DATASETS.NAMES == (train,) and cfg.DATASETS.TESTS == (test,), recipe
        assert cfg.MODEL.BACKBONE.WITH_IBN == recipe.endswith("-ibn"), recipe
        assert cfg.MODEL.BACKBONE.PRETRAIN_PATH.startswith("weights/imagenet/resnet50"), recipe
        assert cfg.OUTPUT_DIR == f"logs/{dataset}/{recipe}"


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_builds_and_trains_two_iterations(recipe, tmp_path):
    """The demo variant of each recipe (fast-reid's Baseline / MGN, ResNet-50 or -ibn, its
    losses, heads, pooling, non-local, circle softmax, freeze hook) with RGANetTrainer, two
    iterations on tiny generated data: the losses are finite and the trained weights moved."""
    from fastreid.utils.events import EventStorage

    from rganet_plugin.engine import RGANetTrainer

    size = "[96, 32]" if recipe.startswith("mgn") else "[64, 32]"  # MGN cuts 3 stripes
    cfg = load_config(os.path.join(CONFIGS, "Demo", f"{recipe}_demo.yml"), TINY_DATA + [
        "DATASETS.ROOT", str(tmp_path.parent / "baselines_data"), "OUTPUT_DIR", str(tmp_path),
        "INPUT.SIZE_TRAIN", size, "INPUT.SIZE_TEST", size,
        "SOLVER.FREEZE_ITERS", "1"])
    trainer = RGANetTrainer(cfg)
    model = trainer.model
    assert type(model).__name__ == ("MGN" if recipe.startswith("mgn") else "Baseline")
    nl = [m for m in model.modules() if type(m).__name__ == "Non_local"]
    assert bool(nl) == recipe.startswith(("AGW", "sbs")), recipe
    assert any(type(m).__name__ == "IBN" for m in model.modules()) == recipe.endswith("-ibn")
    head = model.heads if hasattr(model, "heads") else model.b1_head
    assert type(head.cls_layer).__name__ == ("Linear" if recipe.startswith(("bag", "AGW"))
                                             else "CircleSoftmax")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.iter = trainer.start_iter = trainer.epoch = 0
    with EventStorage(0) as trainer.storage:  # fast-reid's TrainerBase.train, for two steps
        trainer.before_train()
        trainer.before_epoch()
        for _ in range(2):
            trainer.before_step()
            trainer.run_step()
            trainer.after_step()
            trainer.iter += 1
    losses = trainer.storage.latest()
    assert all(torch.isfinite(torch.tensor(v)) for k, (v, _) in losses.items()
               if k.startswith("loss"))
    after = model.state_dict()
    moved = [k for k in before if before[k].dtype.is_floating_point
             and not torch.equal(before[k], after[k])]
    assert any(k.startswith(("heads", "b1_head")) for k in moved)
    if recipe.startswith(("sbs", "mgn")):  # frozen for FREEZE_ITERS = 1, then trained
        assert any(k.startswith("backbone.") and "weight" in k for k in moved)


def test_autoaugment_runs_on_modern_pil():
    """SBS turns on fast-reid's AutoAugment (p = 0.1): every sub-policy works here."""
    import numpy as np
    from fastreid.data.transforms.autoaugment import AutoAugment
    from PIL import Image

    img = Image.fromarray((np.random.RandomState(0).rand(64, 32, 3) * 255).astype("uint8"))
    aa = AutoAugment()
    for policy in aa.policies if hasattr(aa, "policies") else []:
        out = policy(img)
        assert out.size == img.size
    assert aa(img).size == (32, 64)


# ---------------------------------------------------------------------------- ImageNet weights
def _resnet_cfg(depth="18x", ibn=False, path=""):
    from fastreid.config import get_cfg

    cfg = get_cfg()
    cfg.MODEL.BACKBONE.DEPTH = depth
    cfg.MODEL.BACKBONE.WITH_IBN = ibn
    cfg.MODEL.BACKBONE.PRETRAIN = bool(path)
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = path
    return cfg


def _reference_state(cfg):
    from fastreid.modeling.backbones import build_backbone

    torch.manual_seed(123)
    return {k: v for k, v in build_backbone(cfg).state_dict().items()}


@pytest.mark.parametrize("wrapping", ["plain", "state_dict", "module", "model+module", "safetensors"])
def test_imagenet_weights_accept_the_common_wrappings(tmp_path, wrapping):
    from fastreid.modeling.backbones import build_backbone

    ref = _reference_state(_resnet_cfg(ibn=True))
    state = {f"module.{k}" if "module" in wrapping else k: v for k, v in ref.items()}
    path = str(tmp_path / "resnet18_ibn_a.pth")
    if wrapping == "state_dict":
        torch.save({"state_dict": state, "epoch": 90, "arch": "resnet18_ibn_a"}, path)
    elif wrapping == "model+module":
        torch.save({"model": state, "optimizer": {"lr": 0.1}}, path)
    elif wrapping == "safetensors":
        from safetensors.torch import save_file

        path = str(tmp_path / "resnet18_ibn_a.safetensors")
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    torch.manual_seed(0)  # other random weights than the reference
    model = build_backbone(_resnet_cfg(ibn=True, path=path))
    got = model.state_dict()
    assert all(torch.equal(got[k], ref[k]) for k in ref)


def test_imagenet_weights_of_another_backbone_are_refused(tmp_path):
    from fastreid.modeling.backbones import build_backbone

    from rganet_plugin.modeling.backbones.imagenet_weights import ImageNetWeightsError

    cfg = _resnet_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_osnet_backbone"
    cfg.MODEL.BACKBONE.DEPTH = "x0_25"
    path = str(tmp_path / "osnet.pth")
    torch.save({"state_dict": _reference_state(cfg)}, path)
    with pytest.raises(ImageNetWeightsError, match=r"only \d+ of the \d+ tensors .* expects.*"
                                                   r"conv1\.weight.*resnet18-5c106cde\.pth"):
        build_backbone(_resnet_cfg(path=path))
    # the same file is what an OSNet needs: it loads (fast-reid's own OSNet loading code)
    cfg.MODEL.BACKBONE.PRETRAIN, cfg.MODEL.BACKBONE.PRETRAIN_PATH = True, path
    assert build_backbone(cfg) is not None


def test_imagenet_weights_missing_or_unreadable_file(tmp_path):
    from fastreid.modeling.backbones import build_backbone

    from rganet_plugin.modeling.backbones.imagenet_weights import ImageNetWeightsError

    missing = str(tmp_path / "weights" / "resnet50_ibn_a-d9d0bb7b.pth")
    with pytest.raises(ImageNetWeightsError, match=r"does not exist.*fetch "
                                                   r"resnet50_ibn_a-d9d0bb7b\.pth \(https://"):
        build_backbone(_resnet_cfg("50x", ibn=True, path=missing))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ImageNetWeightsError, match="cannot be read"):
        build_backbone(_resnet_cfg(path=str(junk)))
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "no_tensors.pth")
    with pytest.raises(ImageNetWeightsError, match="has no tensors"):
        build_backbone(_resnet_cfg(path=str(tmp_path / "no_tensors.pth")))


def test_demo_recipes_train_from_scratch_and_say_so():
    for path in glob.glob(os.path.join(CONFIGS, "Demo", "*_R50*_demo.yml")):
        cfg = load_config(path)
        assert not cfg.MODEL.BACKBONE.PRETRAIN, path
        assert cfg.DATASETS.NAMES == ("SyntheticOccludedDuke",), path
        assert "from scratch" in open(path).read(), path


# ---------------------------------------------------------------------------- the comparison tool
TINY_SWEEP = TINY_DATA + ["SOLVER.MAX_EPOCH", "1", "SOLVER.IMS_PER_BATCH", "16",
                          "INPUT.SIZE_TRAIN", "[64, 32]", "INPUT.SIZE_TEST", "[64, 32]",
                          "MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512",
                          "MODEL.BACKBONE.CLIP.NAME", "RGANet-Tiny-ViT",
                          "MODEL.BACKBONE.PRETRAIN", "False"]


def test_compare_sweep_table_chart_and_reuse(tmp_path, monkeypatch, capsys):
    """A toolbox recipe (BoT, on ResNet-18 here) trained in its own train_net.py process, read
    into the table and chart; the same command again reuses the finished run. (Two configs x two
    seeds, with the training replaced, are in the next test: each real run costs seconds.)"""
    from rganet_analysis import compare

    configs = [os.path.join(CONFIGS, "Demo", "bagtricks_R50_demo.yml")]
    out = tmp_path / "sweep"
    argv = ["--configs", *configs, "--seeds", "0", "--out", str(out), *TINY_SWEEP,
            "DATASETS.ROOT", str(tmp_path / "data")]
    assert compare.main(argv) == 0
    table = (out / "comparison.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()
            if line.startswith("| ") and "_demo" in line}
    assert set(rows) == {"bagtricks_R50_demo"}
    results = json.loads((out / "results.json").read_text())["results"]
    bot = results["bagtricks_R50_demo"]
    run = bot["runs"]["0"]
    assert 0 <= run["mAP"] <= 100 and run["minutes"] > 0 and run["images_per_s"] > 0
    assert f"{run['Rank-1']:.1f}" in rows["bagtricks_R50_demo"]
    assert 11.0 < bot["params_m"] < 11.5  # ResNet-18 + BNNeck + an 8-class classifier
    assert "| bagtricks_R50_demo | from scratch |" in table
    assert (out / "comparison.png").stat().st_size > 1000
    assert (out / "bagtricks_R50_demo" / "seed0" / "model_final.pth").is_file()

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(compare.subprocess, "Popen", no_training)
    assert compare.main(argv) == 0
    assert capsys.readouterr().out.count("done before") == 1
    rows_of = lambda text: [line for line in text.splitlines() if line.startswith("|")]  # noqa: E731
    assert rows_of((out / "comparison.md").read_text()) == rows_of(table)  # (the footer has the load)


def test_compare_resumes_half_done_and_reruns_changed_runs(tmp_path, monkeypatch):
    """Which runs go on from a checkpoint, which start again (settings changed), which are kept."""
    from rganet_analysis import compare

    calls = []

    def fake_train(cfg_file, name, seed, out, opts, resume=False, cwd=None, train_net=None):
        calls.append((name, seed, resume))
        return {"Rank-1": 50.0 + seed, "mAP": 40.0, "mINP": 20.0, "minutes": 1.0}

    monkeypatch.setattr(compare, "train_config", fake_train)
    cfg = os.path.join(CONFIGS, "Demo", "bagtricks_R50_demo.yml")
    other = os.path.join(CONFIGS, "Demo", "AGW_R50_demo.yml")
    out = str(tmp_path / "sweep")
    compare.sweep([cfg], [0, 1], out)
    assert calls == [("bagtricks_R50_demo", 0, False), ("bagtricks_R50_demo", 1, False)]
    # --report-only: nothing trains; the finished runs are read, the others listed as not run
    calls.clear()
    res = compare.sweep([cfg, other], [0, 1], out, train=False)
    assert calls == [] and sorted(res["bagtricks_R50_demo"]["runs"]) == [0, 1]
    assert res["AGW_R50_demo"]["runs"] == {} and res["AGW_R50_demo"]["missing"] == [0, 1]
    assert "| 0/2 (seed 0, 1 not run) |" in compare.markdown_table(res, [0, 1])
    # a second config joins the sweep: only its runs are trained
    calls.clear()
    res = compare.sweep([cfg, other], [0, 1], out)
    assert calls == [("AGW_R50_demo", 0, False), ("AGW_R50_demo", 1, False)]
    assert sorted(res) == ["AGW_R50_demo", "bagtricks_R50_demo"]
    # seed 1 stopped half-way: no result, a checkpoint -> --resume; seed 0 is kept
    run1 = os.path.join(out, "bagtricks_R50_demo", "seed1")
    os.remove(os.path.join(run1, compare.RESULT_FILE))
    open(os.path.join(run1, "last_checkpoint"), "w").write("model_0000005.pth")
    calls.clear()
    res = compare.sweep([cfg], [0, 1], out)
    assert calls == [("bagtricks_R50_demo", 1, True)]
    assert res["bagtricks_R50_demo"]["runs"][1]["Rank-1"] == 51.0
    # other settings: both runs again, from scratch, the old folders kept aside
    calls.clear()
    compare.sweep([cfg], [0, 1], out, ["SOLVER.BASE_LR", "0.001"])
    assert calls == [("bagtricks_R50_demo", 0, False), ("bagtricks_R50_demo", 1, False)]
    assert len(glob.glob(os.path.join(out, "bagtricks_R50_demo", "seed0.stale-*"))) == 1
    # --jobs 2: the same runs (two at a time), the same results in the same places
    calls.clear()
    res = compare.sweep([cfg, other], [0, 1], str(tmp_path / "parallel"), jobs=2)
    assert sorted(calls) == [("AGW_R50_demo", 0, False), ("AGW_R50_demo", 1, False),
                             ("bagtricks_R50_demo", 0, False), ("bagtricks_R50_demo", 1, False)]
    assert {n: sorted(r["runs"]) for n, r in res.items()} == {"AGW_R50_demo": [0, 1],
                                                              "bagtricks_R50_demo": [0, 1]}
    assert res["AGW_R50_demo"]["runs"][1]["Rank-1"] == 51.0


def test_compare_runs_a_sibling_project_and_reports_its_protocol(tmp_path, monkeypatch):
    """FIRe² rows: its entry point (a module, run with python -m, never a file executed) trains
    them, its config loader fingerprints them (RGANet's refuses FIRe²'s keys), the child process
    finds the same packages, and --protocol cloth_changing fills the table from that protocol."""
    from rganet_plugin.config.setup import ConfigError
    from rganet_analysis import compare

    monkeypatch.syspath_prepend(os.path.join(ROOT, "projects", "FIRe2"))
    fire2_net = "fire2.tools"
    arms = [os.path.join(CONFIGS, "Demo", f"{a}.yml") for a in ("fire2_baseline_demo", "fire2_demo")]
    with pytest.raises(ConfigError):
        compare.run_fingerprint(arms[1], 0, [])  # RGANet's loader does not know MODEL.FIRE2
    cmd = compare.train_command(arms[1], "out", 0, train_net=fire2_net)
    assert cmd[1:3] == ["-m", fire2_net] and cmd[3:5] == ["--config-file", arms[1]]
    assert compare.train_command(arms[1], "out", 0)[1:4] == ["-m", "rganet_plugin.tools", "train"]
    path = compare.entry_env(fire2_net)["PYTHONPATH"].split(os.pathsep)
    assert path[:2] == [ROOT, os.path.join(ROOT, "projects", "FIRe2")]
    calls = []

    def fake_train(cfg_file, name, seed, out, opts, resume=False, cwd=None, train_net=None):
        calls.append((name, seed, train_net))
        cc = 10.0 if "baseline" in name else 20.0
        return {"Rank-1": 90.0, "mAP": 80.0, "mINP": 70.0, "cloth_changing/Rank-1": cc + seed,
                "cloth_changing/mAP": cc / 2, "cloth_changing/mINP": cc / 4, "minutes": 1.0}

    monkeypatch.setattr(compare, "train_config", fake_train)
    out = str(tmp_path / "sweep")
    res = compare.sweep(arms, [0, 1], out, train_nets=[fire2_net])
    assert sorted(calls) == sorted((n, s, fire2_net) for s in (0, 1)
                                   for n in ("fire2_baseline_demo", "fire2_demo"))
    fp = json.load(open(os.path.join(out, "fire2_demo", "seed0", "fingerprint.json")))
    assert "FIRE2:" in fp["config"]
    table = compare.markdown_table(res, [0, 1], protocol="cloth_changing")
    assert "cloth_changing R1 (%)" in table
    assert "| fire2_demo | from scratch | 20.5 ± 0.7 | 10.0 ± 0.0 | 5.0 ± 0.0 |" in table
    assert "| fire2_baseline_demo | from scratch | 10.5 ± 0.7 | 5.0 ± 0.0 |" in table
    assert "| fire2_demo | from scratch | 90.0 ± 0.0 | 80.0 ± 0.0 |" in compare.markdown_table(res, [0, 1])
    # reused on the second call, read with the same loader
    calls.clear()
    compare.sweep(arms, [0, 1], out, train_nets=[fire2_net])
    assert calls == []
    # one entry point per config: RGANet's for a plain config next to FIRe²'s
    plain = os.path.join(CONFIGS, "Demo", "bagtricks_R50_demo.yml")
    compare.sweep([plain, arms[1]], [0], str(tmp_path / "mixed"), train_nets=[None, fire2_net])
    assert ("bagtricks_R50_demo", 0, None) in calls and ("fire2_demo", 0, fire2_net) in calls


def test_compare_refuses_bad_entry_points(tmp_path, monkeypatch):
    from rganet_analysis import compare

    cfg = os.path.join(CONFIGS, "Demo", "clip_baseline_demo.yml")
    with pytest.raises(ValueError, match="2 entry points for 1 configs"):
        compare.sweep([cfg], [0], str(tmp_path), train_nets=["a", "b"])
    with pytest.raises(ValueError, match="as a module.*not a file"):
        compare.sweep([cfg], [0], str(tmp_path),
                      train_nets=[os.path.join(ROOT, "projects", "FIRe2", "train_net.py")])
    with pytest.raises(ModuleNotFoundError, match="--entry: no module 'no_such_entry'"):
        compare.sweep([cfg], [0], str(tmp_path), train_nets=["no_such_entry"])
    (tmp_path / "bare_entry.py").write_text("def main():\n    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="exposes no load_config"):
        compare.sweep([cfg], [0], str(tmp_path / "out"), train_nets=["bare_entry"])


def test_compare_overrides_after_the_config_list_are_overrides(tmp_path, monkeypatch):
    """``--configs A.yml B.yml KEY VALUE`` (and after ``--entry``): argparse's nargs="+" would
    take the keys as configs (seen: "two configs share a row name: [... 'SOLVER', '1' ...]")."""
    from rganet_analysis import compare

    seen = {}

    def fake_sweep(configs, seeds, out, opts, names, keep_going, jobs, train, train_nets):
        seen.update(configs=configs, opts=opts, train_nets=train_nets)
        return {}

    monkeypatch.setattr(compare, "sweep", fake_sweep)
    out = str(tmp_path / "o")
    compare.main(["--out", out, "--no-plot", "--configs", "a.yml", "b.yml", "SOLVER.MAX_EPOCH", "1",
                  "DATASETS.NAMES", "('X',)"])
    assert seen == {"configs": ["a.yml", "b.yml"], "train_nets": None,
                    "opts": ["SOLVER.MAX_EPOCH", "1", "DATASETS.NAMES", "('X',)"]}
    compare.main(["--out", out, "--no-plot", "--configs", "a.yml", "--entry", "fire2.tools",
                  "MODEL.DEVICE", "cpu"])
    assert seen == {"configs": ["a.yml"], "train_nets": ["fire2.tools"],
                    "opts": ["MODEL.DEVICE", "cpu"]}
    with pytest.raises(SystemExit):  # no config left
        compare.main(["--out", out, "--configs", "SOLVER.MAX_EPOCH", "1"])


def test_compare_table_mean_and_sample_std():
    from rganet_analysis.compare import markdown_table, mean_std

    m, s = mean_std([50.0, 70.0, 60.0])
    assert m == 60.0 and abs(s - 10.0) < 1e-12  # sqrt((100 + 100 + 0) / 2)
    results = {"a": {"runs": {0: {"Rank-1": 50.0, "mAP": 30.0, "mINP": 10.0, "minutes": 2.0},
                              1: {"Rank-1": 70.0, "mAP": 34.0, "mINP": 12.0, "minutes": 4.0}},
                     "failed": {}, "params_m": 23.51, "init": "from scratch"},
               "b": {"runs": {}, "failed": {0: "b seed 0 failed"}, "params_m": None,
                     "init": "resnet50-19c8e357.pth"}}
    table = markdown_table(results, [0, 1])
    assert ("| a | from scratch | 60.0 ± 14.1 | 32.0 ± 2.8 | 11.0 ± 1.4 | 3.0 ± 1.4 | 23.51 | n/a "
            "| 2/2 |") in table
    assert ("| b | resnet50-19c8e357.pth | n/a | n/a | n/a | n/a | n/a | n/a | 0/2 (1 failed) |"
            in table)


def test_compare_bad_input(tmp_path):
    from rganet_analysis import compare

    with pytest.raises(FileNotFoundError, match="config file not found"):
        compare.sweep([str(tmp_path / "nope.yml")], [0], str(tmp_path))
    cfg = os.path.join(CONFIGS, "Demo", "clip_baseline_demo.yml")
    with pytest.raises(ValueError, match="share a row name"):
        compare.sweep([cfg, cfg], [0], str(tmp_path))
    with pytest.raises(ValueError, match="2 names for 1 configs"):
        compare.sweep([cfg], [0], str(tmp_path), names=["a", "b"])
    with pytest.raises(SystemExit):
        compare.main(["--configs", cfg, "--out", str(tmp_path), "SOLVER.BASE_LR"])


def test_region_head_configs_pair_with_a_plain_head_on_the_same_backbone():
    """Heads x backbones: each region-head config has a fast-reid plain-head neighbour with the
    same backbone, input, batch and schedule; the text tower is the shipped person CLIP."""
    pairs = {"rganet_heads_R50": "bagtricks_R50", "rganet_heads_R50-ibn": "bagtricks_R50-ibn",
             "rganet_heads_osnet": "bagtricks_osnet", "rganet_heads_vit": "bagtricks_vit"}
    # the ViT's region head reads the same VisionTransformer through the token-map wrapper
    same_builder = {"build_vit_tokens_backbone": "build_vit_backbone"}
    for heads, plain in pairs.items():
        a = load_config(os.path.join(CONFIGS, "Demo", f"{heads}_demo.yml"))
        b = load_config(os.path.join(CONFIGS, "Demo", f"{plain}_demo.yml"))
        assert a.MODEL.META_ARCHITECTURE == "RGANet" and b.MODEL.META_ARCHITECTURE == "Baseline"
        assert a.MODEL.RGANET.REGION_MODE == "rgm"
        assert a.MODEL.RGANET.TEXT_ENCODER.PRETRAIN_PATH == "weights/RGANet-Person-ViT.safetensors"
        name = a.MODEL.BACKBONE.NAME
        assert same_builder.get(name, name) == b.MODEL.BACKBONE.NAME, heads
        for key in ("DEPTH", "FEAT_DIM", "WITH_IBN", "PRETRAIN", "STRIDE_SIZE"):
            assert a.MODEL.BACKBONE[key] == b.MODEL.BACKBONE[key], (heads, key)
        for key in ("OPT", "BASE_LR", "SCHED", "WEIGHT_DECAY", "WARMUP_ITERS"):
            assert a.SOLVER[key] == b.SOLVER[key], (heads, key)
        assert a.MODEL.PIXEL_MEAN == b.MODEL.PIXEL_MEAN, heads
        assert a.INPUT.SIZE_TRAIN == b.INPUT.SIZE_TRAIN and a.SOLVER.MAX_EPOCH == b.SOLVER.MAX_EPOCH
        assert a.SOLVER.IMS_PER_BATCH == b.SOLVER.IMS_PER_BATCH
        if a.SOLVER.SCHED == "MultiStepLR":  # (a cosine schedule has no steps)
            assert a.SOLVER.STEPS == b.SOLVER.STEPS, heads


def test_vit_token_map_is_fastreids_vit_and_region_heads_train_on_it(tmp_path):
    """build_vit_tokens_backbone: the class token it gives the global head is exactly what
    fast-reid's own ViT returns (same weights, same input), the map is the patch grid; the RGANet
    region heads train on it (two steps, every loss finite, the region head and the ViT move)."""
    from fastreid.modeling.backbones import build_backbone
    from fastreid.utils.events import EventStorage

    from rganet_plugin.engine import RGANetTrainer

    size = ["INPUT.SIZE_TRAIN", "[64, 32]", "INPUT.SIZE_TEST", "[64, 32]"]
    plain = load_config(os.path.join(CONFIGS, "Demo", "bagtricks_vit_demo.yml"),
                        size + ["MODEL.BACKBONE.DEPTH", "small"])
    torch.manual_seed(0)
    vit = build_backbone(plain).eval()
    tokens_cfg = plain.clone()
    tokens_cfg.defrost()
    tokens_cfg.MODEL.BACKBONE.NAME = "build_vit_tokens_backbone"
    torch.manual_seed(0)
    wrapped = build_backbone(tokens_cfg).eval()
    assert wrapped.grid == (4, 2)
    assert sorted(wrapped.state_dict()) == sorted("vit." + k for k in vit.state_dict())
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        out = wrapped.forward_features(x)
        assert torch.equal(out["global"], vit(x).flatten(1))
        assert out["feature_map"].shape == (2, 768, 4, 2)
        assert torch.equal(wrapped(x), out["feature_map"])

    cfg = load_config(os.path.join(CONFIGS, "Demo", "rganet_heads_vit_demo.yml"), TINY_DATA + size + [
        "MODEL.BACKBONE.DEPTH", "small", "DATASETS.ROOT", str(tmp_path.parent / "baselines_data"),
        "OUTPUT_DIR", str(tmp_path)])
    trainer = RGANetTrainer(cfg)
    model = trainer.model
    assert type(model.backbone).__name__ == "ViTTokenMap"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.iter = trainer.start_iter = trainer.epoch = 0
    with EventStorage(0) as trainer.storage:
        trainer.before_train()
        trainer.before_epoch()
        for _ in range(2):
            trainer.before_step()
            trainer.run_step()
            trainer.after_step()
            trainer.iter += 1
    losses = {k: v for k, (v, _) in trainer.storage.latest().items() if k.startswith("loss")}
    assert {"loss_cls", "loss_triplet"} <= set(losses) and any("region" in k for k in losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    after = model.state_dict()
    moved = {k.split(".")[0] for k in before if before[k].dtype.is_floating_point
             and not torch.equal(before[k], after[k])}
    assert {"backbone", "region_head", "heads"} <= moved
