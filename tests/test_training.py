"""End to end on the generated occluded dataset: fast-reid's trainer with RGANet's parts."""
import json
import os

import pytest
import torch

from rganet_plugin.data.build import EmptyQueryError
from rganet_plugin.engine import RGANetTrainer
from rganet_plugin.engine.checkpoint import CheckpointMismatchError, ModelCheckpointer
from rganet_plugin.tools.train import main as train_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "8", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "6",
         "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "INPUT.SIZE_TRAIN", "[128, 64]",
         "INPUT.SIZE_TEST", "[128, 64]", "SOLVER.IMS_PER_BATCH", "16",
         "DATALOADER.NUM_WORKERS", "0", "MODEL.DEVICE", "cpu", "TEST.IMS_PER_BATCH", "32"]


def small_cfg(tmp_path, region_mode="rgm", prompt="template", epochs=6, extra=()):
    from rganet_plugin.config import load_config

    opts = SMALL + ["DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(tmp_path / "out"),
                    "MODEL.RGANET.REGION_MODE", region_mode, "MODEL.RGANET.PROMPT.TYPE", prompt,
                    "SOLVER.MAX_EPOCH", str(epochs), "SOLVER.STEPS", "[100]",
                    "SOLVER.CHECKPOINT_PERIOD", str(epochs), "TEST.EVAL_PERIOD", str(epochs),
                    "SOLVER.BASE_LR", "0.001", "SOLVER.WARMUP_ITERS", "0", *extra]
    return load_config(os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml"), opts)


def losses_of(trainer, key):
    return [v for v, _ in trainer.storage.history(key).values()]


def test_full_rganet_trains_losses_fall_and_bank_moves(tmp_path):
    torch.manual_seed(0)
    # alpha starts at sigmoid(0) = 0.5 and only its differences between regions are trained
    # (w is a softmax), so in a few iterations no region reaches the paper's 0.85; 0.5 lets
    # about half the regions through and exercises eq. (5) with the filter.
    cfg = small_cfg(tmp_path, epochs=8, extra=["MODEL.RGANET.MEMORY.ALPHA_THRESH", "0.5"])
    trainer = RGANetTrainer(cfg)
    head = trainer.model.region_head
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    bank_after = head.memory.centers.clone()
    assert bool(head.memory.initialized)
    assert int(head.memory.num_updates) == trainer.max_iter
    for key in ("loss_cls", "loss_triplet", "loss_region_id", "loss_region_triplet"):
        vals = losses_of(trainer, key)
        assert len(vals) == trainer.max_iter, key
    total = losses_of(trainer, "total_loss")
    assert sum(total[-3:]) / 3 < sum(total[:3]) / 3  # the objective of eq. (8) falls
    drift = losses_of(trainer, "rganet/memory_drift")
    assert max(drift) > 0  # the bank moved
    for key in ("rganet/alpha/head", "rganet/beta/foot", "rganet/weights/upper_body"):
        assert len(losses_of(trainer, key)) == trainer.max_iter
    assert {"Rank-1", "mAP", "mINP"} <= set(results)
    # the filter's per-class counts: a scalar per step and a JSON line per epoch that add up
    per_step = {n: losses_of(trainer, f"rganet/memory_selected/{n}")
                for n in ("head", "upper_body", "lower_body", "foot")}
    assert all(len(v) == trainer.max_iter for v in per_step.values())
    with open(os.path.join(cfg.OUTPUT_DIR, "memory_bank.jsonl")) as f:
        lines = [json.loads(x) for x in f]
    assert [x["epoch"] for x in lines] == list(range(cfg.SOLVER.MAX_EPOCH))
    assert lines[0]["classes"] == ["head", "upper body", "lower body", "foot"]
    totals = [sum(x["selected"][j] for x in lines) for j in range(4)]
    assert totals == [round(sum(v)) for v in per_step.values()]
    assert 0 < sum(totals) < 4 * trainer.max_iter * cfg.SOLVER.IMS_PER_BATCH  # the filter filters
    # the bank is in the checkpoint, and --resume gives back the same bank
    state = torch.load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), weights_only=False)
    assert torch.equal(state["model"]["region_head.memory.centers"], bank_after)
    trainer2 = RGANetTrainer(cfg)
    trainer2.resume_or_load(resume=True)
    assert torch.equal(trainer2.model.region_head.memory.centers, bank_after)


