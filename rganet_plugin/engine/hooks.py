"""Training hooks: the memory bank (eq. 5), the prompt-stage prototype cache, stopping on
SIGINT / SIGTERM with a checkpoint, and the one console line per epoch."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional

import torch
from fastreid.engine.train_loop import HookBase
from fastreid.utils import comm
from fastreid.utils.events import get_event_storage
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


def unwrap(model):
    return model.module if isinstance(model, DistributedDataParallel) else model


class MemoryBankHook(HookBase):
    """Starts and reports the region-class centres ``C_j`` of
    :class:`~rganet_plugin.modeling.heads.MemoryBank` (the region head updates them, eq. 5).

    * ``before_train``: unless the bank was restored from a checkpoint, one forward pass over the
      training set (test transforms, no gradients) with fixed-stripe region features gives the
      initial centres (the paper: RGM regions are not meaningful yet). Each process handles its
      shard; sums and counts are reduced over all processes.
    * ``after_epoch``: the per-class count of regions that passed the ``alpha > ALPHA_THRESH``
      filter in the epoch, as TensorBoard scalars (``rganet/memory_selected_epoch/<class>``) and one
      JSON line per epoch in ``OUTPUT_DIR/memory_bank.jsonl`` (read by ``benchmarks/mechanism.py``).
      The per-step scalars (``rganet/memory_drift``, ``rganet/memory_selected[/<class>]``) come
      from the head.
    """

    LOG_NAME = "memory_bank.jsonl"

    def __init__(self, build_init_loader: Callable, init_mode: str = "stripes",
                 max_images: int = 0):
        self.build_init_loader = build_init_loader
        self.init_mode = init_mode
        self.max_images = max_images

    def before_train(self):
        head = region_head_of(self.trainer.model)
        if head is None:
            return
        log = os.path.join(self.trainer.cfg.OUTPUT_DIR or ".", self.LOG_NAME)
        if self.trainer.start_iter == 0 and comm.is_main_process() and os.path.isfile(log):
            os.remove(log)  # a fresh run starts a fresh log; a resumed one appends
        head.memory.take_counts()
        if bool(head.memory.initialized):
            logger.info("Memory bank restored from the checkpoint (%d updates so far)",
                        int(head.memory.num_updates))
            return
        self.initialize(unwrap(self.trainer.model))

    @torch.no_grad()
    def initialize(self, model) -> None:
        head = model.region_head
        loader = self.build_init_loader()
        was_training = model.training
        model.eval()
        n, d = head.num_regions, head.dim
        dev = model.device
        feat_sum = torch.zeros(n, d, dtype=torch.float64, device=dev)
        count = torch.zeros(n, dtype=torch.float64, device=dev)
        seen = 0
        for batch in loader:
            images = model.preprocess_image(batch)
            fmap, _ = model.extract(images, model.camera_ids(batch))
            if self.init_mode == "stripes":
                feats = head.stripe_features(fmap)
            else:
                feats = head(fmap)["region_feats"]
            feat_sum += feats.double().sum(dim=0)
            count += feats.shape[0]
            seen += feats.shape[0]
            if self.max_images and seen * comm.get_world_size() >= self.max_images:
                break
        head.memory.initialize(feat_sum, count)
        model.train(was_training)
        logger.info("Memory bank initialised from %s features of %d images (this process)",
                    self.init_mode, seen)

    def after_epoch(self):
        head = region_head_of(self.trainer.model)
        if head is None:
            return
        counts, seen = head.memory.take_counts()
        if not comm.is_main_process() or seen == 0:
            return
        storage = get_event_storage()
        for name, c in zip(head.class_names, counts.tolist()):
            storage.put_scalar(f"rganet/memory_selected_epoch/{name.replace(' ', '_')}", c,
                               smoothing_hint=False)
        out_dir = self.trainer.cfg.OUTPUT_DIR
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            line = {"epoch": int(self.trainer.epoch), "iter": int(self.trainer.iter),
                    "classes": list(head.class_names), "selected": [int(c) for c in counts],
                    "images": int(seen), "alpha_thresh": float(head.memory.alpha_thresh)}
            with open(os.path.join(out_dir, self.LOG_NAME), "a") as f:
                f.write(json.dumps(line) + "\n")


class PromptCacheHook(HookBase):
    """Prompt-learning stage: after each epoch (before the checkpointer runs) and at the end,
    recompute the cached prototypes from the learned context, so every saved checkpoint carries
    prototypes that match its context vectors and stage 2 never needs the text tower."""

    def _refresh(self):
        unwrap(self.trainer.model).refresh_prototypes()

    def after_epoch(self):
        self._refresh()

    def after_train(self):
        self._refresh()


def region_head_of(model) -> Optional[torch.nn.Module]:
    return getattr(unwrap(model), "region_head", None)


class RunInterrupted(KeyboardInterrupt):
    """The run stopped on signal ``signum`` after ``iterations`` iterations (``epoch`` is the
    epoch it stopped in, 0-based) and wrote ``checkpoint``."""

    def __init__(self, signum: int, checkpoint: Optional[str], epoch: int, iterations: int):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.checkpoint, self.epoch, self.iterations = \
            signum, checkpoint, epoch, iterations


def rng_state() -> dict:
    """The random states of this process (torch, CUDA, numpy, Python)."""
    import random

    import numpy as np

    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "random": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StopOnSignalHook(HookBase):
    """SIGINT (Ctrl-C) or SIGTERM: the current iteration finishes, a checkpoint is written
    (``model_interrupted.pth``, atomically, and tagged as the last one) and
    :class:`RunInterrupted` ends the run. A second signal stops at once.

    fast-reid resumes at epoch granularity (``start_epoch = checkpoint["epoch"] + 1``): a stop
    inside epoch ``e`` records ``epoch = e - 1`` plus the iterations done and the random states,
    and ``RGANetTrainer`` goes on at the next iteration of ``e`` (the data stream and the random
    states continue where they stopped); a stop at the end of an epoch (the signal came during its
    last iteration) records ``e`` after the epoch's evaluation and checkpoint hooks ran. Only single-process runs (processes of a multi-process run would stop at different
    iterations, inside collectives) install the handlers; they are the previous ones again after
    training.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    NAME = "model_interrupted"

    def __init__(self):
        self._signum = None
        self._previous = {}

    def before_train(self):
        self._signum = None
        if threading.current_thread() is not threading.main_thread():
            return
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)

    def _handle(self, signum, frame):
        if self._signum is not None:  # asked twice: stop now
            self._restore()
            raise KeyboardInterrupt
        self._signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this iteration and writing a "
              f"checkpoint (again to stop at once, without one)", file=sys.stderr, flush=True)

    def _restore(self):
        for s, h in self._previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._previous = {}

    def after_step(self):
        tr = self.trainer
        last_of_epoch = (tr.iter + 1) % tr.iters_per_epoch == 0
        if self._signum is not None and not last_of_epoch:
            self._stop(epoch_done=tr.epoch - 1, iterations=tr.iter + 1)

    def after_epoch(self):  # registered last: the epoch's checkpoint and evaluation ran
        if self._signum is not None and self.trainer.epoch < self.trainer.max_epoch - 1:
            # (after the last epoch the run is done anyway)
            self._stop(epoch_done=self.trainer.epoch, iterations=self.trainer.iter)

    def _stop(self, epoch_done: int, iterations: int):
        tr = self.trainer
        # `iteration` and `rng` let RGANetTrainer resume at this very iteration
        tr.checkpointer.save(self.NAME, epoch=epoch_done, iteration=iterations, rng=rng_state())
        path = os.path.join(tr.checkpointer.save_dir, self.NAME + ".pth") \
            if tr.checkpointer.save_dir else None
        signum, self._signum = self._signum, None
        raise RunInterrupted(signum, path, int(tr.epoch), int(iterations))

    def after_train(self):
        self._restore()


PROGRESS_LOGGER = "rganet_plugin.progress"


class EpochLineHook(HookBase):
    """One line per epoch on the logger ``rganet_plugin.progress`` (the quiet console shows it):
    the epoch, the mean total loss over the epoch, the learning rate and the epoch's time."""

    def __init__(self, stage: str = ""):
        self.stage = stage
        self._log = logging.getLogger(PROGRESS_LOGGER)

    def before_epoch(self):
        self._t0 = time.perf_counter()

    def after_epoch(self):
        tr = self.trainer
        storage = get_event_storage()
        parts = [f"{self.stage}epoch {tr.epoch + 1}/{tr.max_epoch}"]
        hist = storage.histories()
        if "total_loss" in hist:
            parts.append(f"loss {hist['total_loss'].avg(tr.iters_per_epoch):.4g}")
        if "lr" in hist:
            parts.append(f"lr {hist['lr'].latest():.2e}")
        parts.append(f"{time.perf_counter() - self._t0:.1f} s")
        self._log.info("  ".join(parts))
