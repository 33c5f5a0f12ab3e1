"""fast-reid's ``Checkpointer``, checking that a checkpoint belongs to the model before loading it.

fast-reid's ``Checkpointer`` logs missing and unexpected keys and carries on, so a checkpoint of
another model silently evaluates a half-random network. :class:`ModelCheckpointer` is that
checkpointer (saving, ``last_checkpoint``, optimizer and scheduler state are fast-reid's) with a
check before the weights are applied, raising :class:`CheckpointMismatchError` naming the keys:

* ``strict=True`` (evaluation, the tools): every key must be present, known and of the same shape;
* ``strict=False`` (training from ``MODEL.WEIGHTS``, resuming): shapes must agree and the
  checkpoint must share parameters with the model; keys the checkpoint lacks (e.g. a region head
  when starting from a baseline) are reported as a warning and keep their initialisation.

Keys only the prompt-learning stage has (``prompts.*``, ``text_tower.*``) are not expected of the
ReID model that starts from its checkpoint. A file is read once (:func:`read_checkpoint`, through
fast-reid's reader): the evaluation entry points read it, fill in what the config leaves to the
training set (:func:`complete_cfg_from_checkpoint`), build the model and load the same dict.

Saving (fast-reid's ``save`` wrote ``model_final.pth`` in place: a full disk cut the previous file
and said only ``enforce fail at inline_container.cc``): every checkpoint and the
``last_checkpoint`` tag are written to a temporary file next to the target and renamed over it
(:func:`write_atomically`); a write that fails removes the temporary file, leaves the previous
checkpoint as it was and raises :class:`CheckpointWriteError` naming the file and the cause.
"""
from __future__ import annotations

import errno
import io
import logging
import os
from typing import Any, Dict, Optional

import torch
from fastreid.utils.checkpoint import Checkpointer

from ..modeling.meta_arch.prompt_learner import PROMPT_STAGE_KEYS

logger = logging.getLogger(__name__)

# keys the ReID model does not expect of a checkpoint: the prompt learner's own, and the prompt
# module the region head held in checkpoints written before the stage split
NOT_EXPECTED = PROMPT_STAGE_KEYS + ("region_head.prompts.",)


class CheckpointMismatchError(RuntimeError):
    pass


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (disk full, file-size limit, permissions)."""


_CAUSES = {errno.ENOSPC: "the disk is full (no space left on device)",
           errno.EFBIG: "the file is larger than the file-size limit",
           errno.EDQUOT: "the disk quota is exceeded",
           errno.EACCES: "permission denied", errno.EROFS: "the file system is read-only"}


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``<path>.tmp-<pid>`` and a rename: ``path`` holds either
    its previous content or all of ``data``, never a part. Raises :class:`CheckpointWriteError`."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        cause = _CAUSES.get(e.errno, e.strerror or str(e))
        kept = ("the previous file is unchanged" if os.path.exists(path)
                else "no earlier file of that name")
        err = CheckpointWriteError(
            f"cannot write {path}: {cause} ({len(data) / 2**20:.1f} MiB to write); {kept}. "
            f"Free some space (or raise the limit) and rerun with --resume.")
        err.errno = e.errno
        raise err from e


def read_checkpoint(path: str) -> Dict[str, Any]:
    """The checkpoint dict of ``path`` (``{"model": state dict, ...}``), read once with
    fast-reid's reader; a bare state dict is wrapped, ``module.`` prefixes are stripped."""
    if not path or not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path!r} (MODEL.WEIGHTS)")
    try:
        obj = Checkpointer._load_file(None, path)  # reads the file only (patched in compat)
    except Exception as e:
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {e}") from e
    if isinstance(obj, dict) and "model" not in obj and obj and \
            all(isinstance(v, torch.Tensor) for v in obj.values()):
        obj = {"model": obj}
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise CheckpointMismatchError(f"{path} holds no model state dict")
    obj["model"] = {k[len("module."):] if k.startswith("module.") else k: v
                    for k, v in obj["model"].items()}
    return obj


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


def check_state(model: torch.nn.Module, state: Dict[str, Any], source: str,
                strict: bool = True) -> None:
    """Raise :class:`CheckpointMismatchError` when ``state`` does not belong to ``model``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not k.startswith(NOT_EXPECTED)]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape")
              and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if shapes:
        problems.append(f"shape mismatches (checkpoint vs model): {_summ(shapes, 5)}")
    if len(own) - len(missing) == 0:
        problems.append("no parameter in common with this model")
    if strict and missing:
        problems.append(f"missing keys: {_summ(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys: {_summ(unexpected)}")
    if problems:
        raise CheckpointMismatchError(
            f"{source} does not belong to this model ({type(model).__name__}, "
            f"check MODEL.META_ARCHITECTURE / BACKBONE / RGANET.REGION_MODE / CLASS_NAMES):\n  "
            + "\n  ".join(problems))
    if missing:
        logger.warning("%s lacks %d keys of the model, which keep their initialisation: %s",
                       source, len(missing), _summ(missing))


class ModelCheckpointer(Checkpointer):
    """fast-reid's ``Checkpointer`` that runs :func:`check_state` before applying weights."""

    def __init__(self, model: torch.nn.Module, save_dir: str = "", *, strict: bool = True,
                 save_to_disk: bool = True, **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.strict = strict
        self._source = "checkpoint"

    @classmethod
    def like(cls, other: Checkpointer, strict: bool = False) -> "ModelCheckpointer":
        """The same checkpointer (model, folder, optimizer, scheduler), with the check."""
        return cls(other.model, other.save_dir, strict=strict, save_to_disk=other.save_to_disk,
                   **other.checkpointables)

    def load(self, path: str, checkpointables: Optional[list] = None):
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint not found: {path!r} (MODEL.WEIGHTS)")
        self._source = path
        return super().load(path, checkpointables)

    def load_checkpoint(self, checkpoint: Dict[str, Any], source: str = "checkpoint") -> None:
        """Apply an already read checkpoint dict (model weights only)."""
        self._source = source
        incompatible = self._load_model(dict(checkpoint))
        if incompatible is not None:
            self._log_incompatible_keys(incompatible)

    def save(self, name: str, **kwargs: Any) -> None:
        """fast-reid's ``save`` (same content and log line), written atomically."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info("Saving checkpoint to %s", save_file)
        buf = io.BytesIO()
        torch.save(data, buf)
        write_atomically(save_file, buf.getvalue())
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        write_atomically(os.path.join(self.save_dir, "last_checkpoint"),
                         last_filename_basename.encode())

    def _load_file(self, f: str):
        return read_checkpoint(f)

    def _load_model(self, checkpoint: Any):
        check_state(self.model, checkpoint["model"], self._source, self.strict)
        return super()._load_model(checkpoint)
