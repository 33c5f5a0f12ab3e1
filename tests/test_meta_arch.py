"""The RGANet meta-architecture as a fast-reid citizen: a fast-reid ``Baseline`` whose global losses
are fast-reid's, whose output layout belongs to the class (so a registered subclass keeps its
regions), and which refuses a backbone that cannot give region heads a map."""
import pytest
import torch
from fastreid.modeling.meta_arch import build_model
from fastreid.modeling.meta_arch.baseline import Baseline
from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY
from fastreid.utils.events import EventStorage

import rganet_plugin  # noqa: F401
from rganet_plugin.config.setup import ConfigError
from rganet_plugin.modeling.meta_arch import RGANet, layout_for


def _batch(n_ids=4, per_id=2):
    g = torch.Generator().manual_seed(1)
    return {"images": torch.rand(n_ids * per_id, 3, 256, 128, generator=g) * 255,
            "targets": torch.arange(n_ids).repeat_interleave(per_id),
            "camids": torch.zeros(n_ids * per_id, dtype=torch.long)}


@pytest.fixture
def my_rganet():
    """A user's subclass registered under its own name (fast-reid's way to extend a model)."""
    class MyRGANet(RGANet):
        pass

    META_ARCH_REGISTRY.register(MyRGANet)
    yield "MyRGANet"
    META_ARCH_REGISTRY._obj_map.pop("MyRGANet")


def test_a_registered_subclass_keeps_its_regions_in_the_evaluator(make_cfg, my_rganet, tmp_path):
    """The layout is the model class's, not a list of names: the evaluator of a registered
    ``class MyRGANet(RGANet)`` reads its packed regions and applies eq. (10)."""
    from rganet_plugin.engine import RGANetTrainer

    cfg = make_cfg("rgm", num_classes=4)
    cfg.defrost()
    cfg.MODEL.META_ARCHITECTURE = my_rganet
    cfg.DATASETS.ROOT = str(tmp_path)
    cfg.DATASETS.SYNTHETIC.NUM_TRAIN_IDS = 4
    cfg.DATASETS.SYNTHETIC.NUM_TEST_IDS = 4
    cfg.DATASETS.SYNTHETIC.IMAGES_PER_ID = 3
    model = build_model(cfg).eval()
    assert type(model).__name__ == my_rganet
    assert model.layout.num_regions == 4
    assert layout_for(cfg) == model.layout
    _, evaluator = RGANetTrainer.build_evaluator(cfg, "SyntheticOccludedDuke")
    assert evaluator.layout == model.layout and not evaluator.global_only
    with torch.no_grad():
        out = model(_batch())
    assert out.shape[1] == evaluator.layout.total_dim
    # a fast-reid meta-architecture has no output_layout: one global feature
    cfg.MODEL.META_ARCHITECTURE = "Baseline"
    assert layout_for(cfg).num_regions == 0


def test_rganet_is_fastreids_baseline_with_region_terms(make_cfg):
    cfg = make_cfg("stripes", num_classes=4)
    model = build_model(cfg)
    assert isinstance(model, Baseline)
    model.train()
    torch.manual_seed(0)
    with EventStorage(0):
        losses = model(_batch())
    assert set(losses) == {"loss_cls", "loss_triplet", "loss_region_id", "loss_region_triplet"}
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("name,key", [("CircleLoss", "loss_circle"), ("Cosface", "loss_cosface")])
def test_every_global_loss_of_fastreid_is_honoured(make_cfg, name, key):
    """MODEL.LOSSES.NAME is read by fast-reid's Baseline.losses: Circle / Cosface are not dropped,
    and the region terms are still added."""
    cfg = make_cfg("stripes", num_classes=4)
    cfg.defrost()
    cfg.MODEL.LOSSES.NAME = ("CrossEntropyLoss", "TripletLoss", name)
    model = build_model(cfg).train()
    with EventStorage(0):
        losses = model(_batch())
    assert key in losses and torch.isfinite(losses[key]) and losses[key].requires_grad
    assert "loss_region_id" in losses and "loss_region_triplet" in losses


def test_global_terms_equal_fastreids_baseline_losses(make_cfg):
    """The global terms are Baseline.losses itself on the global head's outputs (the CE + triplet
    values did not change when RGANet became a Baseline: checked against the old code by hand)."""
    cfg = make_cfg("none", num_classes=4)
    model = build_model(cfg).train()
    batch = _batch()
    torch.manual_seed(0)
    with EventStorage(0):
        ours = model(batch)
        images = model.preprocess_image(batch)
        _, glob = model.extract(images)
        outputs = model.heads(glob, batch["targets"])
        theirs = Baseline.losses(model, outputs, batch["targets"])
    assert set(ours) == set(theirs) == {"loss_cls", "loss_triplet"}
    for k in ours:
        assert torch.allclose(ours[k], theirs[k]), k


@pytest.mark.parametrize("mode", ["rgm", "stripes"])
def test_fastreids_vit_builder_with_region_heads_is_refused(make_cfg, mode):
    """fast-reid's build_vit_backbone returns the class token as a 1x1 map: region heads on it
    are refused, naming the token-map builder, before anything is built."""
    cfg = make_cfg(mode)
    cfg.defrost()
    cfg.MODEL.BACKBONE.NAME = "build_vit_backbone"
    with pytest.raises(ConfigError, match="build_vit_tokens_backbone"):
        build_model(cfg)


def test_a_registered_subclass_gets_the_automatic_stage1(make_cfg, my_rganet):
    """The stage plan asks the class too: a registered RGANet subclass with learnable prompts and
    no MODEL.WEIGHTS runs stage 1 first, as RGANet does."""
    from rganet_plugin.engine.stages import is_prompt_stage, plan_stages

    cfg = make_cfg("rgm", prompt="learnable")
    cfg.defrost()
    cfg.MODEL.META_ARCHITECTURE = my_rganet
    assert plan_stages(cfg) == ["prompt", "reid"] and not is_prompt_stage(cfg)
    cfg.MODEL.META_ARCHITECTURE = "Baseline"
    assert plan_stages(cfg) == ["reid"]
    cfg.MODEL.META_ARCHITECTURE = "RGANetPromptLearner"
    assert plan_stages(cfg) == ["prompt"] and is_prompt_stage(cfg)
