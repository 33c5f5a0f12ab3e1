"""Building, validating and finishing a config."""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional, Sequence

import torch
import yaml
from fastreid.config import CfgNode, get_cfg

from .defaults import add_rganet_config
from .regions import num_regions

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config file or override that cannot be used, with the reason."""


def get_rganet_cfg() -> CfgNode:
    """fast-reid's defaults plus the plugin's keys."""
    return add_rganet_config(get_cfg())


def load_config(config_file: str = "", opts: Optional[Sequence[str]] = None,
                project: Sequence[Callable[[CfgNode], Any]] = ()) -> CfgNode:
    """Read a YAML config (with ``_BASE_`` inheritance) and command-line overrides.

    Unknown keys are rejected and named, e.g. ``unknown config key 'MODEL.RGANET.GAMA' in
    configs/x.yml``. ``project``: functions of a sibling project (``projects/FIRe2``) that add
    its keys to the config before it is read, and are called again with the read config to
    check it (``fn(cfg, check=True)``).
    """
    cfg = get_rganet_cfg()
    for add_keys in project:
        add_keys(cfg)
    if config_file:
        if not os.path.isfile(config_file):
            raise ConfigError(f"config file not found: {config_file}")
        try:
            cfg.merge_from_file(config_file)
        except KeyError as e:
            raise _unknown_key_error(e, f"in {config_file}") from None
        except (AssertionError, ValueError) as e:  # _BASE_ chain problems, yacs type checks
            raise ConfigError(f"cannot read {config_file}: {e}") from None
        except yaml.YAMLError as e:  # a syntax error in the file or in one of its _BASE_s
            raise ConfigError(f"cannot read {config_file}: YAML syntax error: "
                              f"{' '.join(str(e).split())}") from None
        except OSError as e:  # a _BASE_ that does not exist (or cannot be read)
            raise ConfigError(f"cannot read {config_file}: its _BASE_ {e.filename} "
                              f"{'does not exist' if isinstance(e, FileNotFoundError) else 'cannot be read'}"
                              f" ({e.strerror})") from None
    if opts:
        if len(opts) % 2:
            raise ConfigError(f"config overrides come in KEY VALUE pairs, got {list(opts)}")
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, AssertionError) as e:
            raise _unknown_key_error(e, "on the command line") from None
        except ValueError as e:  # yacs type check, e.g. an int given for a float key
            raise ConfigError(f"bad config override: {e}") from None
    validate(cfg)
    for add_keys in project:
        add_keys(cfg, check=True)
    if str(cfg.MODEL.DEVICE) == "auto":
        cfg.MODEL.DEVICE = auto_device()
    return cfg


def auto_device() -> str:
    """What ``MODEL.DEVICE auto`` means: ``cuda`` when a GPU is there, else ``cpu`` (quietly)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


#: Keys of earlier versions -> what replaced them (named in the error instead of "unknown key").
RENAMED_KEYS = {
    "MODEL.RGANET.LOSS.REGION_ID_SCALE": "MODEL.LOSSES.REGION_CE.SCALE",
    "MODEL.RGANET.LOSS.REGION_TRI_SCALE": "MODEL.LOSSES.REGION_TRI.SCALE",
    "MODEL.RGANET.LOSS.SEG_SCALE": "MODEL.LOSSES.SEG.SCALE",
    "MODEL.RGANET.PROMPT.STAGE1.SEG_TARGETS": "MODEL.LOSSES.SEG.TARGETS",
    "MODEL.RGANET.PROMPT.AUTO_STAGE1": "PROMPT_STAGE.AUTO",
    "MODEL.RGANET.PROMPT.STAGE1.MAX_EPOCH": "PROMPT_STAGE.MAX_EPOCH",
    "MODEL.RGANET.PROMPT.STAGE1.BASE_LR": "PROMPT_STAGE.BASE_LR",
    "MODEL.RGANET.PROMPT.STAGE1.STALE": "PROMPT_STAGE.STALE",
    "MODEL.RGANET.PSEUDO_MASKS.DIR": "DATASETS.PSEUDO_MASKS.DIR",
    "MODEL.RGANET.STAGE": "MODEL.META_ARCHITECTURE (stage 1 is 'RGANetPromptLearner', stage 2 "
                          "'RGANet')",
}


def _unknown_key_error(err: Exception, where: str) -> ConfigError:
    key = _key_of(err)
    bare = key.strip("'\"")
    if bare in RENAMED_KEYS:
        return ConfigError(f"config key {bare} {where} was renamed: use {RENAMED_KEYS[bare]}")
    # a file names the first unknown node, which may hold several renamed keys
    under = [f"{o} -> {n}" for o, n in RENAMED_KEYS.items() if o.startswith(bare + ".")]
    if under:
        return ConfigError(f"config node {bare} {where} was renamed: " + "; ".join(under))
    return ConfigError(f"unknown config key {key} {where}")


