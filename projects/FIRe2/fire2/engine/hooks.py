"""The once-per-epoch FFM step: extract the training features, cluster each identity, hand the
pseudo-labels and the re-initialised fine-grained classifier to the model and the optimizer."""
from __future__ import annotations

import logging
import time
from typing import Callable

import torch
from fastreid.engine.train_loop import HookBase

from ..modeling.ffm import cluster_identities

logger = logging.getLogger(__name__)

__all__ = ["FIRe2EpochHook", "swap_parameter", "extract_train_features"]


def unwrap(model):
    return model.module if hasattr(model, "module") else model


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
    and, from ``MODEL.FIRE2.FFM.START_EPOCH`` on, re-cluster (FFM). Logs the number of
    fine-grained classes (``fire2/num_fg_classes``)."""

    def __init__(self, build_feature_loader: Callable):
        self._build_loader = build_feature_loader
        self._loader = None

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
        n = centroids.shape[0]
        self.trainer.storage.put_scalar("fire2/num_fg_classes", n, smoothing_hint=False)
        logger.info("FFM epoch %d: %d identities -> %d fine-grained classes (%.1fs)", epoch,
                    pid_mask.shape[0], n, time.perf_counter() - t0)
