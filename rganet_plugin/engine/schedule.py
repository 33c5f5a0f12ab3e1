"""The solver schedule: refused before training when it cannot run, made to mean what it says,
and summarised at the start of every run.

fast-reid builds two schedulers (``fastreid.solver.build_lr_scheduler``): a per-iteration warm-up
(``WarmupLR``) and a per-epoch one (``MultiStepLR`` / ``CosineAnnealingLR``), which its
``LRScheduler`` hook steps at the end of epoch ``e`` only when ``(e + 1) * iters_per_epoch >=
WARMUP_ITERS`` and ``e >= DELAY_EPOCHS``. The per-epoch scheduler counts only the epoch ends at
which it is stepped, so in fast-reid a milestone of ``SOLVER.STEPS`` takes effect
:func:`held_epochs` epochs later than written (FIRe²'s PRCC recipe, 10 warm-up epochs, would
decay at epoch 30 of 30: never). Here ``SOLVER.STEPS`` are the epochs (counted from 0, like the
checkpoint names) from which the rate is decayed: :func:`build_lr_scheduler` hands fast-reid the
milestones shifted by :func:`held_epochs`. The cosine schedule is fast-reid's (it anneals over
``MAX_EPOCH`` minus the warm-up / delay epochs, from where the warm-up / delay ends).

:func:`check_schedule` refuses (:class:`~rganet_plugin.config.setup.ConfigError`, one line naming
the keys and a value that works) what cannot run and returns one-line warnings for what runs but
does less than written; :func:`schedule_summary` is the block every run logs at its start
(:class:`ScheduleMixin`, mixed into every trainer of the project).
"""
from __future__ import annotations

import logging
import math
import types
import warnings
from typing import List, Optional, Sequence

import torch
from fastreid.engine import hooks as fastreid_hooks
from fastreid.solver import build_lr_scheduler as fastreid_build_lr_scheduler
from fastreid.utils import comm

from ..config.setup import ConfigError
from ..modeling.meta_arch.prompt_learner import is_prompt_stage

logger = logging.getLogger(__name__)

__all__ = ["warmup_epochs", "held_epochs", "check_schedule", "build_lr_scheduler", "lr_per_epoch", "schedule_summary", "ScheduleMixin"]

COSINE = "CosineAnnealingLR"
MULTISTEP = "MultiStepLR"


def warmup_epochs(cfg, iters_per_epoch: int) -> int:
    """Epochs that hold warm-up iterations (fast-reid subtracts this many from a cosine's span)."""
    w = cfg.SOLVER.WARMUP_ITERS
    return math.ceil(w / iters_per_epoch) if w > 0 else 0


def held_epochs(cfg, iters_per_epoch: int) -> int:
    """Epoch ends at which fast-reid's ``LRScheduler`` hook does not step the per-epoch scheduler:
    those that end inside the warm-up, and the first ``DELAY_EPOCHS``."""
    return max(warmup_epochs(cfg, iters_per_epoch) - 1, cfg.SOLVER.DELAY_EPOCHS, 0)


