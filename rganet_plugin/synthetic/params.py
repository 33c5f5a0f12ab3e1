"""Parameters of the generated datasets, their validation and the cache hash.

The keys are those of ``DATASETS.SYNTHETIC`` (lower-cased here). Versions: ``DRAWING_VERSION``
changes when the pixels change, ``GENERATOR_VERSION`` when anything on disk changes; the latter
is part of the cache hash, so a cache is never reused across versions.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Mapping

__all__ = ["DRAWING_VERSION", "GENERATOR_VERSION", "SYNTHETIC_DEFAULTS", "synthetic_params",
           "params_hash", "synthetic_cache_dir"]

#: Bump when the pixels change (people, scenes, occluders): the pre-trained CLIP's pairs and the
#: ReID data are drawn by the same code, and its weights record this number.
DRAWING_VERSION = 1
#: Bump when the dataset on disk changes (the drawing, the manifest, the masks): it is part of the
#: cache hash, so old caches are not reused. 2: per-part occlusion in the manifest
#: (``part_covered``) and part masks of the query and gallery images (for the mechanism checks).
GENERATOR_VERSION = 2

#: Generation parameters and their defaults (keys of ``DATASETS.SYNTHETIC``, lower-cased).
SYNTHETIC_DEFAULTS: Dict[str, int] = {
    "num_train_ids": 48,
    "num_test_ids": 32,
    "images_per_id": 8,
    "seed": 0,
    "height": 256,
    "width": 128,
    "bags_percent": 0,
    "outfits_per_id": 0,
    "misaligned_percent": 0,
    "partial_percent": 0,
    "garment_pool": 0,
    "identity_cues": 0,
}


def synthetic_params(synthetic: Any = None, **overrides) -> Dict[str, int]:
    """Normalise generation parameters.

    ``synthetic`` is a dict or a yacs ``CfgNode`` (``DATASETS.SYNTHETIC``) with keys
    ``NUM_TRAIN_IDS``, ``NUM_TEST_IDS``, ``IMAGES_PER_ID``, ``SEED`` (and optionally ``HEIGHT``,
    ``WIDTH``), in any case; ``overrides`` are lower-case keyword arguments. Unknown keys and
    out-of-range values raise ``ValueError``.
    """
    params = dict(SYNTHETIC_DEFAULTS)
    sources = []
    if synthetic is not None:
        if not isinstance(synthetic, Mapping):
            raise ValueError(f"synthetic must be a dict or CfgNode, got {type(synthetic).__name__}")
        sources.append(("synthetic", synthetic))
    sources.append(("keyword", overrides))
    for origin, src in sources:
        for key, value in src.items():
            k = str(key).lower()
            if k not in SYNTHETIC_DEFAULTS:
                raise ValueError(
                    f"unknown {origin} dataset parameter {key!r}; expected one of "
                    f"{[n.upper() for n in SYNTHETIC_DEFAULTS]}"
                )
            if value is None:
                continue
            try:
                iv = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"synthetic dataset parameter {key!r} must be an integer, got {value!r}")
            if isinstance(value, float) and value != iv:
                raise ValueError(f"synthetic dataset parameter {key!r} must be an integer, got {value!r}")
            params[k] = iv
    minimum = {"num_train_ids": 1, "num_test_ids": 1, "images_per_id": 2, "seed": 0,
               "height": 64, "width": 32}
    for k, lo in minimum.items():
        if params[k] < lo:
            raise ValueError(f"synthetic dataset parameter {k.upper()} must be >= {lo}, got {params[k]}")
    for k in ("misaligned_percent", "partial_percent"):
        if not 0 <= params[k] <= 100:
            raise ValueError(f"synthetic dataset parameter {k.upper()} must be in 0..100, got {params[k]}")
    if params["identity_cues"] not in (0, 1):
        raise ValueError(f"synthetic dataset parameter IDENTITY_CUES must be 0 (the default world) or 1 "
                         f"(identity cues that survive a change of clothes), got {params['identity_cues']}")
    if params["garment_pool"] < 0:
        raise ValueError(f"synthetic dataset parameter GARMENT_POOL must be >= 0 (0: every identity "
                         f"its own garments), got {params['garment_pool']}")
    if params["num_train_ids"] + params["num_test_ids"] > 9000:
        raise ValueError("NUM_TRAIN_IDS + NUM_TEST_IDS must be <= 9000 (4-digit Duke pids)")
    return params


_LATER_KEYS = ("bags_percent", "outfits_per_id", "misaligned_percent", "partial_percent",
               "garment_pool", "identity_cues")


def params_hash(params: Mapping[str, int], version: int = GENERATOR_VERSION) -> str:
    """Cache name of a parameter set (``version``: the generator's, part of the hash)."""
    # keys added later are left out at their default value, so existing caches keep their name
    kept = {k: v for k, v in params.items() if not (k in _LATER_KEYS and v == 0)}
    blob = json.dumps({"params": dict(sorted(kept.items())), "version": version},
                      sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:12]


def synthetic_cache_dir(root: str, synthetic: Any = None, **overrides) -> str:
    """``<root>/synthetic/<hash of params>``: the folder that holds ``Occluded_Duke``."""
    params = synthetic_params(synthetic, **overrides)
    return os.path.join(os.fspath(root), "synthetic", params_hash(params))

