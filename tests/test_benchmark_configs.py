"""The per-benchmark configs load, name the right datasets, and those datasets are registered."""
import os

import pytest
from fastreid.data.datasets import DATASET_REGISTRY

from rganet_plugin.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# benchmark folder -> (training sets, test sets). The partial / occluded test-only sets train on
# Market-1501 (the paper's protocol for the partial sets, and the compared methods' for
# Occluded-REID); the others train and test on themselves.
BENCHMARKS = {
    "OccludedDuke": (("OccludedDuke",), ("OccludedDuke",)),
    "OccludedREID": (("Market1501",), ("OccludedREID",)),
    "PartialREID": (("Market1501",), ("PartialREID",)),
    "PartialiLIDS": (("Market1501",), ("PartialiLIDS",)),
    "Market1501": (("Market1501",), ("Market1501",)),
    "MSMT17": (("MSMT17",), ("MSMT17",)),
}
NEW = ("OccludedREID", "PartialREID", "PartialiLIDS", "Market1501", "MSMT17")

CASES = [(bench, variant) for bench in BENCHMARKS for variant in ("rganet", "clip_baseline")]
#: the output folders kept their names when baseline.yml became clip_baseline.yml
OUTPUT = {"rganet": "rganet", "clip_baseline": "baseline"}


def _path(bench, variant):
    return os.path.join(ROOT, "configs", bench, f"{variant}.yml")


@pytest.mark.parametrize("bench,variant", CASES)
def test_config_loads_and_names_registered_datasets(bench, variant):
    cfg = load_config(_path(bench, variant))
    train, test = BENCHMARKS[bench]
    assert tuple(cfg.DATASETS.NAMES) == train
    assert tuple(cfg.DATASETS.TESTS) == test
    registered = DATASET_REGISTRY._obj_map
    for name in tuple(cfg.DATASETS.NAMES) + tuple(cfg.DATASETS.TESTS):
        assert name in registered, f"{bench}/{variant}.yml names unregistered dataset {name!r}"
    assert cfg.OUTPUT_DIR == f"logs/{bench}/{OUTPUT[variant]}"


@pytest.mark.parametrize("bench", NEW)
def test_rganet_and_baseline_differ_only_by_the_region_branch(bench):
    rga = load_config(_path(bench, "rganet"))
    base = load_config(_path(bench, "clip_baseline"))
    assert rga.MODEL.META_ARCHITECTURE == base.MODEL.META_ARCHITECTURE == "RGANet"
    assert rga.MODEL.RGANET.REGION_MODE == "rgm"
    assert rga.MODEL.RGANET.RAM.DAI and rga.MODEL.RGANET.RAM.IAI
    assert base.MODEL.RGANET.REGION_MODE == "none"
    # the paper's recipe, inherited from Base-RGANet.yml
    for cfg in (rga, base):
        assert cfg.MODEL.BACKBONE.NAME == "build_clip_vit_backbone"
        assert cfg.MODEL.BACKBONE.CLIP.NAME == "ViT-B-16"
        assert tuple(cfg.INPUT.SIZE_TRAIN) == (256, 128)
        assert cfg.SOLVER.OPT == "Adam" and cfg.SOLVER.BASE_LR == pytest.approx(5e-5)
        assert cfg.SOLVER.IMS_PER_BATCH == 64 and cfg.DATALOADER.NUM_INSTANCE == 4
        assert cfg.SOLVER.MAX_EPOCH == 120 and list(cfg.SOLVER.STEPS) == [40, 70]


@pytest.mark.parametrize("bench", ("OccludedREID", "PartialREID", "PartialiLIDS"))
@pytest.mark.parametrize("variant", ("rganet", "clip_baseline"))
def test_test_only_configs_train_exactly_like_market1501(bench, variant):
    """Their comments say a model trained with configs/Market1501/<variant>.yml can be evaluated
    on them with --eval-only: everything but the test set and the output folder must match."""
    cfg = load_config(_path(bench, variant))
    market = load_config(_path("Market1501", variant))
    for c in (cfg, market):
        c.DATASETS.TESTS = ()
        c.OUTPUT_DIR = ""
    assert cfg.dump() == market.dump()


def test_each_dataset_folder_names_its_datasets_once():
    """The method files of a dataset folder inherit its datasets (Base-<Dataset>.yml, or the file
    the others build on; the test-only sets inherit Market-1501's files and change only the
    test set). Recipes on a base of their own are the exception: fast-reid's (like upstream's
    per-dataset files, on ../FastReID/Base-*.yml) and FIRe²'s (a ResNet recipe, on
    ../Base-FIRe2.yml) name their datasets themselves."""
    import glob

    folders = sorted({os.path.dirname(p) for p in
                      glob.glob(os.path.join(ROOT, "configs", "*", "*.yml"))})
    checked = 0
    for folder in folders:
        if os.path.basename(folder) in ("Demo", "FastReID"):
            continue
        writers = []
        for path in sorted(glob.glob(os.path.join(folder, "*.yml"))):
            text = open(path).read()
            if "_BASE_: ../FastReID/" in text or "_BASE_: ../Base-FIRe2.yml" in text:
                continue
            if "NAMES:" in text:
                writers.append(os.path.basename(path))
            checked += 1
        assert len(writers) <= 1, f"{folder}: {writers} all name the training set"
    assert checked > 20
    for bench in ("OccludedREID", "PartialREID", "PartialiLIDS"):
        for variant in ("rganet", "clip_baseline"):
            text = open(_path(bench, variant)).read()
            assert f"_BASE_: ../Market1501/{variant}.yml" in text
