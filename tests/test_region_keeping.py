"""Stage 2's switches that keep stage 1's regions (issue 19): the backbone's learning rate
(``SOLVER.BACKBONE_LR_FACTOR``, ``SOLVER.LAYER_DECAY``) and the distillation of the stage-1 masks
(``MODEL.LOSSES.MASK_DISTILL.SCALE``), against hand-computed values."""
import copy
import json
import os
import re

import fastreid.solver.build as solver_build
import pytest
import torch
from fastreid.modeling import build_model
from fastreid.utils.events import EventStorage

from rganet_plugin.config.setup import ConfigError
from rganet_plugin.engine import RGANetTrainer
from rganet_plugin.engine.checkpoint import ModelCheckpointer
from rganet_plugin.engine.region_keeping import MaskTeacher, attach_mask_teacher, lr_factors
from rganet_plugin.tools.train import main as train_main
from rganet_tiny import ROOT, tiny_cfg

BLOCK = re.compile(r"resblocks\.(\d+)\.")


def test_backbone_rates_follow_the_layer_decay_by_hand():
    cfg = tiny_cfg("rgm", **{"SOLVER.BACKBONE_LR_FACTOR": 0.5, "SOLVER.LAYER_DECAY": 0.8})
    model = build_model(cfg)
    names = dict(model.named_parameters())
    depth = 1 + max(int(BLOCK.search(n).group(1)) for n in names if BLOCK.search(n))
    f = lr_factors(cfg, model)
    for n, p in names.items():
        if not n.startswith("backbone."):
            assert id(p) not in f, n  # heads, region head: fast-reid's rate
        elif BLOCK.search(n):
            i = int(BLOCK.search(n).group(1))
            assert f[id(p)] == pytest.approx(0.5 * 0.8 ** (depth - i)), n
        elif "conv1" in n or "positional_embedding" in n or "ln_pre" in n:
            assert f[id(p)] == pytest.approx(0.5 * 0.8 ** (depth + 1)), n
        elif "ln_post" in n:
            assert f[id(p)] == pytest.approx(0.5), n
    assert lr_factors(tiny_cfg("rgm"), model) == {}  # the paper's (one rate): nothing scaled


def test_the_optimizer_gets_the_scaled_rates_and_fastreid_is_left_as_it_was():
    cfg = tiny_cfg("rgm", **{"SOLVER.BACKBONE_LR_FACTOR": 0.25, "SOLVER.BASE_LR": 1e-3,
                             "SOLVER.BIAS_LR_FACTOR": 1.0})
    model = build_model(cfg)
    original = solver_build.get_default_optimizer_params
    optimizer, _ = RGANetTrainer.build_optimizer(cfg, model)
    assert solver_build.get_default_optimizer_params is original
    rates = {round(g["lr"], 12) for g in optimizer.param_groups}
    assert rates == {1e-3, 2.5e-4}  # heads and region head at BASE_LR, the backbone at 1/4
    backbone = sum(p.numel() for n, p in model.named_parameters() if n.startswith("backbone."))
    scaled = sum(p.numel() for g in optimizer.param_groups if g["lr"] == pytest.approx(2.5e-4)
                 for p in g["params"])
    assert scaled == backbone


@pytest.mark.parametrize("key,value", [("SOLVER.LAYER_DECAY", 1.5), ("SOLVER.LAYER_DECAY", 0.0),
                                       ("SOLVER.BACKBONE_LR_FACTOR", 0.0)])
def test_unstable_rates_are_refused_in_one_line(key, value):
    cfg = tiny_cfg("rgm", **{key: value})
    with pytest.raises(ConfigError, match=re.escape(key)):
        RGANetTrainer.build_optimizer(cfg, build_model(cfg))


def test_mask_distillation_is_the_cross_entropy_to_the_teachers_masks_by_hand():
    torch.manual_seed(0)
    model = build_model(tiny_cfg("rgm"))
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    with torch.no_grad():  # the student has moved away from stage 1
        for p in model.backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.mask_teacher = MaskTeacher(teacher, 2.0)
    model.train()
    images = torch.rand(2, 3, 256, 128) * 255
    batch = {"images": images, "targets": torch.tensor([0, 1])}
    with EventStorage(0):  # fast-reid's global losses log into it
        loss = model(batch)["loss_mask_distill"]
    x = model.preprocess_image(batch)
    s = model.region_head.masks(model.region_head.project(model.extract(x)[0]))
    t = teacher.region_head.masks(teacher.region_head.project(teacher.extract(x)[0]))
    by_hand = 2.0 * (-(t * torch.log(s)).sum(dim=1)).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert not any("teacher" in k for k in model.state_dict())  # never saved


@pytest.mark.parametrize("scale,says", [(1.0, "MODEL.WEIGHTS"), (-1.0, ">= 0")])
def test_distillation_without_stage1_weights_or_below_zero_is_refused(scale, says):
    cfg = tiny_cfg("rgm", **{"MODEL.LOSSES.MASK_DISTILL.SCALE": scale})
    with pytest.raises(ConfigError, match=re.escape(says)):
        attach_mask_teacher(cfg, build_model(cfg), ModelCheckpointer)


def test_two_stages_with_the_switches_distil_from_the_stage1_checkpoint(tmp_path):
    out = tmp_path / "out"
    opts = ["DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(out), "MODEL.DEVICE", "cpu",
            "MODEL.BACKBONE.CLIP.NAME", "RGANet-Tiny-ViT", "MODEL.BACKBONE.PRETRAIN", "False",
            "DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "4", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "3",
            "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "DATASETS.SYNTHETIC.HEIGHT", "64",
            "DATASETS.SYNTHETIC.WIDTH", "32", "INPUT.SIZE_TRAIN", "[64, 32]",
            "INPUT.SIZE_TEST", "[64, 32]", "SOLVER.IMS_PER_BATCH", "8",
            "DATALOADER.NUM_INSTANCE", "2", "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "2",
            "SOLVER.STEPS", "[1]", "PROMPT_STAGE.MAX_EPOCH", "1", "SOLVER.CHECKPOINT_PERIOD", "2",
            "TEST.EVAL_PERIOD", "2", "SOLVER.WARMUP_ITERS", "0", "TEST.IMS_PER_BATCH", "16",
            "MODEL.LOSSES.MASK_DISTILL.SCALE", "1.0", "SOLVER.LAYER_DECAY", "0.7"]
    assert train_main(["--config-file", os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml"),
                       *opts]) == 0
    rows = [json.loads(x) for x in open(out / "metrics.json")]
    distil = [r["loss_mask_distill"] for r in rows if "loss_mask_distill" in r]
    assert distil and all(0 < v < 10 for v in distil)
    final = torch.load(out / "model_final.pth", map_location="cpu", weights_only=False)["model"]
    assert not any("teacher" in k for k in final)
