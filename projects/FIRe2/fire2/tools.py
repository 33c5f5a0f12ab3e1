"""FIRe²'s entry point, ``python -m fire2.tools`` (what ``projects/FIRe2/train_net.py`` runs):
the plugin's (fast-reid's argument parser, launcher, ``default_setup`` and ``DefaultTrainer``
flow, one writer per ``OUTPUT_DIR``), with FIRe²'s config and trainer. ``load_config`` is the
loader its runs use (``rganet_analysis.compare --entry fire2.tools`` reads configs with it)."""
from __future__ import annotations

import sys

from fastreid.utils.checkpoint import Checkpointer

from rganet_plugin.tools import train as plugin_train

from .config import load_fire2_config
from .config import load_fire2_config as load_config  # noqa: F401  (the entry point's loader)
from .engine import FIRe2Trainer

LOGGERS = (("rganet_plugin", "rganet"), ("fire2", None))  # FFM's lines and the evaluator's


def setup(args):
    return plugin_train.setup(args, load=load_fire2_config, loggers=LOGGERS)


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


def main(argv=None) -> int:
    return plugin_train.main(argv, run=run, load=load_fire2_config)


if __name__ == "__main__":
    sys.exit(main())