def _epochs(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


def _at_most(key: str, value: int) -> str:
    return f"{key} {value}" + (" (or less)" if value > 0 else "")


def check_schedule(cfg, iters_per_epoch: Optional[int] = None,
                   evaluates: Optional[bool] = None) -> List[str]:
    """Refuse a schedule that cannot run (``ConfigError``); return one-line warnings for one that
    runs but does less than written. ``iters_per_epoch`` (known once the training set is built)
    adds the checks that need it; ``evaluates`` (default: not a stage-1 config) whether the run
    has fast-reid's evaluation hook."""
    s = cfg.SOLVER
    if evaluates is None:
        evaluates = not is_prompt_stage(cfg)
    ipe = iters_per_epoch  # (MAX_EPOCH >= 1: config.setup.validate)
    if ipe is not None and ipe < 1:
        raise ConfigError(
            f"the training set is smaller than one batch of SOLVER.IMS_PER_BATCH "
            f"{s.IMS_PER_BATCH}: an epoch would have no iteration. Lower SOLVER.IMS_PER_BATCH "
            f"or use more training images.")
    periods = [("SOLVER.CHECKPOINT_PERIOD", s.CHECKPOINT_PERIOD, "checkpoints")]
    if evaluates:
        periods.append(("TEST.EVAL_PERIOD", cfg.TEST.EVAL_PERIOD, "evaluations"))
    for key, period, what in periods:
        if period < 1:  # fast-reid's hooks divide by it: a crash after an epoch / at the end
            raise ConfigError(
                f"{key} must be >= 1 (epochs between {what}), got {period}. Use {key} "
                f"{s.MAX_EPOCH} for {what} at the end of the run only.")
    # warm-up epochs: exact with iters_per_epoch; without it, a warm-up takes at least one epoch
    w_epochs = warmup_epochs(cfg, ipe) if ipe else (1 if s.WARMUP_ITERS > 0 else 0)
    warmup = (f"the warm-up (SOLVER.WARMUP_ITERS {s.WARMUP_ITERS}"
              + (f" at {ipe} iterations per epoch)" if ipe else ")"))
    w_text = (f"the {w_epochs} epoch{'s' * (w_epochs != 1)} of {warmup}" if ipe
              else f"{warmup}, at least 1 epoch")
    if s.SCHED == COSINE:
        span = s.MAX_EPOCH - max(w_epochs, s.DELAY_EPOCHS)
        if span < 1:
            delay_binds = s.DELAY_EPOCHS >= w_epochs
            fixes = [f"SOLVER.MAX_EPOCH {max(w_epochs, s.DELAY_EPOCHS) + 1} (or more)"]
            if w_epochs <= s.MAX_EPOCH - 1:  # the delay is what leaves no epoch
                fixes.append(_at_most("SOLVER.DELAY_EPOCHS", s.MAX_EPOCH - 1))
            if s.DELAY_EPOCHS <= s.MAX_EPOCH - 1:  # the warm-up is
                fixes.append(_at_most("SOLVER.WARMUP_ITERS", (s.MAX_EPOCH - 1) * (ipe or 0)))
            if len(fixes) == 1:  # both: neither alone is enough
                fixes.append(_at_most("SOLVER.DELAY_EPOCHS", s.MAX_EPOCH - 1) + " with "
                             + _at_most("SOLVER.WARMUP_ITERS", (s.MAX_EPOCH - 1) * (ipe or 0)))
            cause = (f"SOLVER.DELAY_EPOCHS {s.DELAY_EPOCHS}" if s.DELAY_EPOCHS >= w_epochs
                     else w_text)
            raise ConfigError(
                f"SOLVER.SCHED {COSINE} has no epoch left to anneal over: SOLVER.MAX_EPOCH "
                f"{s.MAX_EPOCH} minus {cause} leaves {span}. Use " + " or ".join(fixes) + ".")
    warns = []
    if s.SCHED == MULTISTEP:
        if any(m < 1 for m in s.STEPS):
            raise ConfigError(
                f"SOLVER.STEPS {list(s.STEPS)}: steps are the epochs (counted from 0) from which "
                f"the rate is decayed, the first possible is 1. Use steps >= 1.")
        held = held_epochs(cfg, ipe) if ipe else max(s.DELAY_EPOCHS, 0)
        inside = sorted(m for m in s.STEPS if m <= held and m < s.MAX_EPOCH)
        if inside:
            first = min(inside)
            fixes = [f"SOLVER.STEPS with every step >= {held + 1}"]
            if s.DELAY_EPOCHS >= first:
                fixes.append(_at_most("SOLVER.DELAY_EPOCHS", first - 1))
            if ipe and warmup_epochs(cfg, ipe) - 1 >= first:
                fixes.append(_at_most("SOLVER.WARMUP_ITERS", first * ipe))
            cause = " and ".join(
                ([f"{warmup} lasts into epoch {warmup_epochs(cfg, ipe) - 1}"]
                 if ipe and warmup_epochs(cfg, ipe) - 1 >= first else [])
                + ([f"SOLVER.DELAY_EPOCHS {s.DELAY_EPOCHS} holds the rate"]
                   if s.DELAY_EPOCHS >= first else []))
            raise ConfigError(
                f"SOLVER.STEPS {_epochs(inside)} come before epoch {held + 1}, the first at "
                f"which the rate can decay: {cause}. Use " + " or ".join(fixes) + ".")
        beyond = sorted(m for m in s.STEPS if m >= s.MAX_EPOCH)
        if beyond:
            warns.append(f"SOLVER.STEPS {_epochs(beyond)} are not before SOLVER.MAX_EPOCH "
                         f"{s.MAX_EPOCH}: the rate never decays there")
    if ipe:
        total = s.MAX_EPOCH * ipe
        if s.WARMUP_ITERS >= total:
            warns.append(f"SOLVER.WARMUP_ITERS {s.WARMUP_ITERS} is not shorter than the run "
                         f"({total} iterations: SOLVER.MAX_EPOCH {s.MAX_EPOCH} x {ipe}): the rate "
                         f"never reaches SOLVER.BASE_LR")
        if len(cfg.MODEL.FREEZE_LAYERS) > 0 and s.FREEZE_ITERS >= total:
            warns.append(f"SOLVER.FREEZE_ITERS {s.FREEZE_ITERS} is not shorter than the run "
                         f"({total} iterations: SOLVER.MAX_EPOCH {s.MAX_EPOCH} x {ipe}): "
                         f"MODEL.FREEZE_LAYERS "
                         f"{list(cfg.MODEL.FREEZE_LAYERS)} are never trained")
    for key, period, what in periods:
        if period > s.MAX_EPOCH:
            warns.append(f"{key} {period} is longer than the run (SOLVER.MAX_EPOCH "
                         f"{s.MAX_EPOCH}): {what} only at its end")
    return warns


def build_lr_scheduler(cfg, optimizer, iters_per_epoch: int):
    """fast-reid's schedulers, after :func:`check_schedule`, with ``SOLVER.STEPS`` meaning the
    epochs from which the rate is decayed (milestones shifted by :func:`held_epochs`)."""
    check_schedule(cfg, iters_per_epoch)
    held = held_epochs(cfg, iters_per_epoch)
    if cfg.SOLVER.SCHED == MULTISTEP and held:
        cfg = cfg.clone()
        cfg.defrost()
        cfg.SOLVER.STEPS = [m - held for m in cfg.SOLVER.STEPS]
    return fastreid_build_lr_scheduler(cfg, optimizer, iters_per_epoch)


def lr_per_epoch(cfg, iters_per_epoch: int, build=build_lr_scheduler) -> List[float]:
    """The rate of ``SOLVER.BASE_LR``'s parameters at the first iteration of every epoch, from
    the schedulers ``build`` makes, stepped by fast-reid's own ``LRScheduler`` hook in the order
    of fast-reid's training loop (``TrainerBase.train``) on a one-parameter optimizer."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=cfg.SOLVER.BASE_LR)
    trainer = types.SimpleNamespace(
        iter=0, epoch=0, warmup_iters=cfg.SOLVER.WARMUP_ITERS,
        delay_epochs=cfg.SOLVER.DELAY_EPOCHS, grad_scaler=None,
        storage=types.SimpleNamespace(put_scalar=lambda *a, **k: None))
    out = []
    with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": no training
        warnings.simplefilter("ignore", UserWarning)
        hook = fastreid_hooks.LRScheduler(optimizer, build(cfg, optimizer, iters_per_epoch))
        hook.trainer = trainer
        for trainer.epoch in range(cfg.SOLVER.MAX_EPOCH):
            out.append(optimizer.param_groups[0]["lr"])
            for _ in range(iters_per_epoch):
                hook.after_step()
                trainer.iter += 1
            hook.after_epoch()
    return out


def _epoch_list(epochs: Sequence[int]) -> str:
    epochs = list(epochs)
    if len(epochs) == 1:
        return f"epoch {epochs[0]}"
    if len(epochs) > 6:
        return f"epochs {_epochs(epochs[:3])}, ..., {_epochs(epochs[-2:])}"
    return f"epochs {_epochs(epochs)}"


def _lr(x: float) -> str:
    return f"{x:.3g}"


def _lr_segments(lrs: Sequence[float], first: int) -> List[str]:
    """``lrs[first:]`` as runs of one rate, runs of single epochs merged into one
    'changes every epoch' line."""
    runs = []  # [start, end, lr]
    for e in range(first, len(lrs)):
        if runs and math.isclose(lrs[e], runs[-1][2], rel_tol=1e-9, abs_tol=0.0):
            runs[-1][1] = e
        else:
            runs.append([e, e, lrs[e]])
    lines, i = [], 0
    while i < len(runs):
        j = i  # runs[i:j]: consecutive single epochs
        while j < len(runs) and runs[j][0] == runs[j][1]:
            j += 1
        if j - i >= 3:
            lines.append(f"epochs {runs[i][0]}-{runs[j - 1][0]}: changes every epoch, "
                         f"{_lr(runs[i][2])} -> {_lr(runs[j - 1][2])}")
            i = j
            continue
        a, b, lr = runs[i]
        lines.append(f"{f'epoch {a}' if a == b else f'epochs {a}-{b}'}: {_lr(lr)}")
        i += 1
    return lines


def schedule_summary(cfg, iters_per_epoch: int, start_epoch: int = 0, evaluates: bool = True,
                     checkpoints: bool = True) -> str:
    """The effective schedule of a run: the rate per epoch (warm-up, the epochs at which it
    changes), the frozen layers, and the epochs after which checkpoints and evaluations happen
    (fast-reid's ``PeriodicCheckpointer`` / ``EvalHook`` rules). Epochs are counted from 0."""
    s, ipe = cfg.SOLVER, iters_per_epoch
    n, total = s.MAX_EPOCH, s.MAX_EPOCH * iters_per_epoch
    lrs = lr_per_epoch(cfg, ipe)
    head = (f"Schedule: {n} epoch{'s' * (n != 1)} x {ipe} iterations = {total} iterations "
            f"(epochs counted from 0), {s.SCHED}, learning rate of SOLVER.BASE_LR's parameters"
            + (f"; resuming at epoch {start_epoch}" if start_epoch else "") + ":")
    lines = []
    w = min(warmup_epochs(cfg, ipe), n)
    if w:
        end = min(s.WARMUP_ITERS, total)
        epochs = "epoch 0" if w == 1 else f"epochs 0-{w - 1}"
        lines.append(f"warm-up ({s.WARMUP_METHOD}): iterations 0-{end - 1} ({epochs}), "
                     f"{_lr(s.BASE_LR * s.WARMUP_FACTOR)} rising to {_lr(s.BASE_LR)}"
                     + ("" if s.WARMUP_ITERS < total else " (not reached in this run)"))
    lines += _lr_segments(lrs, w)
    if s.SCHED == MULTISTEP and s.STEPS:
        lines.append(f"SOLVER.STEPS {list(s.STEPS)}: the epochs from which the rate is "
                     f"x{s.GAMMA} (SOLVER.GAMMA)")
    if len(cfg.MODEL.FREEZE_LAYERS) > 0 and s.FREEZE_ITERS > 0:
        end = min(s.FREEZE_ITERS, total)
        lines.append(f"frozen {list(cfg.MODEL.FREEZE_LAYERS)}: iterations 0-{end - 1} "
                     f"(into epoch {(end - 1) // ipe})")
    if checkpoints:
        saved = [e for e in range(n - 1) if (e + 1) % s.CHECKPOINT_PERIOD == 0] + [n - 1]
        lines.append(f"checkpoints after {_epoch_list(saved)} (the last: model_final)")
    else:
        lines.append("checkpoints: none from this process")
    if evaluates:
        p = cfg.TEST.EVAL_PERIOD
        evals = [e for e in range(n) if (e + 1) % p == 0] + ([n - 1] if n % p else [])
        lines.append(f"evaluations after {_epoch_list(evals)}")
    else:
        lines.append("evaluations: none in this run")
    return "\n".join([head] + [f"  {x}" for x in lines])


class ScheduleMixin:
    """For a fast-reid ``DefaultTrainer`` subclass (``class T(ScheduleMixin, DefaultTrainer)``):
    its schedulers come from :func:`build_lr_scheduler` (checked, ``SOLVER.STEPS`` as written;
    the warnings logged), and :meth:`train` logs :func:`schedule_summary` first."""

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer, iters_per_epoch):
        for line in check_schedule(cfg, iters_per_epoch):
            logger.warning(line)
        return build_lr_scheduler(cfg, optimizer, iters_per_epoch)

    def train(self):
        if comm.is_main_process():
            hooks = self._hooks
            logger.info(schedule_summary(
                self.cfg, self.iters_per_epoch, self.start_epoch,
                evaluates=any(isinstance(h, fastreid_hooks.EvalHook) for h in hooks),
                checkpoints=any(isinstance(h, fastreid_hooks.PeriodicCheckpointer) for h in hooks)))
        return super().train()
