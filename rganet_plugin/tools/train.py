"""The training / evaluation entry point behind ``projects/RGANet/train_net.py``.

What a user sees (docs/reliability.md):

* flags (``--resume``, ``--eval-only``, ``--num-gpus N`` ...) may stand anywhere, also after the
  ``KEY VALUE`` overrides;
* the console is quiet: one line per epoch, the results table, warnings and errors; everything
  else (fast-reid's environment dump, the config, the model) goes to ``OUTPUT_DIR/log.txt``.
  ``RGANET_VERBOSE=1`` shows it all on the console too;
* a user error (a setting, a missing or foreign file, a dataset, a NaN loss) prints one
  ``error: <message>`` and exits with 2; ``RGANET_TRACEBACK=1`` shows the traceback as well.
  A failed checkpoint write exits with 1, programming errors keep their traceback;
* Ctrl-C / SIGTERM stop after the current iteration with a checkpoint and one line naming the
  ``--resume`` command; exit status 130 (SIGINT) / 143 (SIGTERM), as a shell reports them.
"""
from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import traceback

import rganet_plugin  # noqa: F401  (patches fast-reid, registers components)
from fastreid.engine import default_argument_parser, default_setup, launch
from torch.multiprocessing import ProcessExitedException, ProcessRaisedException
from fastreid.utils import comm
from fastreid.utils.env import seed_all_rng
from fastreid.utils.logger import setup_logger

from ..config import load_config, resolve_device
from ..config.setup import ConfigError
from ..data.build import EmptyQueryError
from ..data.datasets.common import DatasetError
from ..data.image_io import CorruptImageError
from ..engine import RGANetTrainer
from ..engine.hooks import PROGRESS_LOGGER, RunInterrupted
from ..engine.output_lock import OutputDirBusy, OutputDirLock
from ..engine.stages import (check_stage_schedules, plan_stages, train_prompt_stage,
                             train_prompt_stage_alone)
from ..engine.checkpoint import (CheckpointMismatchError, CheckpointWriteError, ModelCheckpointer,
                                 complete_cfg_from_checkpoint, read_checkpoint)
from ..modeling.backbones.clip_weights import CLIPWeightsError
from .argv import parse_args_anywhere

logger = logging.getLogger("rganet_plugin")

#: errors a user can fix (a setting, a file, the data): ``error: <message>``, exit 2
USER_ERRORS = (ConfigError, OutputDirBusy, FileNotFoundError, CheckpointMismatchError,
               CLIPWeightsError, DatasetError, EmptyQueryError,
               CorruptImageError, FloatingPointError)
#: the machine's faults (a full disk): ``error: <message>``, exit 1
ENVIRONMENT_ERRORS = (CheckpointWriteError,)
#: where fast-reid and the plugin log what the quiet console shows
CONSOLE_LOGGERS = (PROGRESS_LOGGER, "rganet_plugin.engine.stages", "fastreid.evaluation.testing")


def setup(args, load=load_config, loggers=(("rganet_plugin", "rganet"),)):
    """Config (``load(file, opts)``; for training, its schedule checked), device, fast-reid's
    ``default_setup``, seeds and the ``(name, abbreviation)`` loggers that write into
    ``OUTPUT_DIR/log.txt``. A sibling project (FIRe²) passes its own config loader and logger."""
    cfg = load(args.config_file, args.opts)
    if not args.eval_only:  # a schedule that cannot run stops here, before any data is read
        check_stage_schedules(cfg)
    resolve_device(cfg)
    cfg.freeze()
    # fast-reid's own logger, made as default_setup makes it (setup_logger is cached), so that
    # its environment dump and config reach the console only with RGANET_VERBOSE
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank())
    quiet_console(["fastreid"])
    default_setup(cfg, args)
    if cfg.SEED >= 0:
        seed_all_rng(cfg.SEED + comm.get_rank())
    for name, abbrev in loggers:
        setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name=name,
                     abbrev_name=abbrev)
    quiet_console(["fastreid"] + [name for name, _ in loggers])
    if comm.is_main_process():
        log = os.path.join(cfg.OUTPUT_DIR, "log.txt") if cfg.OUTPUT_DIR else "the log"
        logging.getLogger(PROGRESS_LOGGER).info(
            "%s on %s; details in %s", "evaluating" if args.eval_only else "training",
            cfg.MODEL.DEVICE, log)
    return cfg


