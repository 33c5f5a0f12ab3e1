"""The solver schedule (rganet_plugin/engine/schedule.py): SOLVER.STEPS are the epochs at which
the rate decays (fast-reid alone shifts them by the warm-up), a schedule that cannot run is
refused before training with one line, one that does less than written is warned about, and
every run logs its effective schedule."""
import math
import os
import re
import sys

import pytest
from fastreid.engine.train_loop import HookBase
from fastreid.solver import build_lr_scheduler as fastreid_build_lr_scheduler

from rganet_plugin.config import load_config
from rganet_plugin.config.setup import ConfigError
from rganet_plugin.engine.schedule import (ScheduleMixin, check_schedule, held_epochs,
                                           lr_per_epoch, schedule_summary)
from rganet_plugin.engine.stages import check_stage_schedules
from rganet_plugin.tools.train import main as train_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "projects", "FIRe2"))

from fire2.config import load_fire2_config  # noqa: E402
from fire2.engine import FIRe2Trainer  # noqa: E402

DEMO = os.path.join(ROOT, "configs", "Demo")
TINY = ["DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "8", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "4",
        "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "DATALOADER.NUM_WORKERS", "0",
        "MODEL.DEVICE", "cpu", "SOLVER.IMS_PER_BATCH", "8", "DATALOADER.NUM_INSTANCE", "4",
        "TEST.IMS_PER_BATCH", "32", "INPUT.SIZE_TRAIN", "[64, 32]", "INPUT.SIZE_TEST", "[64, 32]"]


def decay_epochs(lrs, warmup_epochs=0):
    """Epochs (after the warm-up) whose rate is lower than the epoch before."""
    return [e for e in range(max(warmup_epochs, 1), len(lrs)) if lrs[e] < lrs[e - 1] * (1 - 1e-9)]


def _cfg(opts=(), file=None):
    return load_fire2_config(file or os.path.join(DEMO, "fire2_demo.yml"), list(opts))