def test_bank_initialised_from_fixed_stripes(tmp_path):
    from rganet_plugin.engine.hooks import MemoryBankHook

    cfg = small_cfg(tmp_path, epochs=1)
    trainer = RGANetTrainer(cfg)
    model = trainer.model
    hook = MemoryBankHook(trainer._memory_init_loader, "stripes")
    hook.initialize(model)
    # reference: the mean fixed-stripe feature of every training image, computed by hand
    model.eval()
    feats = []
    with torch.no_grad():
        for batch in trainer._memory_init_loader():
            fmap, _ = model.extract(model.preprocess_image(batch))
            h = fmap.shape[2]
            feats.append(torch.stack([fmap[:, :, j * h // 4:(j + 1) * h // 4].mean(dim=(2, 3))
                                      for j in range(4)], dim=1))
    ref = torch.cat(feats).mean(0)
    assert torch.allclose(model.region_head.memory.centers, ref, atol=1e-4)


def test_demo_config_two_stages_end_to_end_and_eval_only(tmp_path, capsys):
    """The demo config: stage 1 learns the prompt context on the generated pseudo masks, stage 2
    continues from it; then --eval-only on the final checkpoint."""
    out = tmp_path / "out"
    opts = SMALL + ["DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(out),
                    "SOLVER.MAX_EPOCH", "2", "SOLVER.STEPS", "[100]", "TEST.EVAL_PERIOD", "2",
                    "SOLVER.CHECKPOINT_PERIOD", "2", "PROMPT_STAGE.MAX_EPOCH", "2",
                    "PROMPT_STAGE.BASE_LR", "0.01"]
    cfg_file = os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml")
    assert train_main(["--config-file", cfg_file, *opts]) == 0
    stage1 = torch.load(out / "prompt_stage" / "model_final.pth", weights_only=False)["model"]
    final = torch.load(out / "model_final.pth", weights_only=False)["model"]
    # stage 1 (its own model, with the prompts and the text tower) learned the context; stage 2
    # kept the prototypes it cached and none of the text side
    assert "prompts.ctx" in stage1 and any(k.startswith("text_tower.") for k in stage1)
    assert not any(k.startswith(("prompts.", "text_tower.")) or ".prompts." in k for k in final)
    assert torch.equal(stage1["region_head.prototypes"], final["region_head.prototypes"])
    assert not torch.equal(stage1["region_head.memory.centers"], final["region_head.memory.centers"])
    log = (out / "log.txt").read_text()
    assert "Stage 1: learning the prompt context" in log
    assert log.count("Evaluation results for") == 1  # stage 2 only: stage 1 has no ReID eval
    assert "loss_seg" in (out / "prompt_stage" / "metrics.json").read_text()
    assert "Rank-1" in log
    # each stage logs its effective schedule before it trains (engine/schedule.py)
    assert log.count("Schedule: ") == 2
    stage1, stage2 = log.split("Schedule: ")[1:]
    assert "evaluations: none in this run" in stage1 and "evaluations after epoch 1" in stage2
    assert stage1.index("Starting training") > 0 and stage2.index("Starting training") > 0
    assert train_main(["--config-file", cfg_file, "--eval-only", *opts,
                       "MODEL.WEIGHTS", str(out / "model_final.pth")]) == 0


def test_prompt_stage_learns_the_context(tmp_path):
    cfg = small_cfg(tmp_path, prompt="learnable", epochs=3,
                    extra=["MODEL.META_ARCHITECTURE", "RGANetPromptLearner",
                           "SOLVER.BASE_LR", "0.01"])
    trainer = RGANetTrainer(cfg)
    model, head = trainer.model, trainer.model.region_head
    ctx0 = model.prompts.ctx.detach().clone()
    frozen0 = trainer.model.backbone.conv1.weight.detach().clone()
    trainer.resume_or_load(resume=False)
    trainer.train()
    seg = losses_of(trainer, "loss_seg")
    assert len(seg) == trainer.max_iter and seg[-1] < seg[0]
    assert not torch.equal(model.prompts.ctx, ctx0)
    assert torch.equal(trainer.model.backbone.conv1.weight, frozen0)  # everything else frozen
    # the cache matches the learned context (PromptCacheHook)
    assert torch.allclose(head.prototypes, model.live_prototypes().detach(), atol=1e-5)


def test_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    out = tmp_path / "base"
    opts = SMALL + ["DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(out),
                    "MODEL.RGANET.REGION_MODE", "none", "SOLVER.MAX_EPOCH", "2",
                    "TEST.EVAL_PERIOD", "2", "SOLVER.CHECKPOINT_PERIOD", "2"]
    cfg_file = os.path.join(ROOT, "configs", "Demo", "clip_baseline_demo.yml")
    assert train_main(["--config-file", cfg_file, *opts]) == 0
    bad = SMALL + ["DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(tmp_path / "ev"),
                   "MODEL.RGANET.REGION_MODE", "stripes", "MODEL.WEIGHTS",
                   str(out / "model_final.pth")]
    capsys.readouterr()
    # the entry point reports these user errors as one `error:` line, exit 2
    assert train_main(["--config-file", cfg_file, "--eval-only", *bad]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "missing keys: region_head" in err
    assert train_main(["--config-file", cfg_file, "--eval-only", *bad[:-1],
                       str(tmp_path / "x.pth")]) == 2
    assert "error: checkpoint not found" in capsys.readouterr().err
    model = RGANetTrainer.build_model(small_cfg(tmp_path, region_mode="stripes"))
    with pytest.raises(CheckpointMismatchError, match="missing keys: region_head"):
        ModelCheckpointer(model, strict=True).load(str(out / "model_final.pth"))


def test_unknown_config_key_exits_with_a_message(tmp_path, capsys):
    rc = train_main(["--config-file", os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml"),
                     "MODEL.RGANET.NO_SUCH_KEY", "1"])
    assert rc == 2 and "MODEL.RGANET.NO_SUCH_KEY" in capsys.readouterr().err


def test_empty_query_set_is_a_clear_error(tmp_path):
    from fastreid.data.datasets import DATASET_REGISTRY
    from fastreid.data.datasets.bases import ImageDataset

    from rganet_plugin.data.build import build_test_loader

    if "EmptyQueryFixture" not in DATASET_REGISTRY._obj_map:
        @DATASET_REGISTRY.register()
        class EmptyQueryFixture(ImageDataset):
            def __init__(self, root="", **kwargs):
                super().__init__([], [], [("x.jpg", 1, 0)], **kwargs)

    cfg = small_cfg(tmp_path)
    with pytest.raises(EmptyQueryError, match="query set is empty"):
        build_test_loader(cfg, "EmptyQueryFixture")


def test_resnet_backbone_with_rganet_heads(tmp_path):
    """Mixing: fast-reid's ResNet feature map projected into the text space."""
    from fastreid.modeling.meta_arch import build_model
    from fastreid.utils.events import EventStorage

    cfg = small_cfg(tmp_path, region_mode="rgm", extra=[
        "MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.BACKBONE.DEPTH", "18x",
        "MODEL.BACKBONE.FEAT_DIM", "512", "MODEL.BACKBONE.PRETRAIN", "False",
        "MODEL.RGANET.TEXT_ENCODER.NAME", "RGANet-Tiny-ViT", "MODEL.HEADS.NUM_CLASSES", "4"])
    model = build_model(cfg)
    assert isinstance(model.region_head.projection, torch.nn.Conv2d)
    assert model.region_head.projection.in_channels == 512 and model.region_head.dim == 64
    batch = {"images": torch.rand(8, 3, 128, 64) * 255,
             "targets": torch.arange(4).repeat_interleave(2), "camids": torch.zeros(8).long()}
    with EventStorage(0):
        losses = model(batch)
    sum(losses.values()).backward()
    assert model.region_head.projection.weight.grad.abs().sum() > 0
    model.eval()
    out = model({"images": torch.rand(3, 3, 128, 64) * 255})
    assert out.shape == (3, model.layout.total_dim) == (3, 512 + 4 * 65)


def test_camera_ids_reach_the_sie_embedding(tmp_path):
    from fastreid.modeling.meta_arch import build_model

    cfg = small_cfg(tmp_path, extra=["MODEL.BACKBONE.CLIP.SIE.ENABLED", "True",
                                     "MODEL.BACKBONE.CLIP.SIE.NUM_CAMERAS", "3",
                                     "MODEL.HEADS.NUM_CLASSES", "4"])
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.backbone.sie_embed.normal_()
        images = torch.rand(2, 3, 128, 64) * 255
        a = model({"images": images.clone(), "camids": torch.tensor([0, 0])})
        b = model({"images": images.clone(), "camids": torch.tensor([1, 1])})
        c = model({"images": images.clone(), "camids": torch.tensor([2, 2])})
        d = model({"images": images.clone(), "camids": torch.tensor([7, 9])})  # unseen cameras
    assert not torch.allclose(a, b)
    assert torch.allclose(c, d)  # clamped to the last known camera


def test_occluded_duke_rganet_config_runs_on_a_real_layout_dataset(tmp_path):
    """configs/OccludedDuke/rganet.yml as shipped (stage 1 then stage 2, OccludedDuke loader),
    on a generated dataset in the real Occluded_Duke layout, with a tiny random CLIP."""
    from rganet_plugin.synthetic.occluded_duke import generate_occluded_duke

    dataset_dir = generate_occluded_duke(str(tmp_path / "reid"), num_train_ids=6, num_test_ids=4,
                                         images_per_id=4, seed=1, progress=False)
    assert os.path.basename(dataset_dir) == "Occluded_Duke"
    out = tmp_path / "out"
    rc = train_main([
        "--config-file", os.path.join(ROOT, "configs", "OccludedDuke", "rganet.yml"),
        "DATASETS.ROOT", os.path.dirname(dataset_dir), "OUTPUT_DIR", str(out),
        "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.BACKBONE.CLIP.NAME", "RGANet-Tiny-ViT",
        "MODEL.DEVICE", "cpu", "INPUT.SIZE_TRAIN", "[128, 64]", "INPUT.SIZE_TEST", "[128, 64]",
        "SOLVER.IMS_PER_BATCH", "8", "SOLVER.MAX_EPOCH", "2", "SOLVER.STEPS", "[100]",
        "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "2", "DATALOADER.NUM_WORKERS", "0",
        "PROMPT_STAGE.MAX_EPOCH", "1", "TEST.IMS_PER_BATCH", "16"])
    assert rc == 0
    assert (out / "prompt_stage" / "model_final.pth").is_file()
    assert "OccludedDuke" in (out / "log.txt").read_text()
    assert (out / "model_final.pth").is_file()


def test_config_is_completed_from_the_checkpoint_shapes():
    """Evaluation and the tools build the model before loading: NUM_CLASSES and the SIE camera
    count, left at 0 in configs (training derives them), come from the checkpoint."""
    from rganet_plugin.config import get_rganet_cfg
    from rganet_plugin.engine.checkpoint import complete_cfg_from_checkpoint

    cfg = get_rganet_cfg()
    cfg.MODEL.BACKBONE.CLIP.SIE.ENABLED = True
    state = {"heads.weight": torch.zeros(702, 8), "backbone.sie_embed": torch.zeros(8, 4)}
    complete_cfg_from_checkpoint(cfg, state)
    assert cfg.MODEL.HEADS.NUM_CLASSES == 702 and cfg.MODEL.BACKBONE.CLIP.SIE.NUM_CAMERAS == 8
    cfg.MODEL.HEADS.NUM_CLASSES = 5  # an explicit value is kept
    complete_cfg_from_checkpoint(cfg, {"heads.weight": torch.zeros(9, 8)})
    assert cfg.MODEL.HEADS.NUM_CLASSES == 5


def test_precise_bn_on_another_dataset_leaves_the_training_set_alone(tmp_path):
    """fast-reid's PreciseBN hook asks build_train_loader again with DATASETS.NAMES =
    TEST.PRECISE_BN.DATASET: the memory bank still starts from the training set's images, and the
    PreciseBN loader reads its own set."""
    from fastreid.engine.hooks import PreciseBN

    from rganet_plugin.data import build as data_build

    cfg = small_cfg(tmp_path, region_mode="stripes", epochs=1, extra=[
        "TEST.PRECISE_BN.ENABLED", "True", "TEST.PRECISE_BN.DATASET", "SyntheticLTCC",
        "TEST.PRECISE_BN.NUM_ITER", "1", "DATASETS.SYNTHETIC.IMAGES_PER_ID", "6"])
    trainer = RGANetTrainer(cfg)
    train_paths = sorted(it[0] for it in data_build.train_items(cfg))
    assert "Occluded_Duke" in train_paths[0]
    assert sorted(it[0] for it in trainer.train_items) == train_paths
    bank_paths = sorted(it[0] for it in trainer._memory_init_loader().dataset.img_items)
    assert bank_paths == train_paths
    precise = [h for h in trainer._hooks if isinstance(h, PreciseBN)]
    assert len(precise) == 1
    pbn_paths = {it[0] for it in precise[0]._data_loader.dataset.img_items}
    assert pbn_paths and not pbn_paths & set(train_paths)


def test_stage1_run_alone_records_its_settings_and_stage2_reuses_it(tmp_path):
    """Stage 1 on its own (MODEL.META_ARCHITECTURE RGANetPromptLearner, into OUTPUT_DIR/prompt_stage,
    as configs/OccludedDuke/rganet_prompt_stage.yml does) writes its settings record, so the
    stage-2 run of the same settings reuses it instead of calling it stale and training it again."""
    from rganet_plugin.engine.stages import STAGE1_FINGERPRINT

    out = tmp_path / "out"
    cfg_file = os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml")
    common = SMALL + ["DATASETS.ROOT", str(tmp_path / "data"), "PROMPT_STAGE.MAX_EPOCH", "1",
                      "PROMPT_STAGE.BASE_LR", "0.01"]
    stage1 = common + ["MODEL.META_ARCHITECTURE", "RGANetPromptLearner",
                       "OUTPUT_DIR", str(out / "prompt_stage"), "SOLVER.MAX_EPOCH", "1",
                       "SOLVER.BASE_LR", "0.01", "SOLVER.STEPS", "[]", "SOLVER.WARMUP_ITERS", "0",
                       "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "1000"]
    assert train_main(["--config-file", cfg_file, *stage1]) == 0
    final1 = out / "prompt_stage" / "model_final.pth"
    assert (out / "prompt_stage" / STAGE1_FINGERPRINT).is_file()
    made = final1.stat().st_mtime_ns
    stage2 = common + ["OUTPUT_DIR", str(out), "SOLVER.MAX_EPOCH", "1", "SOLVER.STEPS", "[100]",
                       "SOLVER.WARMUP_ITERS", "0", "TEST.EVAL_PERIOD", "1",
                       "SOLVER.CHECKPOINT_PERIOD", "1"]
    assert train_main(["--config-file", cfg_file, *stage2]) == 0
    log = (out / "log.txt").read_text()
    assert "already done with these settings" in log
    assert not [p for p in os.listdir(out) if p.startswith("prompt_stage.stale-")]
    assert final1.stat().st_mtime_ns == made and (out / "model_final.pth").is_file()