def _key_of(err: Exception) -> str:
    msg = str(err.args[0]) if err.args else str(err)
    # yacs: "Non-existent config key: MODEL.FOO" (files) / "Non-existent key: MODEL.FOO" (lists)
    if ":" in msg:
        return repr(msg.split(":", 1)[1].strip())
    return msg


_CHOICES = {
    "MODEL.RGANET.REGION_MODE": ("none", "stripes", "rgm"),
    "MODEL.RGANET.PROMPT.TYPE": ("template", "learnable"),
    "MODEL.RGANET.MEMORY.INIT": ("stripes", "regions"),
    "MODEL.BACKBONE.CLIP.GLOBAL_FEAT": ("gap", "cls"),
    "MODEL.BACKBONE.CLIP.DENSE_READOUT": ("tokens", "value", "value_only", "qqkk"),
    "DATASETS.CORRUPT_IMAGES": ("skip", "error", "off"),
    "TEST.RGANET.SEARCH": ("dense", "faiss"),
    "PROMPT_STAGE.STALE": ("rerun", "error"),
    "MODEL.RGANET.PROMPT.BACKGROUND_INIT": ("text", "random", "zeros"),
    "MODEL.RGANET.RAM.CONFIDENCE": ("softmax", "mean"),
    "MODEL.RGANET.MEMORY.MOMENTUM_READING": ("equation", "text"),
    "TEST.RGANET.FEATURES": ("bn", "pre_bn"),
    "MODEL.LOSSES.SEG.TARGETS": ("majority", "soft", "nearest"),
}


def validate(cfg: CfgNode) -> None:
    """Reject values the code cannot honour, naming the key and the allowed values."""
    for key, allowed in _CHOICES.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        if node not in allowed:
            raise ConfigError(f"{key} = {node!r}; expected one of {list(allowed)}")
    r = cfg.MODEL.RGANET
    if r.REGION_MODE != "none" and num_regions(cfg) < 1:
        raise ConfigError("MODEL.RGANET.CLASS_NAMES is empty: at least one region class is needed")
    if cfg.MODEL.META_ARCHITECTURE == "RGANetPromptLearner" and (
            r.REGION_MODE != "rgm" or r.PROMPT.TYPE != "learnable"):
        raise ConfigError(
            "MODEL.META_ARCHITECTURE RGANetPromptLearner learns CoOp context vectors: it needs "
            "MODEL.RGANET.REGION_MODE 'rgm' and MODEL.RGANET.PROMPT.TYPE 'learnable'")
    if not 0.0 <= r.MEMORY.MOMENTUM <= 1.0:
        raise ConfigError(f"MODEL.RGANET.MEMORY.MOMENTUM must be in [0, 1], got {r.MEMORY.MOMENTUM}")
    for key in ("SOLVER.IMS_PER_BATCH", "DATALOADER.NUM_INSTANCE", "TEST.IMS_PER_BATCH",
                "SOLVER.MAX_EPOCH", "PROMPT_STAGE.MAX_EPOCH"):
        sec, name = key.split(".")
        if cfg[sec][name] < 1:
            raise ConfigError(f"{key} must be >= 1, got {cfg[sec][name]}")
    if cfg.DATALOADER.SAMPLER_TRAIN in ("NaiveIdentitySampler", "BalancedIdentitySampler"):
        b, k = cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCE
        if b % k:
            raise ConfigError(
                f"SOLVER.IMS_PER_BATCH = {b} is not a multiple of DATALOADER.NUM_INSTANCE = {k} "
                f"(images per identity in a batch): {cfg.DATALOADER.SAMPLER_TRAIN} could never "
                f"fill a batch. Use e.g. IMS_PER_BATCH {max(k, b // k * k)}.")
    if r.PROMPT.TYPE == "template" and "{}" not in r.PROMPT.TEMPLATE:
        raise ConfigError(
            f"MODEL.RGANET.PROMPT.TEMPLATE {r.PROMPT.TEMPLATE!r} has no '{{}}' for the class name")


def resolve_device(cfg: CfgNode) -> CfgNode:
    """Fall back to the CPU, with a warning, when the config asks for CUDA and there is none."""
    dev = str(cfg.MODEL.DEVICE)
    if dev.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE=%s but no CUDA device is available: running on the CPU", dev)
        frozen = cfg.is_frozen()
        cfg.defrost()
        cfg.MODEL.DEVICE = "cpu"
        if frozen:
            cfg.freeze()
    return cfg
