"""Configs: every shipped YAML loads; bad keys, values and devices get clear errors."""
import glob
import os

import pytest

from rganet_plugin.config import load_config, resolve_device
from rganet_plugin.config.setup import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yml"), recursive=True))


def _is_fire2(path):
    """A FIRe² config (projects/FIRe2): its base is Base-FIRe2.yml."""
    text = open(path).read()
    return "FIRE2" in text or "FIRe2" in os.path.basename(path) or "fire2" in text.lower()


def _is_agreid(path):
    """An AG-ReID config (projects/AGReID): agreid*.yml."""
    return os.path.basename(path).startswith("agreid")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_shipped_config_loads(path):
    """Every YAML loads with the plugin's keys (plus FIRe²'s or AG-ReID's for theirs) and names a
    registered meta-architecture: RGANet's, FIRe²'s, AG-ReID's or fast-reid's own (the baselines)."""
    from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY

    import sys
    if _is_fire2(path):
        sys.path.insert(0, os.path.join(ROOT, "projects", "FIRe2"))
        from fire2.config import fire2_keys

        import fire2.modeling  # noqa: F401  (registers the FIRe2 meta-architecture)
        cfg = load_config(path, project=[fire2_keys])
    elif _is_agreid(path):
        sys.path.insert(0, os.path.join(ROOT, "projects", "AGReID"))
        from agreid.config import agreid_keys

        import agreid.modeling  # noqa: F401  (registers the AGReID meta-architecture)
        cfg = load_config(path, project=[agreid_keys])
    else:
        cfg = load_config(path)
    assert cfg.MODEL.META_ARCHITECTURE in META_ARCH_REGISTRY._obj_map


def test_ablation_rows_are_configs():
    rows = {
        "clip_baseline": ("none", None, None), "stripes": ("stripes", False, False),
        "stripes_dai": ("stripes", True, False), "stripes_iai": ("stripes", False, True),
        "stripes_dai_iai": ("stripes", True, True), "rgm": ("rgm", False, False),
        "rgm_dai": ("rgm", True, False), "rgm_iai": ("rgm", False, True),
        "rganet": ("rgm", True, True),
    }
    for name, (mode, dai, iai) in rows.items():
        cfg = load_config(os.path.join(ROOT, "configs", "OccludedDuke", f"{name}.yml"))
        assert cfg.MODEL.RGANET.REGION_MODE == mode, name
        if dai is not None:
            assert (cfg.MODEL.RGANET.RAM.DAI, cfg.MODEL.RGANET.RAM.IAI) == (dai, iai), name
        assert cfg.DATASETS.NAMES == ("OccludedDuke",)
    templates = set()
    for p in glob.glob(os.path.join(ROOT, "configs", "OccludedDuke", "rgm_prompt_*.yml")):
        c = load_config(p)
        assert c.MODEL.RGANET.PROMPT.TYPE == "template" and not c.MODEL.RGANET.RAM.DAI
        templates.add(c.MODEL.RGANET.PROMPT.TEMPLATE)
    assert templates == {"a photo of a {}.", "a person photo of a {}.",
                         "a photo of a {} part of a person.", "a {} part of a person."}


def test_paper_hyperparameters_are_the_defaults():
    cfg = load_config(os.path.join(ROOT, "configs", "OccludedDuke", "rganet.yml"))
    r = cfg.MODEL.RGANET
    assert (len(r.CLASS_NAMES), r.GAMMA, r.PROMPT.N_CTX, r.MEMORY.MOMENTUM) == (4, 20.0, 8, 0.3)
    assert r.MEMORY.ALPHA_THRESH == 0.85
    s = cfg.SOLVER
    assert (s.OPT, s.BASE_LR, s.WEIGHT_DECAY, s.IMS_PER_BATCH, s.MAX_EPOCH, list(s.STEPS)) == (
        "Adam", 5e-5, 5e-4, 64, 120, [40, 70])
    assert cfg.DATALOADER.NUM_INSTANCE == 4 and list(cfg.INPUT.SIZE_TRAIN) == [256, 128]


def test_unknown_key_in_file_is_named(tmp_path):
    p = tmp_path / "bad.yml"
    p.write_text(f"_BASE_: {os.path.join(ROOT, 'configs', 'Base-RGANet.yml')}\n"
                 "MODEL:\n  RGANET:\n    GAMA: 3.0\n")
    with pytest.raises(ConfigError, match="MODEL.RGANET.GAMA"):
        load_config(str(p))


def test_unknown_key_on_command_line_is_named():
    with pytest.raises(ConfigError, match="MODEL.RGANET.NOPE"):
        load_config("", ["MODEL.RGANET.NOPE", "1"])


def test_missing_file_and_bad_values():
    with pytest.raises(ConfigError, match="not found"):
        load_config("configs/nope.yml")
    with pytest.raises(ConfigError, match="REGION_MODE"):
        load_config("", ["MODEL.RGANET.REGION_MODE", "blobs"])
    with pytest.raises(ConfigError, match="TEMPLATE"):
        load_config("", ["MODEL.RGANET.PROMPT.TEMPLATE", "no placeholder"])
    with pytest.raises(ConfigError, match="learnable"):
        load_config("", ["MODEL.META_ARCHITECTURE", "RGANetPromptLearner"])
    with pytest.raises(ConfigError, match="KEY VALUE"):
        load_config("", ["MODEL.RGANET.GAMMA"])


def test_cuda_without_gpu_falls_back_with_a_warning(caplog, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = load_config("", ["MODEL.DEVICE", "cuda"])
    with caplog.at_level("WARNING"):
        resolve_device(cfg)
    assert cfg.MODEL.DEVICE == "cpu"
    assert "no CUDA device" in caplog.text


def test_stage1_config_alone_has_the_fingerprint_of_the_automatic_stage1():
    """configs/OccludedDuke/rganet_prompt_stage.yml writes into rganet.yml's prompt_stage folder:
    it trains stage 1 exactly as rganet.yml's automatic stage 1 would, so their settings records
    match and the stage-2 run reuses the result."""
    from rganet_plugin.engine.stages import prompt_stage_cfg, stage_fingerprint

    folder = os.path.join(ROOT, "configs", "OccludedDuke")
    alone = load_config(os.path.join(folder, "rganet_prompt_stage.yml"))
    auto = prompt_stage_cfg(load_config(os.path.join(folder, "rganet.yml")))
    assert alone.OUTPUT_DIR == auto.OUTPUT_DIR
    assert stage_fingerprint(alone)["sha1"] == stage_fingerprint(auto)["sha1"]
    other = alone.clone()
    other.defrost()
    other.SOLVER.MAX_EPOCH = 31  # what changes the learned prompts changes the record
    assert stage_fingerprint(other)["sha1"] != stage_fingerprint(auto)["sha1"]