# ------------------------------------------------------------------ SOLVER.STEPS as written
def test_fastreid_alone_shifts_the_steps_by_the_warmup():
    """The measured fault: fast-reid steps its epoch scheduler only from the warm-up's last
    epoch on, so FIRe²'s PRCC schedule (10 warm-up epochs, step 20 of 30) decays at its last
    epoch, 29 (with 5,700 warm-up iterations it never decayed), and the demo's step 22 (warm-up
    20 iterations of 9 per epoch) lands at 24."""
    prcc = _cfg(file=os.path.join(ROOT, "configs", "PRCC", "fire2.yml"))
    lrs = lr_per_epoch(prcc, 17896 // 32, build=fastreid_build_lr_scheduler)
    assert decay_epochs(lrs, 10) == [29]
    old = _cfg(["SOLVER.WARMUP_ITERS", "5700"], file=os.path.join(ROOT, "configs", "PRCC", "fire2.yml"))
    lrs = lr_per_epoch(old, 17896 // 32, build=fastreid_build_lr_scheduler)
    assert decay_epochs(lrs, 11) == [] and lrs[-1] == prcc.SOLVER.BASE_LR
    demo = _cfg()
    assert decay_epochs(lr_per_epoch(demo, 9, build=fastreid_build_lr_scheduler), 3) == [24]


@pytest.mark.parametrize("file, ipe, steps", [
    ("PRCC/fire2.yml", 17896 // 32, [20]),  # 5590 warm-up iterations: epochs 0-9
    ("LTCC/fire2.yml", 9576 // 32, [20, 40, 60]),
    ("Demo/fire2_demo.yml", 9, [22]),
    ("Demo/rganet_demo.yml", 12, [40, 52]),
    ("Market1501/clip_baseline.yml", 12936 // 64, [40, 70]),
    ("OccludedDuke/bagtricks_R50.yml", 15618 // 64, [40, 90]),
])
def test_the_rate_decays_at_the_epochs_written(file, ipe, steps):
    cfg = _cfg(file=os.path.join(ROOT, "configs", file))
    assert list(cfg.SOLVER.STEPS) == steps
    lrs = lr_per_epoch(cfg, ipe)
    w = math.ceil(cfg.SOLVER.WARMUP_ITERS / ipe)
    assert decay_epochs(lrs, w) == steps
    base, g = cfg.SOLVER.BASE_LR, cfg.SOLVER.GAMMA
    for e in range(w, cfg.SOLVER.MAX_EPOCH):  # by hand: BASE_LR x GAMMA^(steps passed)
        assert lrs[e] == pytest.approx(base * g ** sum(m <= e for m in steps), rel=1e-6)


# The released FIRe² code (QizaoWang/FIRe-CCReID): WarmupMultiStepLR(milestones [20, 40, 60],
# warm-up 10 epochs) stepped once per epoch, so 0-based epoch e trains at
# lr x warm-up(e) x 0.1 ** bisect_right(milestones, e); --max_epoch 30 on PRCC (README), 80 else.
PUBLIC_FIRE2 = {  # config: (images per epoch // batch, milestones, max_epoch)
    "PRCC/fire2.yml": (17896 // 32, [20, 40, 60], 30),
    "LTCC/fire2.yml": (9576 // 32, [20, 40, 60], 80),
    "CelebReID/fire2.yml": (20208 // 32, [20, 40, 60], 80),
    "DeepChange/fire2.yml": (75083 // 64, [20, 40, 60], 80),
    "LaST/fire2.yml": (71248 // 64, [20, 40, 60], 80),
    "Market1501/fire2.yml": (12936 // 32, [20, 40, 60], 80),
    "MSMT17/fire2.yml": (32621 // 32, [20, 40, 60], 80),
}


@pytest.mark.parametrize("file", sorted(PUBLIC_FIRE2))
def test_fire2_configs_decay_at_the_public_codes_epochs(file):
    """Issue 22 item 1: per FIRe² dataset config, the epochs at which the rate actually decays
    (the trainer's schedule, per iteration) are the public code's, and after its 10 warm-up
    epochs every epoch's rate is its rate."""
    from bisect import bisect_right
    ipe, milestones, max_epoch = PUBLIC_FIRE2[file]
    cfg = _cfg(file=os.path.join(ROOT, "configs", file))
    assert cfg.SOLVER.MAX_EPOCH == max_epoch
    public = [cfg.SOLVER.BASE_LR * 0.1 ** bisect_right(milestones, e) for e in range(max_epoch)]
    lrs = lr_per_epoch(cfg, ipe)
    w = math.ceil(cfg.SOLVER.WARMUP_ITERS / ipe)
    assert w <= 10  # the warm-up is over by the public code's 10th epoch
    assert decay_epochs(lrs, w) == decay_epochs(public, 10) == [m for m in milestones if m < max_epoch]
    assert lrs[10:] == pytest.approx(public[10:], rel=1e-6)


@pytest.mark.parametrize("ipe, warmup, delay, steps", [
    (10, 0, 0, [4]), (10, 5, 0, [4]), (10, 10, 0, [4]), (10, 20, 0, [4, 6]), (10, 25, 0, [3, 5]),
    (7, 30, 0, [5, 5, 8]), (10, 0, 3, [4, 7]), (10, 25, 4, [5])])
def test_steps_hold_for_any_warmup_and_delay(ipe, warmup, delay, steps):
    cfg = _cfg(["SOLVER.MAX_EPOCH", "10", "SOLVER.WARMUP_ITERS", str(warmup),
                "SOLVER.DELAY_EPOCHS", str(delay), "SOLVER.STEPS", str(steps)])
    check_schedule(cfg, ipe)
    lrs = lr_per_epoch(cfg, ipe)
    assert decay_epochs(lrs, math.ceil(warmup / ipe)) == sorted(set(steps))
    assert lrs[-1] == pytest.approx(cfg.SOLVER.BASE_LR * 0.1 ** len(steps))


class _RateOfEpochs(HookBase):
    def __init__(self):
        self.ratios = []

    def before_epoch(self):  # the rate the epoch's first iteration uses, / its group's base
        g = self.trainer.optimizer.param_groups[0]
        self.ratios.append(g["lr"] / g["initial_lr"])


def test_a_real_run_changes_the_rate_where_the_summary_says(tmp_path):
    """fast-reid's training loop (RGANetTrainer, 2 iterations per epoch, warm-up 3 iterations
    into epoch 1, step 3): the rate of every epoch is the one lr_per_epoch computes, the decay at
    epoch 3 as written (fast-reid alone: 4)."""
    from rganet_plugin.engine import RGANetTrainer

    cfg = load_config(os.path.join(DEMO, "rganet_demo.yml"), TINY + [
        "DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(tmp_path / "out"),
        "SOLVER.IMS_PER_BATCH", "16", "MODEL.RGANET.REGION_MODE", "none",
        "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.BACKBONE.CLIP.NAME", "RGANet-Tiny-ViT",
        "SOLVER.MAX_EPOCH", "5", "SOLVER.WARMUP_ITERS", "3", "SOLVER.STEPS", "[3]",
        "SOLVER.CHECKPOINT_PERIOD", "5", "TEST.EVAL_PERIOD", "5"])
    trainer = RGANetTrainer(cfg)
    assert trainer.iters_per_epoch == 2 and held_epochs(cfg, 2) == 1
    rec = _RateOfEpochs()
    trainer.register_hooks([rec])
    trainer.train()
    expected = [x / cfg.SOLVER.BASE_LR for x in lr_per_epoch(cfg, 2)]
    assert rec.ratios == pytest.approx(expected, rel=1e-9)
    assert decay_epochs(rec.ratios, 2) == [3]
    assert rec.ratios[0] == pytest.approx(cfg.SOLVER.WARMUP_FACTOR)


# ------------------------------------------------------------------ refused / warned
def _fixes(message):
    """The ``KEY VALUE`` settings a refusal proposes (each alone, or joined by 'with')."""
    tail = message.split(" Use ", 1)[1]
    out = []
    for alt in re.split(r" or (?=SOLVER|TEST)", tail):
        steps = re.match(r"SOLVER\.STEPS with every step >= (\d+)", alt)
        out.append([("SOLVER.STEPS", f"[{steps.group(1)}]")] if steps else
                   re.findall(r"((?:SOLVER|TEST)\.[A-Z_]+) (-?\d+)", alt))
    assert all(out), tail
    return out


@pytest.mark.parametrize("opts, ipe, message", [
    (["SOLVER.SCHED", "CosineAnnealingLR", "SOLVER.DELAY_EPOCHS", "30"], None,
     "SOLVER.SCHED CosineAnnealingLR has no epoch left to anneal over: SOLVER.MAX_EPOCH 30 minus "
     "SOLVER.DELAY_EPOCHS 30 leaves 0. Use SOLVER.MAX_EPOCH 31 (or more) or SOLVER.DELAY_EPOCHS "
     "29 (or less)."),
    (["SOLVER.SCHED", "CosineAnnealingLR", "SOLVER.MAX_EPOCH", "3", "SOLVER.WARMUP_ITERS", "25"], 9,
     "SOLVER.SCHED CosineAnnealingLR has no epoch left to anneal over: SOLVER.MAX_EPOCH 3 minus "
     "the 3 epochs of the warm-up (SOLVER.WARMUP_ITERS 25 at 9 iterations per epoch) leaves 0. "
     "Use SOLVER.MAX_EPOCH 4 (or more) or SOLVER.WARMUP_ITERS 18 (or less)."),
    (["SOLVER.SCHED", "CosineAnnealingLR", "SOLVER.MAX_EPOCH", "2", "SOLVER.WARMUP_ITERS", "25",
      "SOLVER.DELAY_EPOCHS", "4"], 9, "Use SOLVER.MAX_EPOCH 5 (or more) or SOLVER.DELAY_EPOCHS 1 "
                                      "(or less) with SOLVER.WARMUP_ITERS 9 (or less)."),
    (["SOLVER.STEPS", "[2, 22]"], 9,
     "SOLVER.STEPS 2 come before epoch 3, the first at which the rate can decay: the warm-up "
     "(SOLVER.WARMUP_ITERS 20 at 9 iterations per epoch) lasts into epoch 2. Use SOLVER.STEPS with "
     "every step >= 3 or SOLVER.WARMUP_ITERS 18 (or less)."),
    (["SOLVER.STEPS", "[3, 22]", "SOLVER.DELAY_EPOCHS", "5"], None,
     "SOLVER.STEPS 3 come before epoch 6, the first at which the rate can decay: "
     "SOLVER.DELAY_EPOCHS 5 holds the rate. Use SOLVER.STEPS with every step >= 6 or "
     "SOLVER.DELAY_EPOCHS 2 (or less)."),
    (["SOLVER.STEPS", "[0, 22]"], None,
     "SOLVER.STEPS [0, 22]: steps are the epochs (counted from 0) from which the rate is decayed, "
     "the first possible is 1"),
    (["SOLVER.CHECKPOINT_PERIOD", "0"], None,
     "SOLVER.CHECKPOINT_PERIOD must be >= 1 (epochs between checkpoints), got 0. Use "
     "SOLVER.CHECKPOINT_PERIOD 30 for checkpoints at the end of the run only."),
    (["TEST.EVAL_PERIOD", "-1"], None, "TEST.EVAL_PERIOD must be >= 1 (epochs between "
                                       "evaluations), got -1. Use TEST.EVAL_PERIOD 30"),
    ([], 0, "the training set is smaller than one batch of SOLVER.IMS_PER_BATCH 32: an epoch "
            "would have no iteration"),
])
def test_schedules_that_cannot_run_are_refused_with_a_value_that_works(opts, ipe, message):
    cfg = _cfg(opts)
    with pytest.raises(ConfigError) as err:
        check_schedule(cfg, ipe)
    text = str(err.value)
    assert message in text and "\n" not in text
    if " Use SOLVER" in text or " Use TEST" in text:
        for fix in _fixes(text):
            fixed = _cfg(opts + [x for kv in fix for x in kv])
            check_schedule(fixed, ipe)  # each proposal alone runs


def test_max_epoch_below_one_is_refused():
    with pytest.raises(ConfigError, match="SOLVER.MAX_EPOCH must be >= 1, got 0"):
        _cfg(["SOLVER.MAX_EPOCH", "0"])
    with pytest.raises(ConfigError, match="PROMPT_STAGE.MAX_EPOCH must be >= 1, got 0"):
        load_config(os.path.join(DEMO, "rganet_demo.yml"), ["PROMPT_STAGE.MAX_EPOCH", "0"])


def test_a_stage1_before_stage2_is_checked_too_and_has_no_evaluation_to_check():
    cfg = load_config(os.path.join(DEMO, "rganet_demo.yml"), ["TEST.EVAL_PERIOD", "0"])
    with pytest.raises(ConfigError, match="TEST.EVAL_PERIOD must be >= 1"):
        check_stage_schedules(cfg)  # stage 2's evaluation
    s1 = load_config(os.path.join(DEMO, "rganet_demo.yml"), [
        "MODEL.META_ARCHITECTURE", "RGANetPromptLearner", "TEST.EVAL_PERIOD", "0"])
    assert check_schedule(s1) == []  # stage 1 drops the evaluation hook


@pytest.mark.parametrize("opts, ipe, warning", [
    ([], 559, "SOLVER.STEPS 22 are not before SOLVER.MAX_EPOCH 20: the rate never decays there"),
    (["SOLVER.WARMUP_ITERS", "200", "SOLVER.STEPS", "[]"], 9,
     "SOLVER.WARMUP_ITERS 200 is not shorter than the run (180 iterations: SOLVER.MAX_EPOCH 20 x "
     "9): the rate never reaches SOLVER.BASE_LR"),
    (["MODEL.FREEZE_LAYERS", "['backbone']", "SOLVER.FREEZE_ITERS", "180"], 9,
     "SOLVER.FREEZE_ITERS 180 is not shorter than the run (180 iterations: SOLVER.MAX_EPOCH 20 x "
     "9): MODEL.FREEZE_LAYERS ['backbone'] are never trained"),
    (["SOLVER.CHECKPOINT_PERIOD", "25"], None,
     "SOLVER.CHECKPOINT_PERIOD 25 is longer than the run (SOLVER.MAX_EPOCH 20): checkpoints only "
     "at its end"),
    (["TEST.EVAL_PERIOD", "21"], None,
     "TEST.EVAL_PERIOD 21 is longer than the run (SOLVER.MAX_EPOCH 20): evaluations only at its "
     "end"),
])
def test_schedules_that_do_less_than_written_are_warned_in_one_line(opts, ipe, warning):
    cfg = _cfg(["SOLVER.MAX_EPOCH", "20", "SOLVER.CHECKPOINT_PERIOD", "20", "TEST.EVAL_PERIOD",
                "20", "SOLVER.STEPS", "[10]" if opts else "[22]", *opts])
    assert check_schedule(cfg, ipe) == [warning]


def test_shipped_configs_run_as_written():
    """Every config of the repository passes the start-up check without a warning."""
    import glob

    sys.path.insert(0, os.path.join(ROOT, "projects", "AGReID"))
    from agreid.config import load_agreid_config

    for f in sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yml"), recursive=True)):
        cfg = load_agreid_config(f) if os.path.basename(f).startswith("agreid") else _cfg(file=f)
        check_stage_schedules(cfg)
        assert check_schedule(cfg) == [], f


# ------------------------------------------------------------------ the summary
def test_summary_of_a_step_and_of_a_cosine_schedule():
    text = schedule_summary(_cfg(), 9)
    assert "Schedule: 30 epochs x 9 iterations = 270 iterations" in text
    assert "warm-up (linear): iterations 0-19 (epochs 0-2), 1e-05 rising to 0.001" in text
    assert "epochs 3-21: 0.001\n" in text and "epochs 22-29: 0.0001\n" in text
    assert "checkpoints after epoch 29 (the last: model_final)" in text
    assert text.endswith("evaluations after epoch 29")
    sbs = load_config(os.path.join(DEMO, "sbs_R50_demo.yml"))
    text = schedule_summary(sbs, 12, start_epoch=4, evaluates=False)
    # cosine after DELAY_EPOCHS 6: fast-reid first steps it after epoch 6
    assert "resuming at epoch 4" in text and "epochs 1-6: 0.00035\n" in text
    assert re.search(r"epochs 7-11: changes every epoch, 0\.000\d+ -> \d", text)
    assert "frozen ['backbone']: iterations 0-9 (into epoch 0)" in text
    assert text.endswith("evaluations: none in this run")
    long = _cfg(["SOLVER.MAX_EPOCH", "60", "SOLVER.CHECKPOINT_PERIOD", "5",
                 "TEST.EVAL_PERIOD", "7"])
    text = schedule_summary(long, 9)
    assert "checkpoints after epochs 4, 9, 14, ..., 54, 59 (the last: model_final)" in text
    assert "evaluations after epochs 6, 13, 20, ..., 55, 59" in text  # 60 % 7: one at the end


def test_every_trainer_of_the_project_uses_the_checked_schedule():
    from fastreid.engine import DefaultTrainer

    from rganet_plugin.engine import RGANetTrainer

    sys.path.insert(0, os.path.join(ROOT, "projects", "AGReID"))
    from agreid.engine import AGReIDTrainer

    for trainer in (RGANetTrainer, FIRe2Trainer, AGReIDTrainer):
        assert issubclass(trainer, ScheduleMixin)
        assert trainer.build_lr_scheduler.__func__ is ScheduleMixin.build_lr_scheduler.__func__
        assert trainer.train is not DefaultTrainer.train


# ------------------------------------------------------------------ whole runs
@pytest.mark.parametrize("recipe", ["bagtricks_vit_demo", "sbs_R50_demo"])
def test_demo_recipes_shortened_to_one_epoch_stop_before_training_in_one_line(
        recipe, tmp_path, capsys):
    out = tmp_path / "out"
    rc = train_main(["--config-file", os.path.join(DEMO, f"{recipe}.yml"), "SOLVER.MAX_EPOCH", "1",
                     "DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("error: SOLVER.SCHED CosineAnnealingLR has no epoch left to anneal "
                             "over: SOLVER.MAX_EPOCH 1 minus ")
    assert err[0].endswith({
        "bagtricks_vit_demo": "Use SOLVER.MAX_EPOCH 2 (or more) or SOLVER.WARMUP_ITERS 0.",
        "sbs_R50_demo": "Use SOLVER.MAX_EPOCH 7 (or more) or SOLVER.DELAY_EPOCHS 0 with "
                        "SOLVER.WARMUP_ITERS 0."}[recipe])
    assert not (tmp_path / "data").exists()  # stopped before reading any data
    assert not list(out.glob("*.pth"))


def test_a_schedule_refused_once_the_training_set_is_known_stops_before_training(tmp_path, capsys):
    """32 images at batch 8 = 4 iterations per epoch: a 100-iteration warm-up is 25 epochs, a
    cosine of 3 epochs has none left; known only after the data loader, still before training."""
    out = tmp_path / "out"
    rc = train_main(["--config-file", os.path.join(DEMO, "sbs_R50_demo.yml"), *TINY,
                     "DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(out),
                     "MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512",
                     "SOLVER.MAX_EPOCH", "3", "SOLVER.DELAY_EPOCHS", "0",
                     "SOLVER.WARMUP_ITERS", "100"])
    err = capsys.readouterr().err.strip().splitlines()  # in-process: the log goes there too
    assert rc == 2 and [x for x in err if x.startswith("error:")] == err[-1:] == [
        "error: SOLVER.SCHED CosineAnnealingLR has no epoch left to anneal over: SOLVER.MAX_EPOCH "
        "3 minus the 25 epochs of the warm-up (SOLVER.WARMUP_ITERS 100 at 4 iterations per "
        "epoch) leaves -22. Use SOLVER.MAX_EPOCH 26 (or more) or SOLVER.WARMUP_ITERS 8 (or less)."]
    assert "Starting training" not in (out / "log.txt").read_text()
    assert not list(out.glob("*.pth"))


def test_a_recipe_shortened_to_one_epoch_trains_evaluates_and_logs_its_schedule(tmp_path):
    """BoT (MultiStepLR) for one epoch: it runs, says in one line each what does not happen
    (the steps, the end of the warm-up, the periods), and the log has the schedule."""
    out = tmp_path / "out"
    assert train_main(["--config-file", os.path.join(DEMO, "bagtricks_R50_demo.yml"), *TINY,
                       "DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(out),
                       "MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512",
                       "SOLVER.MAX_EPOCH", "1"]) == 0
    log = (out / "log.txt").read_text()
    for line in ("SOLVER.STEPS 4, 9 are not before SOLVER.MAX_EPOCH 1: the rate never decays there",
                 "SOLVER.WARMUP_ITERS 10 is not shorter than the run (4 iterations: "
                 "SOLVER.MAX_EPOCH 1 x 4): the rate never reaches SOLVER.BASE_LR",
                 "SOLVER.CHECKPOINT_PERIOD 12 is longer than the run (SOLVER.MAX_EPOCH 1): "
                 "checkpoints only at its end",
                 "Schedule: 1 epoch x 4 iterations = 4 iterations",
                 "warm-up (linear): iterations 0-3 (epoch 0), 3.5e-05 rising to 0.00035 (not "
                 "reached in this run)",
                 "checkpoints after epoch 0 (the last: model_final)",
                 "evaluations after epoch 0"):
        assert line in log, line
    assert log.index("Schedule: ") < log.index("Starting training")
    assert "Evaluation results" in log and (out / "model_final.pth").is_file()


def test_fire2_logs_its_schedule(tmp_path):
    from fire2.tools import main as fire2_main

    out = tmp_path / "out"
    assert fire2_main(["--config-file", os.path.join(DEMO, "fire2_demo.yml"),
                       "DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(out),
                       "DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "4", "DATASETS.SYNTHETIC.NUM_TEST_IDS",
                       "3", "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4",
                       "DATASETS.SYNTHETIC.OUTFITS_PER_ID", "2", "DATASETS.SYNTHETIC.HEIGHT", "64",
                       "DATASETS.SYNTHETIC.WIDTH", "32", "SOLVER.IMS_PER_BATCH", "8",
                       "DATALOADER.NUM_INSTANCE", "2", "SOLVER.MAX_EPOCH", "2", "SOLVER.STEPS",
                       "[1]", "SOLVER.WARMUP_ITERS", "0", "SOLVER.CHECKPOINT_PERIOD", "2",
                       "TEST.EVAL_PERIOD", "2", "TEST.IMS_PER_BATCH", "16"]) == 0
    log = (out / "log.txt").read_text()
    assert "Schedule: 2 epochs x 2 iterations = 4 iterations" in log
    assert "epoch 0: 0.001\n" in log and "epoch 1: 0.0001\n" in log
    assert "evaluations after epoch 1" in log
