"""Checking that a checkpoint belongs to the model before fast-reid's (lenient) loader runs.

fast-reid's ``Checkpointer`` logs missing and unexpected keys and carries on, so a checkpoint of
another model silently evaluates a half-random network. We check first and raise
:class:`CheckpointMismatchError` naming the keys:

* evaluation (``strict=True``): every key must be present, known and of the same shape;
* training from ``MODEL.WEIGHTS`` (``strict=False``): shapes must agree and the checkpoint must
  share parameters with the model; keys the checkpoint lacks (e.g. a region head when starting
  from a baseline) are reported as a warning and keep their initialisation.
"""
from __future__ import annotations

import logging
import os
from typing import Dict

import torch

logger = logging.getLogger(__name__)


class CheckpointMismatchError(RuntimeError):
    pass


def read_model_state(path: str) -> Dict[str, torch.Tensor]:
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path!r} (MODEL.WEIGHTS)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {e}") from e
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f"{path} holds no model state dict")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def complete_cfg_from_checkpoint(cfg, state: Dict[str, torch.Tensor]) -> None:
    """Fill in what training derives from the training set and the config leaves at 0, from
    the checkpoint's shapes: ``MODEL.HEADS.NUM_CLASSES`` (the ID classifier) and
    ``MODEL.BACKBONE.CLIP.SIE.NUM_CAMERAS`` (the camera embedding). ``cfg`` must be unfrozen."""
    w = state.get("heads.weight")
    if cfg.MODEL.HEADS.NUM_CLASSES == 0 and w is not None:
        cfg.MODEL.HEADS.NUM_CLASSES = int(w.shape[0])
    sie = state.get("backbone.sie_embed")
    c = cfg.MODEL.BACKBONE.CLIP.SIE
    if sie is not None and c.ENABLED and c.NUM_CAMERAS <= 0:
        c.NUM_CAMERAS = int(sie.shape[0])


def _summ(keys, n=8):
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def check_checkpoint(model: torch.nn.Module, path: str, strict: bool = True) -> None:
    state = read_model_state(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    common = len(own) - len(missing)
    problems = []
    if shapes:
        problems.append(f"shape mismatches (checkpoint vs model): {_summ(shapes, 5)}")
    if common == 0:
        problems.append("no parameter in common with this model")
    if strict and missing:
        problems.append(f"missing keys: {_summ(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys: {_summ(unexpected)}")
    if problems:
        raise CheckpointMismatchError(
            f"{path} does not belong to this model ({type(model).__name__}, "
            f"check MODEL.META_ARCHITECTURE / BACKBONE / RGANET.REGION_MODE / CLASS_NAMES):\n  "
            + "\n  ".join(problems))
    if missing:
        logger.warning("%s lacks %d keys of the model, which keep their initialisation: %s",
                       path, len(missing), _summ(missing))
