"""FIRe²'s config keys (``MODEL.FIRE2.*``, ``TEST.CLOTH_CHANGING.*``) and config loading.

Every hyper-parameter of the paper is a key with the paper's value (from its released code,
QizaoWang/FIRe-CCReID) as the default. The rest of the recipe (Adam 3.5e-4, weight decay 5e-4,
warm-up, steps, batch 32 = 4 x 8, 384x192, flip, pad 10 + crop, random erasing 0.5, 80 epochs)
uses fast-reid's own keys and is set in ``configs/<Dataset>/fire2*.yml``.
"""
from __future__ import annotations

from typing import Optional, Sequence

from fastreid.config import CfgNode as CN

from rganet_plugin.config.setup import ConfigError, get_rganet_cfg, load_config

__all__ = ["add_fire2_config", "fire2_keys", "get_fire2_cfg", "load_fire2_config",
           "check_fire2_config"]


def add_fire2_config(cfg: CN) -> CN:
    _C = cfg
    _C.MODEL.FIRE2 = CN()
    # pooled feature: "maxavg" (max and average pooling concatenated, the paper), "avg" or "max"
    _C.MODEL.FIRE2.POOL = "maxavg"
    # the identity triplet loss joins at this (0-based) epoch, with FFM/FAR, as the paper's code
    _C.MODEL.FIRE2.TRIPLET_START_EPOCH = 25

    _C.MODEL.FIRE2.FFM = CN()  # Fine-grained Feature Mining
    _C.MODEL.FIRE2.FFM.ENABLED = True
    _C.MODEL.FIRE2.FFM.START_EPOCH = 25  # fg_start_epoch (DeepChange, LaST: 45)
    _C.MODEL.FIRE2.FFM.K1 = 20  # k-reciprocal neighbours of the Jaccard distance
    _C.MODEL.FIRE2.FFM.K2 = 6  # query expansion of the Jaccard distance
    _C.MODEL.FIRE2.FFM.EPS = 0.4  # DBSCAN radius
    _C.MODEL.FIRE2.FFM.MIN_SAMPLES = 1  # DBSCAN min_samples (1: no outliers)
    _C.MODEL.FIRE2.FFM.SCALE = 16.0  # temperature of the cosine fine-grained classifier
    _C.MODEL.FIRE2.FFM.EPSILON = 0.1  # share of the person's other clusters in the target
    _C.MODEL.FIRE2.FFM.WEIGHT = 1.0
    _C.MODEL.FIRE2.FFM.FEATURE_BATCH = 128  # images per batch when extracting features to cluster

    _C.MODEL.FIRE2.FAR = CN()  # Fine-grained Attribute Recomposition
    _C.MODEL.FIRE2.FAR.ENABLED = True
    _C.MODEL.FIRE2.FAR.WEIGHT = 0.3
    _C.MODEL.FIRE2.FAR.PARTS = 2  # horizontal parts whose style statistics are exchanged
    _C.MODEL.FIRE2.FAR.TIMES = 1  # recomposed copies per image (K)

    # the generated cloth-changing set (SyntheticLTCC): 1 draws the world whose identities keep
    # cues a change of clothes leaves (hair colour and style, skin, head size, height, build, leg
    # length; no hats); 0 the default world (rganet_plugin/synthetic/cloth_changing.py)
    _C.DATASETS.SYNTHETIC.IDENTITY_CUES = 0

    _C.TEST.CLOTH_CHANGING = CN()
    _C.TEST.CLOTH_CHANGING.MAX_RANK = 50
    # also report CAL's same-clothes setting (true matches only in the query's clothes; LTCC)
    _C.TEST.CLOTH_CHANGING.SAME_CLOTHES_ONLY = False
    # > 0: also PRCC's single-shot gallery (one image per identity), the mean of this many draws (10)
    _C.TEST.CLOTH_CHANGING.SINGLE_SHOT_REPEATS = 0
    return cfg


def get_fire2_cfg() -> CN:
    """fast-reid's defaults + the plugin's keys + FIRe²'s."""
    return add_fire2_config(get_rganet_cfg())


def check_fire2_config(cfg: CN) -> None:
    f = cfg.MODEL.FIRE2
    if f.POOL not in ("maxavg", "avg", "max"):
        raise ConfigError(f"MODEL.FIRE2.POOL = {f.POOL!r}; expected one of ['maxavg', 'avg', 'max']")
    if f.FFM.K1 < 1 or f.FFM.K2 < 1:
        raise ConfigError(f"MODEL.FIRE2.FFM.K1 and K2 must be >= 1, got {f.FFM.K1}, {f.FFM.K2}")
    if not f.FFM.EPS > 0:
        raise ConfigError(f"MODEL.FIRE2.FFM.EPS must be > 0, got {f.FFM.EPS}")
    if not 0.0 <= f.FFM.EPSILON < 1.0:
        raise ConfigError(f"MODEL.FIRE2.FFM.EPSILON must be in [0, 1), got {f.FFM.EPSILON}")
    if cfg.TEST.CLOTH_CHANGING.SINGLE_SHOT_REPEATS < 0:
        raise ConfigError(f"TEST.CLOTH_CHANGING.SINGLE_SHOT_REPEATS must be >= 0 (0: off; PRCC's "
                          f"single-shot protocol: 10), got {cfg.TEST.CLOTH_CHANGING.SINGLE_SHOT_REPEATS}")
    if f.FAR.PARTS < 1 or f.FAR.TIMES < 1:
        raise ConfigError(f"MODEL.FIRE2.FAR.PARTS and TIMES must be >= 1, got {f.FAR.PARTS}, {f.FAR.TIMES}")


def fire2_keys(cfg: CN, check: bool = False) -> CN:
    """The project hook of ``rganet_plugin.config.load_config``: add the keys, or check them."""
    if check:
        check_fire2_config(cfg)
        return cfg
    return add_fire2_config(cfg)


def load_fire2_config(config_file: str = "", opts: Optional[Sequence[str]] = None) -> CN:
    """``rganet_plugin.config.load_config`` (``_BASE_`` files, overrides, unknown and renamed
    keys named) on a config that also has FIRe²'s keys."""
    return load_config(config_file, opts, project=[fire2_keys])
