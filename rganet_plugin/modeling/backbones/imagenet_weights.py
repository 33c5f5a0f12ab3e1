"""ImageNet weights for fast-reid's own backbones, from a local file only.

fast-reid's backbone builders (ResNet / ResNet-ibn, OSNet, ViT, ...) read
``MODEL.BACKBONE.PRETRAIN_PATH`` with ``torch.load`` and load it with ``strict=False``; with no
path they import ``gdown`` and download. Both fail quietly or loudly in ways a user cannot act on:

* no path: ``ImportError: No module named 'gdown'`` (or a download that cannot happen offline);
* a checkpoint wrapped as ``{'state_dict': ...}`` / ``{'model': ...}`` or saved from
  ``DataParallel`` (``module.`` prefixes) loads *nothing*, and training goes on from random
  weights after a few log lines.

:func:`build_with_imagenet_weights` runs a fast-reid builder so that

* ``PRETRAIN True`` with no path raises :class:`ImageNetWeightsError` naming the file to fetch
  (the one fast-reid would have downloaded) and the key to set;
* the common wrappings are undone (:func:`read_backbone_state`) before fast-reid's own loading
  code runs (so its key surgery, e.g. the ViT's position-embedding resize, still applies);
* a file of which most of the backbone's tensors did not load is refused, naming the keys the
  backbone expected and the keys the file has.

``rganet_plugin.compat`` (patch ``backbone_weights``) puts this around every backbone builder
fast-reid registers in ``BACKBONE_REGISTRY``.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Callable, Dict, Optional

import torch

from ...config.setup import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["ImageNetWeightsError", "MIN_LOADED_FRACTION", "build_with_imagenet_weights",
           "expected_weights_file", "read_backbone_state"]

#: A file is refused when fewer than this fraction of the backbone's tensors are found in it.
MIN_LOADED_FRACTION = 0.5

_WRAPPER_KEYS = ("state_dict", "model", "model_state", "net", "network", "module")

# fast-reid's ViT builder has no download; its upstream recipe (configs/Market1501/
# bagtricks_vit.yml) points PRETRAIN_PATH at timm's ImageNet-21k/1k ViT-B/16.
_VIT_FILE = ("jx_vit_base_p16_224-80ecf9dd.pth",
             "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-vitjx/"
             "jx_vit_base_p16_224-80ecf9dd.pth")


class ImageNetWeightsError(ConfigError):
    """ImageNet weights that cannot be used (absent, unreadable, or not this backbone's)."""


def expected_weights_file(builder_name: str, cfg) -> Optional[tuple]:
    """``(file name, URL)`` of the ImageNet weights fast-reid would fetch for this backbone, or
    ``None`` when fast-reid names none."""
    b = cfg.MODEL.BACKBONE
    if builder_name == "build_resnet_backbone":
        from fastreid.modeling.backbones import resnet

        key = b.DEPTH
        if b.WITH_IBN:
            key = "ibn_" + key
        if b.WITH_SE:
            key = "se_" + key
        url = resnet.model_urls.get(key)
        return (url.rsplit("/", 1)[-1], url) if url else None
    if builder_name == "build_osnet_backbone":
        from fastreid.modeling.backbones import osnet

        key = ("osnet_ibn_" if b.WITH_IBN else "osnet_") + b.DEPTH
        url = osnet.model_urls.get(key)
        return (f"{key}_imagenet.pth", url) if url else None
    if builder_name == "build_vit_backbone":
        return _VIT_FILE
    return None


def _missing_path_message(builder_name: str, cfg) -> str:
    known = expected_weights_file(builder_name, cfg)
    what = (f"fetch {known[0]} ({known[1]})" if known
            else f"fetch the ImageNet weights of {builder_name}")
    return (f"MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty, and "
            f"nothing is downloaded at run time: {what}, put it on this machine and set "
            f"MODEL.BACKBONE.PRETRAIN_PATH to its path, or set MODEL.BACKBONE.PRETRAIN False "
            f"to train from scratch")


def _load_file(path: str):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (a pickle with more than tensors, or not a checkpoint)
        weights_only_error = e
    try:  # e.g. torchvision-era files with numpy scalars next to the weights
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise ImageNetWeightsError(
            f"MODEL.BACKBONE.PRETRAIN_PATH {path} cannot be read as a PyTorch or safetensors "
            f"checkpoint: {e} (weights-only load: {weights_only_error})") from None


def _is_state(d) -> bool:
    return isinstance(d, Mapping) and len(d) > 0 and all(
        isinstance(v, torch.Tensor) for v in d.values())


def read_backbone_state(path: str) -> Dict[str, torch.Tensor]:
    """The tensors of a backbone checkpoint, with the common wrappings undone.

    Accepted: a plain state dict; one nested under ``state_dict`` / ``model`` / ``model_state`` /
    ``net`` / ``network`` / ``module`` (at any depth, as training scripts save them, next to
    optimizer state and epoch counters); keys prefixed with ``module.`` (``DataParallel`` /
    ``DistributedDataParallel``); ``.safetensors`` files.
    """
    if not os.path.isfile(path):
        raise ImageNetWeightsError(f"MODEL.BACKBONE.PRETRAIN_PATH {path} does not exist")
    d = _load_file(path)
    for _ in range(4):
        if _is_state(d) or not isinstance(d, Mapping):
            break
        inner = next((d[k] for k in _WRAPPER_KEYS if isinstance(d.get(k), Mapping)), None)
        if inner is None:
            break
        d = inner
    if not isinstance(d, Mapping):
        raise ImageNetWeightsError(
            f"MODEL.BACKBONE.PRETRAIN_PATH {path} holds a {type(d).__name__}, not a state dict")
    state = {k: v for k, v in d.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ImageNetWeightsError(
            f"MODEL.BACKBONE.PRETRAIN_PATH {path} has no tensors (top-level keys: "
            f"{sorted(map(str, d))[:8]}); expected a backbone state dict, possibly under "
            f"one of {list(_WRAPPER_KEYS)}")
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _backbone_keys(model: torch.nn.Module):
    return [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]


def build_with_imagenet_weights(builder: Callable, cfg, builder_name: Optional[str] = None):
    """Run fast-reid's backbone ``builder(cfg)`` with the checks described in the module doc."""
    name = builder_name or getattr(builder, "__name__", "backbone")
    b = cfg.MODEL.BACKBONE
    if not b.PRETRAIN:
        return builder(cfg)
    path = str(b.PRETRAIN_PATH)
    if not path:
        raise ImageNetWeightsError(_missing_path_message(name, cfg))
    if not os.path.isfile(path):
        known = expected_weights_file(name, cfg)
        raise ImageNetWeightsError(
            f"MODEL.BACKBONE.PRETRAIN_PATH {path} does not exist (nothing is downloaded at run "
            f"time): "
            + (f"fetch {known[0]} ({known[1]}) to that path" if known
               else f"put the ImageNet weights of {name} there")
            + ", or set MODEL.BACKBONE.PRETRAIN False to train from scratch")
    state = read_backbone_state(path)
    raw_keys = set(state)
    with tempfile.TemporaryDirectory(prefix="rganet-imagenet-") as tmp:
        # fast-reid reads the path itself; give it the unwrapped tensors under the same file
        # name (its ViT builder looks at the name), so its own key surgery still runs.
        local = os.path.join(tmp, os.path.basename(path).replace(".safetensors", ".pth"))
        torch.save(state, local)
        c = cfg.clone()
        c.defrost()
        c.MODEL.BACKBONE.PRETRAIN_PATH = local
        try:
            model = builder(c)
        except RuntimeError as e:
            if "size mismatch" not in str(e):
                raise
            raise ImageNetWeightsError(
                f"MODEL.BACKBONE.PRETRAIN_PATH {path} does not fit {name} "
                f"(DEPTH {b.DEPTH}, WITH_IBN {b.WITH_IBN}): {str(e).strip().splitlines()[-1]}"
            ) from None
    expected = _backbone_keys(model)
    loaded = [k for k in expected if k in raw_keys]
    fraction = len(loaded) / max(len(expected), 1)
    if fraction < MIN_LOADED_FRACTION:
        missing = [k for k in expected if k not in raw_keys]
        raise ImageNetWeightsError(
            f"MODEL.BACKBONE.PRETRAIN_PATH {path}: only {len(loaded)} of the {len(expected)} "
            f"tensors {name} (DEPTH {b.DEPTH}, WITH_IBN {b.WITH_IBN}) expects are in it, so "
            f"training would start from random weights. Expected keys like "
            f"{missing[:5]}; the file has keys like {sorted(raw_keys)[:5]}. Use the ImageNet "
            f"file of this backbone"
            + (f" ({expected_weights_file(name, cfg)[0]})" if expected_weights_file(name, cfg)
               else ""))
    logger.info("ImageNet weights %s: %d of %d backbone tensors loaded (%.0f%%)", path,
                len(loaded), len(expected), 100 * fraction)
    return model
