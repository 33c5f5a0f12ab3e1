"""The entry point behind ``projects/FIRe2/train_net.py``: fast-reid's argument parser, launcher,
``default_setup`` and ``DefaultTrainer`` flow, with FIRe²'s config and trainer."""
from __future__ import annotations

import logging
import sys

from fastreid.engine import default_argument_parser, default_setup, launch
from fastreid.utils import comm
from fastreid.utils.checkpoint import Checkpointer
from fastreid.utils.env import seed_all_rng
from fastreid.utils.logger import setup_logger

from rganet_plugin.config import resolve_device
from rganet_plugin.config.setup import ConfigError

from .config import load_fire2_config
from .engine import FIRe2Trainer

logger = logging.getLogger("fire2")


def setup(args):
    cfg = load_fire2_config(args.config_file, args.opts)
    resolve_device(cfg)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="fire2")  # FFM's lines
    if cfg.SEED >= 0:
        seed_all_rng(cfg.SEED + comm.get_rank())
    return cfg


def run(args):
    cfg = setup(args)
    if args.eval_only:
        cfg.defrost()
        cfg.MODEL.BACKBONE.PRETRAIN = False
        model = FIRe2Trainer.build_model(cfg)
        Checkpointer(model).load(cfg.MODEL.WEIGHTS)
        return FIRe2Trainer.test(cfg, model)
    trainer = FIRe2Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main(argv=None):
    args = default_argument_parser().parse_args(argv)
    try:
        launch(run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(args,))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
