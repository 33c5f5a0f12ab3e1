"""The training / evaluation entry point behind ``projects/RGANet/train_net.py``."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time

import rganet_plugin  # noqa: F401  (patches fast-reid, registers components)
from fastreid.engine import default_argument_parser, default_setup, launch
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException
from fastreid.utils import comm
from fastreid.utils.checkpoint import Checkpointer
from fastreid.utils.env import seed_all_rng
from fastreid.utils.logger import setup_logger

from ..config import load_config, resolve_device
from ..config.setup import ConfigError
from ..engine import RGANetTrainer
from ..engine.hooks import unwrap
from ..engine.output_lock import OutputDirBusy, OutputDirLock
from ..engine.checkpoint import (check_checkpoint, complete_cfg_from_checkpoint,
                                 read_model_state)

logger = logging.getLogger("rganet_plugin")


def setup(args):
    cfg = load_config(args.config_file, args.opts)
    resolve_device(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    if cfg.SEED >= 0:
        seed_all_rng(cfg.SEED + comm.get_rank())
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="rganet_plugin",
                 abbrev_name="rganet")
    return cfg


def needs_prompt_stage(cfg) -> bool:
    r = cfg.MODEL.RGANET
    return (r.STAGE == "reid" and r.REGION_MODE == "rgm" and r.PROMPT.TYPE == "learnable"
            and r.PROMPT.AUTO_STAGE1 and not cfg.MODEL.WEIGHTS)


def prompt_stage_cfg(cfg):
    """Stage 1 of a stage-2 config: same model and data, L_seg only, its own output folder."""
    c = cfg.clone()
    c.defrost()
    c.MODEL.RGANET.STAGE = "prompt"
    c.SOLVER.MAX_EPOCH = cfg.MODEL.RGANET.PROMPT.STAGE1.MAX_EPOCH
    c.SOLVER.BASE_LR = cfg.MODEL.RGANET.PROMPT.STAGE1.BASE_LR
    c.SOLVER.STEPS = []
    c.SOLVER.WARMUP_ITERS = 0
    c.SOLVER.CHECKPOINT_PERIOD = max(c.SOLVER.MAX_EPOCH, 1)
    c.TEST.EVAL_PERIOD = 10 ** 9  # the trainer drops ReID evaluation in stage 1 anyway
    c.OUTPUT_DIR = os.path.join(cfg.OUTPUT_DIR, "prompt_stage")
    c.freeze()
    return c


STAGE1_FINGERPRINT = "stage1_fingerprint.json"


def stage_fingerprint(c) -> dict:
    """What a stage-1 result depends on: its whole config but the output folder and the run-time
    device (model, prompts, data, pseudo masks, solver, seed), hashed."""
    d = c.clone()
    d.defrost()
    d.OUTPUT_DIR = ""
    d.MODEL.DEVICE = ""
    text = d.dump()
    h = hashlib.sha1(text.encode())
    path = c.MODEL.BACKBONE.PRETRAIN_PATH
    if c.MODEL.BACKBONE.PRETRAIN and path and os.path.isfile(path):
        with open(path, "rb") as f:  # the same path may hold other weights later
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return {"sha1": h.hexdigest(), "config": text}


def train_prompt_stage(cfg, resume: bool = False) -> str:
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
            if cfg.MODEL.RGANET.PROMPT.STAGE1.STALE == "error":
                raise ConfigError(
                    f"the stage-1 result in {c.OUTPUT_DIR} {why}; set "
                    f"MODEL.RGANET.PROMPT.STAGE1.STALE rerun (or use another OUTPUT_DIR)")
            stale = f"{c.OUTPUT_DIR}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
            if comm.is_main_process():
                os.rename(c.OUTPUT_DIR, stale)
            comm.synchronize()
            logger.warning("Stage 1 in %s %s: moved it to %s and running stage 1 again",
                           c.OUTPUT_DIR, why, stale)
            resume = False
    logger.info("Stage 1: learning the prompt context (%d epochs) into %s", c.SOLVER.MAX_EPOCH,
                c.OUTPUT_DIR)
    trainer = RGANetTrainer(c)
    if comm.is_main_process():
        os.makedirs(c.OUTPUT_DIR, exist_ok=True)
        with open(stamp, "w") as f:
            json.dump(want, f)
    trainer.resume_or_load(resume=resume)
    trainer.train()
    comm.synchronize()
    return final


def run(args):
    cfg = setup(args)
    if args.eval_only:
        cfg.defrost()
        cfg.MODEL.BACKBONE.PRETRAIN = False
        complete_cfg_from_checkpoint(cfg, read_model_state(cfg.MODEL.WEIGHTS))
        model = RGANetTrainer.build_model(cfg)
        check_checkpoint(model, cfg.MODEL.WEIGHTS, strict=True)
        Checkpointer(model).load(cfg.MODEL.WEIGHTS)
        return RGANetTrainer.test(cfg, model)
    if needs_prompt_stage(cfg):
        weights = train_prompt_stage(cfg, resume=args.resume)
        cfg.defrost()
        cfg.MODEL.WEIGHTS = weights
        cfg.freeze()
    trainer = RGANetTrainer(cfg)
    if cfg.MODEL.WEIGHTS and not (args.resume and trainer.checkpointer.has_checkpoint()):
        check_checkpoint(unwrap(trainer.model), cfg.MODEL.WEIGHTS, strict=False)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main(argv=None) -> int:
    args = default_argument_parser().parse_args(argv)
    try:
        # one writer per OUTPUT_DIR, held by the launching process for the run's whole life
        output_dir = load_config(args.config_file, args.opts).OUTPUT_DIR
        with OutputDirLock(output_dir):
            launch(run, args.num_gpus, num_machines=args.num_machines,
                   machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))
    except (ConfigError, OutputDirBusy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ProcessExitedException as e:  # a worker died (killed, out of memory, ...)
        print(f"error: training process {e.error_index} stopped ({_exit_reason(e)}); the other "
              f"processes were stopped too. The checkpoints written so far are in "
              f"{output_dir}: rerun the same command with --resume to go on from the last one.",
              file=sys.stderr)
        return 1
    except ProcessRaisedException as e:  # a worker raised, e.g. a collective timed out
        first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        print(f"error: a training process failed: {first}\nThe other processes were stopped; "
              f"the checkpoints written so far are in {output_dir} (--resume goes on from the "
              f"last one).", file=sys.stderr)
        return 1
    return 0


def _exit_reason(e) -> str:
    if getattr(e, "signal_name", None):
        return f"signal {e.signal_name}"
    return f"exit code {getattr(e, 'exit_code', '?')}"
