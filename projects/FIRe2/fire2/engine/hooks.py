"""The once-per-epoch FFM step: extract the training features, cluster each identity, hand the
pseudo-labels and the re-initialised fine-grained classifier to the model and the optimizer, and
record what was found (:func:`~fire2.engine.ffm_report.ffm_report`) in the event storage
(``metrics.json``), the log and ``<OUTPUT_DIR>/fire2_ffm.json`` (one JSON line per epoch)."""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable, Dict, Optional

import torch
from fastreid.engine.train_loop import HookBase

from rganet_plugin.engine.hooks import unwrap  # noqa: F401  (also the trainer's)

from ..modeling.ffm import cluster_identities
from .ffm_report import ffm_report

logger = logging.getLogger(__name__)

__all__ = ["FIRe2EpochHook", "BestEvaluationHook", "swap_parameter", "extract_train_features"]


def swap_parameter(optimizer: torch.optim.Optimizer, old: torch.nn.Parameter,
                   new: torch.nn.Parameter) -> None:
    """Put ``new`` where ``old`` was in the optimizer's param groups (same lr / weight decay,
    fresh moments: the classes changed)."""
    for group in optimizer.param_groups:
        for i, p in enumerate(group["params"]):
            if p is old:
                group["params"][i] = new
                optimizer.state.pop(old, None)
                return
    raise RuntimeError("the fine-grained classifier's weight is not in the optimizer: build the "
                       "optimizer with contiguous=False (FIRe2Trainer does)")


@torch.no_grad()
def extract_train_features(model, loader):
    """BN features (eval mode), relabelled pids and paths of every training image, in order."""
    was_training = model.training
    model.eval()
    feats, pids, paths = [], [], []
    try:
        for batch in loader:
            feats.append(model(batch).float().cpu())
            pids.append(batch["targets"].cpu())
            paths.extend(batch["img_paths"])
    finally:
        model.train(was_training)
    return torch.cat(feats), torch.cat(pids), paths


class FIRe2EpochHook(HookBase):
    """``before_epoch``: tell the model the epoch (triplet / FAR switch on at their start epochs)
    and, from ``MODEL.FIRE2.FFM.START_EPOCH`` on, re-cluster (FFM).

    What each clustering found (``ffm_report``: number of fine-grained classes, clusters per
    identity and, given ``clothes`` (image path -> clothes id), the agreement with the outfits) is
    logged, appended to ``<output_dir>/fire2_ffm.json`` and put into the event storage as
    ``fire2/ffm_<key>`` at the epoch's first iteration (a scalar put in ``before_epoch`` would
    carry the previous epoch's last iteration, which the JSON writer has already written)."""

    def __init__(self, build_feature_loader: Callable, clothes: Optional[Dict[str, str]] = None,
                 output_dir: str = ""):
        self._build_loader = build_feature_loader
        self._loader = None
        self._clothes = clothes
        self._output_dir = output_dir
        self._pending: Optional[Dict[str, float]] = None

    def before_epoch(self):
        model = unwrap(self.trainer.model)
        epoch = self.trainer.epoch
        model.set_epoch(epoch)
        f = model.cfg.MODEL.FIRE2.FFM
        if not (model.ffm_enabled and epoch >= f.START_EPOCH):
            return
        if self._loader is None:
            self._loader = self._build_loader()
        t0 = time.perf_counter()
        feats, pids, paths = extract_train_features(model, self._loader)
        labels, centroids, pid_mask = cluster_identities(feats, pids.numpy(), f.K1, f.K2, f.EPS,
                                                         f.MIN_SAMPLES)
        old = model.set_fine_grained(paths, labels, centroids, pid_mask)
        swap_parameter(self.trainer.optimizer, old, model.ffm_classifier.weight)
        clothes = [self._clothes.get(p) for p in paths] if self._clothes else None
        report = ffm_report(labels, pids.numpy(), clothes)
        self._pending = report
        logger.info("FFM epoch %d (%.1fs): %s", epoch, time.perf_counter() - t0,
                    ", ".join(f"{k} {v:.3g}" for k, v in report.items()))
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "fire2_ffm.json"), "a") as fh:
                fh.write(json.dumps({"epoch": epoch, "iteration": self.trainer.iter, **report}) + "\n")

    def before_step(self):
        if self._pending is not None:
            self.trainer.storage.put_scalars(
                smoothing_hint=False, **{f"fire2/ffm_{k}": v for k, v in self._pending.items()})
            self._pending = None


class BestEvaluationHook(HookBase):
    """The released code's reporting rule beside the project's: the best of every Rank-1 / mAP
    result over the evaluations of the run (each its own maximum and epoch), logged at the end
    and written to ``<output_dir>/best_evaluation.json`` (``{key: {"value", "epoch"}}``). Put
    after fast-reid's ``EvalHook``, whose results it reads from the event storage."""

    def __init__(self, output_dir: str = ""):
        self._output_dir = output_dir
        self.best: Dict[str, Dict[str, float]] = {}

    def _read(self):
        for key, (value, _) in self.trainer.storage.latest().items():
            if not (key.endswith("/Rank-1") or key.endswith("/mAP")) or "chance" in key:
                continue
            if key not in self.best or value > self.best[key]["value"]:
                self.best[key] = {"value": float(value), "epoch": int(self.trainer.epoch)}

    def after_epoch(self):
        self._read()

    def after_train(self):
        self._read()
        if not self.best:
            return
        logger.info("best evaluation over training (the released code's rule; the final model's is "
                    "above): %s", ", ".join(f"{k} {v['value']:.2f} (epoch {v['epoch']})"
                                            for k, v in sorted(self.best.items())))
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "best_evaluation.json"), "w") as fh:
                json.dump(self.best, fh, indent=1, sort_keys=True)