class _ConsoleFilter(logging.Filter):
    """What the quiet console shows: warnings and errors (not the traceback of a user error,
    which ``main`` reports in one line), and the records of :data:`CONSOLE_LOGGERS`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], USER_ERRORS + ENVIRONMENT_ERRORS):
            return False
        return record.levelno >= logging.WARNING or record.name.startswith(CONSOLE_LOGGERS)


def quiet_console(names) -> None:
    """Filter the console handlers fast-reid's ``setup_logger`` gave the loggers ``names``
    (the file handlers keep everything); ``RGANET_VERBOSE=1`` leaves them as they are."""
    if os.environ.get("RGANET_VERBOSE", "") not in ("", "0"):
        return
    logging.getLogger(PROGRESS_LOGGER).setLevel(logging.INFO)
    consoles = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    for name in names:
        for h in logging.getLogger(name).handlers:
            # (fast-reid's log.txt handler is a StreamHandler too: tell them by their stream)
            if getattr(h, "stream", None) in consoles \
                    and not any(isinstance(f, _ConsoleFilter) for f in h.filters):
                h.addFilter(_ConsoleFilter())


def run(args, trainer=RGANetTrainer, configure=setup):  # a sibling project passes its own
    cfg = configure(args)
    if args.eval_only:
        cfg.defrost()
        cfg.MODEL.BACKBONE.PRETRAIN = False
        checkpoint = read_checkpoint(cfg.MODEL.WEIGHTS)
        complete_cfg_from_checkpoint(cfg, checkpoint["model"])
        model = trainer.build_model(cfg)
        ModelCheckpointer(model, strict=True).load_checkpoint(checkpoint, cfg.MODEL.WEIGHTS)
        return trainer.test(cfg, model)
    stages = plan_stages(cfg)
    if stages == ["prompt"]:  # stage 1 on its own: trained, and its settings recorded
        train_prompt_stage_alone(cfg, resume=args.resume)
        return {}
    if stages == ["prompt", "reid"]:
        weights = train_prompt_stage(cfg, resume=args.resume)
        cfg.defrost()
        cfg.MODEL.WEIGHTS = weights
        cfg.freeze()
    run_trainer = trainer(cfg)
    run_trainer.resume_or_load(resume=args.resume)
    return run_trainer.train()


def main(argv=None, run=run, load=load_config) -> int:
    """fast-reid's argument parser and launcher around ``run(args)``, with one writer per
    ``OUTPUT_DIR`` and a clear message (exit 2 / 1) for a bad config or a worker that died.
    A sibling project passes its own ``run`` and config loader."""
    args = parse_args(argv)
    try:
        # one writer per OUTPUT_DIR, held by the launching process for the run's whole life
        output_dir = load(args.config_file, args.opts).OUTPUT_DIR
        with OutputDirLock(output_dir):
            launch(run, args.num_gpus, num_machines=args.num_machines,
                   machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))
    except RunInterrupted as e:
        return _interrupted(e, argv)
    except KeyboardInterrupt:  # before training started, or a second Ctrl-C
        print("stopped (SIGINT); the checkpoints written so far are kept", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        return _error(e, 2)
    except ENVIRONMENT_ERRORS as e:
        return _error(e, 1)
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


def parse_args(argv=None):
    """fast-reid's arguments; its flags may also stand after the config overrides."""
    return parse_args_anywhere(default_argument_parser(), sys.argv[1:] if argv is None else argv)


def _error(e: BaseException, code: int) -> int:
    if os.environ.get("RGANET_TRACEBACK", "") not in ("", "0"):
        traceback.print_exception(e)
    msg = str(e).strip() or type(e).__name__
    if isinstance(e, FloatingPointError):  # fast-reid's NaN check: its first line, and a hint
        msg = (f"{msg.splitlines()[0]} The training diverged: lower SOLVER.BASE_LR (or enable "
               f"SOLVER.CLIP_GRADIENTS); the checkpoints written so far are kept.")
    print(f"error: {msg}", file=sys.stderr)
    return code


def _interrupted(e: RunInterrupted, argv=None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if "--resume" not in words:
        words.append("--resume")
    if argv is None:
        exe = os.path.relpath(sys.executable)
        entry = [sys.executable if exe.startswith("..") else exe, os.path.relpath(sys.argv[0])]
    else:
        entry = ["python", "-m", "rganet_plugin.tools", "train"]
    cmd = " ".join(shlex.quote(w) for w in entry + words)
    where = f"checkpoint written to {e.checkpoint}" if e.checkpoint else "no checkpoint written"
    print(f"stopped ({signal.Signals(e.signum).name}) after {e.iterations} iterations (in epoch "
          f"{e.epoch + 1}): {where}. To go on: {cmd}", file=sys.stderr, flush=True)
    return 128 + e.signum


def _exit_reason(e) -> str:
    if getattr(e, "signal_name", None):
        return f"signal {e.signal_name}"
    return f"exit code {getattr(e, 'exit_code', '?')}"
