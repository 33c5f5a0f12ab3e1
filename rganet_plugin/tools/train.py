"""The training / evaluation entry point behind ``projects/RGANet/train_net.py``."""
from __future__ import annotations

import logging
import sys

import rganet_plugin  # noqa: F401  (patches fast-reid, registers components)
from fastreid.engine import default_argument_parser, default_setup, launch
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException
from fastreid.utils import comm
from fastreid.utils.env import seed_all_rng
from fastreid.utils.logger import setup_logger

from ..config import load_config, resolve_device
from ..config.setup import ConfigError
from ..engine import RGANetTrainer
from ..engine.output_lock import OutputDirBusy, OutputDirLock
from ..engine.stages import (check_stage_schedules, plan_stages, train_prompt_stage,
                             train_prompt_stage_alone)
from ..engine.checkpoint import ModelCheckpointer, complete_cfg_from_checkpoint, read_checkpoint

logger = logging.getLogger("rganet_plugin")


def setup(args, load=load_config, loggers=(("rganet_plugin", "rganet"),)):
    """Config (``load(file, opts)``; for training, its schedule checked), device, fast-reid's
    ``default_setup``, seeds and the ``(name, abbreviation)`` loggers that write into
    ``OUTPUT_DIR/log.txt``. A sibling project (FIRe²) passes its own config loader and logger."""
    cfg = load(args.config_file, args.opts)
    if not args.eval_only:  # a schedule that cannot run stops here, before any data is read
        check_stage_schedules(cfg)
    resolve_device(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    if cfg.SEED >= 0:
        seed_all_rng(cfg.SEED + comm.get_rank())
    for name, abbrev in loggers:
        setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name=name,
                     abbrev_name=abbrev)
    return cfg


def run(args):
    cfg = setup(args)
    if args.eval_only:
        cfg.defrost()
        cfg.MODEL.BACKBONE.PRETRAIN = False
        checkpoint = read_checkpoint(cfg.MODEL.WEIGHTS)
        complete_cfg_from_checkpoint(cfg, checkpoint["model"])
        model = RGANetTrainer.build_model(cfg)
        ModelCheckpointer(model, strict=True).load_checkpoint(checkpoint, cfg.MODEL.WEIGHTS)
        return RGANetTrainer.test(cfg, model)
    stages = plan_stages(cfg)
    if stages == ["prompt"]:  # stage 1 on its own: trained, and its settings recorded
        train_prompt_stage_alone(cfg, resume=args.resume)
        return {}
    if stages == ["prompt", "reid"]:
        weights = train_prompt_stage(cfg, resume=args.resume)
        cfg.defrost()
        cfg.MODEL.WEIGHTS = weights
        cfg.freeze()
    trainer = RGANetTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main(argv=None, run=run, load=load_config) -> int:
    """fast-reid's argument parser and launcher around ``run(args)``, with one writer per
    ``OUTPUT_DIR`` and a clear message (exit 2 / 1) for a bad config or a worker that died.
    A sibling project passes its own ``run`` and config loader."""
    args = default_argument_parser().parse_args(argv)
    try:
        # one writer per OUTPUT_DIR, held by the launching process for the run's whole life
        output_dir = load(args.config_file, args.opts).OUTPUT_DIR
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
