"""AG-ReID's config keys (``MODEL.AGREID.*``, ``TEST.AGREID.*``) and config loading.

The abstract leaves every number open; each default is ours, chosen as docs/agreid.md says
(the labelling keys by measurement on the generated default). The global branch is the plugin's
CLIP baseline (``MODEL.META_ARCHITECTURE: AGReID`` is ``RGANet`` with ``REGION_MODE: none``
plus the attribute branch), trained with fast-reid's keys set in ``configs/<Dataset>/agreid*.yml``.
"""
from __future__ import annotations

from typing import Optional, Sequence

from fastreid.config import CfgNode as CN

from rganet_plugin.config.setup import ConfigError, get_rganet_cfg, load_config

from .vocabulary import check_groups

DEFAULT_GROUPS = ("upper_colour", "upper_pattern", "lower_colour", "lower_type", "shoes_colour")

__all__ = ["add_agreid_config", "agreid_keys", "get_agreid_cfg", "load_agreid_config",
           "check_agreid_config"]


def add_agreid_config(cfg: CN) -> CN:
    _C = cfg
    _C.MODEL.AGREID = CN()
    # attribute groups (of agreid.vocabulary.GROUPS): those whose zero-shot labels beat a constant
    # label on the generated default (docs/agreid.md); the other three are keys away
    _C.MODEL.AGREID.GROUPS = list(DEFAULT_GROUPS)

    _C.MODEL.AGREID.LABELS = CN()  # stage 1: zero-shot pseudo-labels from the person CLIP
    # a labels file to train on; "" = <dataset>/agreid_labels/<settings hash>.json, made if missing
    _C.MODEL.AGREID.LABELS.FILE = ""
    _C.MODEL.AGREID.LABELS.ENSEMBLE = "mean"  # "mean" over every prompt of a value, or "first"
    _C.MODEL.AGREID.LABELS.VOTING = "identity"  # "identity" (mean over the id's images) or "image"
    _C.MODEL.AGREID.LABELS.THRESHOLD = 0.5  # labels with a lower confidence are rejected (-1)
    _C.MODEL.AGREID.LABELS.VIEW = "band"  # "band" (the part's rows) or "global" (whole image)
    _C.MODEL.AGREID.LABELS.CENTER = False  # subtract each value's mean cosine over the set

    # stage 2: attribute branch = attribute-conditioned pooling of the patch tokens, one
    # learnable query per group initialised from the group's mean text feature
    _C.MODEL.AGREID.POOL_GAMMA = 10.0  # temperature of the pooling's softmax over the patches
    _C.MODEL.AGREID.ATTR_CE = CN()
    _C.MODEL.AGREID.ATTR_CE.WEIGHT = 1.0  # attribute classification on the pseudo-labels
    _C.MODEL.AGREID.CONTRAST = CN()
    _C.MODEL.AGREID.CONTRAST.TEMPERATURE = 0.07
    _C.MODEL.AGREID.CONTRAST.IMAGE_TEXT_WEIGHT = 1.0  # attribute features <-> their value's text
    _C.MODEL.AGREID.CONTRAST.GLOBAL_TEXT_WEIGHT = 1.0  # global feature <-> its attributes' text

    _C.TEST.AGREID = CN()
    # "global": the BN global feature (the baseline's); "concat": the unit global feature and the
    # unit attribute features concatenated, cosine distance (see docs/agreid.md)
    _C.TEST.AGREID.FEATURE = "concat"
    _C.TEST.AGREID.ATTR_WEIGHT = 0.5  # lambda: share of the attribute cosines in "concat"
    return cfg


def get_agreid_cfg() -> CN:
    """fast-reid's defaults + the plugin's keys + AG-ReID's."""
    return add_agreid_config(get_rganet_cfg())


def check_agreid_config(cfg: CN) -> None:
    a = cfg.MODEL.AGREID
    try:
        check_groups(a.GROUPS)
    except ValueError as e:
        raise ConfigError(f"MODEL.AGREID.GROUPS: {e}") from None
    choices = {"LABELS.ENSEMBLE": (a.LABELS.ENSEMBLE, ("mean", "first")),
               "LABELS.VOTING": (a.LABELS.VOTING, ("identity", "image")),
               "LABELS.VIEW": (a.LABELS.VIEW, ("band", "global"))}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"MODEL.AGREID.{key} = {value!r}; expected one of {list(allowed)}")
    if cfg.TEST.AGREID.FEATURE not in ("global", "concat"):
        raise ConfigError(f"TEST.AGREID.FEATURE = {cfg.TEST.AGREID.FEATURE!r}; expected one of "
                          "['global', 'concat']")
    if not 0.0 <= a.LABELS.THRESHOLD < 1.0:
        raise ConfigError(f"MODEL.AGREID.LABELS.THRESHOLD must be in [0, 1), got {a.LABELS.THRESHOLD}")
    if not a.CONTRAST.TEMPERATURE > 0 or not a.POOL_GAMMA > 0:
        raise ConfigError("MODEL.AGREID.CONTRAST.TEMPERATURE and POOL_GAMMA must be > 0, got "
                          f"{a.CONTRAST.TEMPERATURE}, {a.POOL_GAMMA}")
    if min(a.ATTR_CE.WEIGHT, a.CONTRAST.IMAGE_TEXT_WEIGHT, a.CONTRAST.GLOBAL_TEXT_WEIGHT,
           cfg.TEST.AGREID.ATTR_WEIGHT) < 0:
        raise ConfigError("AG-ReID's loss weights and TEST.AGREID.ATTR_WEIGHT must be >= 0")
    if cfg.MODEL.META_ARCHITECTURE == "AGReID" and cfg.MODEL.RGANET.REGION_MODE != "none":
        raise ConfigError(f"AGReID's global branch is the CLIP baseline: MODEL.RGANET.REGION_MODE "
                          f"must be 'none', got {cfg.MODEL.RGANET.REGION_MODE!r}")


def agreid_keys(cfg: CN, check: bool = False) -> CN:
    """The project hook of ``rganet_plugin.config.load_config``: add the keys, or check them."""
    if check:
        check_agreid_config(cfg)
        return cfg
    return add_agreid_config(cfg)


def load_agreid_config(config_file: str = "", opts: Optional[Sequence[str]] = None) -> CN:
    """``rganet_plugin.config.load_config`` on a config that also has AG-ReID's keys."""
    return load_config(config_file, opts, project=[agreid_keys])
