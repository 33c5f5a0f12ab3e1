"""Which training stage(s) a config runs, and running stage 1 for a stage-2 config.

RGANet trains in two stages (Sec. III-F): stage 1 (``RGANetPromptLearner``) learns the prompt
context against pseudo part masks, stage 2 (``RGANet``) the ReID model from stage 1's result.
:func:`plan_stages` is the one place that decides what a config runs; ``train_net.py``, the trainer
and the tools ask it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import List

from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY
from fastreid.utils import comm

from ..config.setup import ConfigError
from ..modeling.meta_arch import RGANet
from ..modeling.meta_arch.prompt_learner import PROMPT_LEARNER, is_prompt_stage  # noqa: F401
from .schedule import check_schedule

logger = logging.getLogger(__name__)

STAGE1_FINGERPRINT = "stage1_fingerprint.json"


def _meta_arch(cfg):
    """The registered class of ``MODEL.META_ARCHITECTURE`` (None if unknown: building says so)."""
    return META_ARCH_REGISTRY._obj_map.get(cfg.MODEL.META_ARCHITECTURE)


def plan_stages(cfg) -> List[str]:
    """``["prompt"]`` (a stage-1 config), ``["prompt", "reid"]`` (learnable prompts without
    ``MODEL.WEIGHTS``: stage 1 runs first, ``PROMPT_STAGE.AUTO``) or ``["reid"]``.

    Learnable prompts with neither stage-1 weights nor ``PROMPT_STAGE.AUTO`` would train from an
    untrained (random) context: refused unless ``PROMPT_STAGE.ALLOW_UNTRAINED`` says so.
    """
    if is_prompt_stage(cfg):
        return ["prompt"]
    r = cfg.MODEL.RGANET
    cls = _meta_arch(cfg)
    learnable = (cls is not None and issubclass(cls, RGANet) and r.REGION_MODE == "rgm"
                 and r.PROMPT.TYPE == "learnable")
    if learnable and not cfg.MODEL.WEIGHTS:
        if cfg.PROMPT_STAGE.AUTO:
            return ["prompt", "reid"]
        if not cfg.PROMPT_STAGE.ALLOW_UNTRAINED:
            raise ConfigError(
                "learnable prompts (MODEL.RGANET.PROMPT.TYPE learnable) with PROMPT_STAGE.AUTO "
                "False and no MODEL.WEIGHTS would train stage 2 from an untrained, random prompt "
                "context. Give the stage-1 result as MODEL.WEIGHTS, set PROMPT_STAGE.AUTO True, "
                "or set PROMPT_STAGE.ALLOW_UNTRAINED True if that is what you want.")
    return ["reid"]


def prompt_stage_cfg(cfg):
    """Stage 1 of a stage-2 config: same model and data, L_seg only, its own output folder."""
    c = cfg.clone()
    c.defrost()
    c.MODEL.META_ARCHITECTURE = PROMPT_LEARNER
    c.SOLVER.MAX_EPOCH = cfg.PROMPT_STAGE.MAX_EPOCH
    c.SOLVER.BASE_LR = cfg.PROMPT_STAGE.BASE_LR
    c.SOLVER.STEPS = []
    c.SOLVER.WARMUP_ITERS = 0
    c.SOLVER.CHECKPOINT_PERIOD = max(c.SOLVER.MAX_EPOCH, 1)
    c.TEST.EVAL_PERIOD = 10 ** 9  # the trainer drops ReID evaluation in stage 1 anyway
    c.OUTPUT_DIR = os.path.join(cfg.OUTPUT_DIR, "prompt_stage")
    c.freeze()
    return c


def stage_fingerprint(c) -> dict:
    """What a stage-1 result depends on: its whole config (model, prompts, data, pseudo masks,
    solver, seed), hashed, but what leaves the learned prompts alone: the output folder, the
    run-time device, when to checkpoint and evaluate (stage 1 has no evaluation), and
    ``PROMPT_STAGE`` (how a stage-2 config derives and checks its stage 1; the derived
    ``SOLVER`` values are in the config). So stage 1 run on its own
    (``configs/OccludedDuke/rganet_prompt_stage.yml``) and the stage 1 that ``rganet.yml`` derives
    have one fingerprint when they train the same way."""
    d = c.clone()
    d.defrost()
    d.OUTPUT_DIR = ""
    d.MODEL.DEVICE = ""
    d.SOLVER.CHECKPOINT_PERIOD = 0
    d.TEST.EVAL_PERIOD = 0
    d.pop("PROMPT_STAGE", None)
    text = d.dump()
    h = hashlib.sha1(text.encode())
    path = c.MODEL.BACKBONE.PRETRAIN_PATH
    if c.MODEL.BACKBONE.PRETRAIN and path and os.path.isfile(path):
        with open(path, "rb") as f:  # the same path may hold other weights later
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return {"sha1": h.hexdigest(), "config": text}


def train_prompt_stage(cfg, resume: bool = False) -> str:
    """Run (or reuse, or resume) stage 1 of the stage-2 config ``cfg``; its final checkpoint."""
    c = prompt_stage_cfg(cfg)
    final = os.path.join(c.OUTPUT_DIR, "model_final.pth")
    stamp = os.path.join(c.OUTPUT_DIR, STAGE1_FINGERPRINT)
    want = stage_fingerprint(c)
    if os.path.isfile(final) or (resume and os.path.isdir(c.OUTPUT_DIR)):
        have = None
        if os.path.isfile(stamp):
            with open(stamp) as f:
                have = json.load(f).get("sha1")
        if have == want["sha1"]:
            if os.path.isfile(final):
                logger.info("Stage 1 (prompt learning) already done with these settings: %s",
                            final)
                return final
            # a half-done stage with these settings: --resume goes on from its checkpoint
        else:
            why = ("was made with other settings" if have is not None
                   else "has no record of the settings it was made with")
            if cfg.PROMPT_STAGE.STALE == "error":
                raise ConfigError(
                    f"the stage-1 result in {c.OUTPUT_DIR} {why}; set "
                    f"PROMPT_STAGE.STALE rerun (or use another OUTPUT_DIR)")
            stale = f"{c.OUTPUT_DIR}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
            if comm.is_main_process():
                os.rename(c.OUTPUT_DIR, stale)
            comm.synchronize()
            logger.warning("Stage 1 in %s %s: moved it to %s and running stage 1 again",
                           c.OUTPUT_DIR, why, stale)
            resume = False
    logger.info("Stage 1: learning the prompt context (%d epochs) into %s", c.SOLVER.MAX_EPOCH,
                c.OUTPUT_DIR)
    _train(c, resume, before=lambda: _write_record(stamp, want))
    return final


def train_prompt_stage_alone(c, resume: bool = False) -> str:
    """Stage 1 from a stage-1 config (``MODEL.META_ARCHITECTURE RGANetPromptLearner``), trained
    into its ``OUTPUT_DIR`` as fast-reid trains any config, with the record of its settings
    written when it is done: a stage-2 config whose automatic stage 1 (``OUTPUT_DIR/prompt_stage``)
    has the same settings then reuses it instead of calling it stale. The record of an earlier
    run is removed first, so a run that stops half-way leaves no record next to an older
    ``model_final.pth`` (that folder is then stale, moved aside by a stage-2 run)."""
    stamp = os.path.join(c.OUTPUT_DIR, STAGE1_FINGERPRINT)
    want = stage_fingerprint(c)

    def forget():
        if os.path.isfile(stamp):
            os.remove(stamp)

    _train(c, resume, before=forget, after=lambda: _write_record(stamp, want))
    return os.path.join(c.OUTPUT_DIR, "model_final.pth")


def _write_record(stamp: str, fingerprint: dict) -> None:
    os.makedirs(os.path.dirname(stamp), exist_ok=True)
    with open(stamp, "w") as f:
        json.dump(fingerprint, f)


def _train(c, resume: bool, before=None, after=None) -> None:
    """Train the stage-1 config ``c``; ``before`` (after the trainer is built) and ``after``
    run on the main process only."""
    from .trainer import RGANetTrainer

    trainer = RGANetTrainer(c)
    if before is not None and comm.is_main_process():
        before()
    trainer.resume_or_load(resume=resume)
    trainer.train()
    comm.synchronize()
    if after is not None and comm.is_main_process():
        after()


def check_stage_schedules(cfg) -> None:
    """At start-up, before any data is read: refuse a schedule of any stage ``cfg`` runs that
    cannot run (the checks that need the iterations per epoch follow in the trainer)."""
    for stage in plan_stages(cfg):
        check_schedule(prompt_stage_cfg(cfg) if stage == "prompt" and not is_prompt_stage(cfg)
                       else cfg)
