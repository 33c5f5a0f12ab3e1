"""The generated cloth-changing dataset, in LTCC's layout and file naming, with clothes ids.

Each identity keeps its **body cues** and changes its **outfit**:

* body (fixed per identity): skin tone, hair colour and length, build, height and shoes;
* outfit (2 or 3 per identity, ``OUTFITS_PER_ID`` to fix the number): upper garment (colours,
  pattern, stripe period, sleeve length), lower garment (trousers / shorts / skirt, colours,
  pattern) and hat.

Shoes are the one body cue drawn in colour below the knees: people change clothes more often
than shoes, and a long-term ReID model must find something that stays. Outfit 1 of an identity is
the appearance the occluded set would give it; outfits 2.. are the garments of other random
appearances. Images are spread over 12 cameras (as LTCC), each outfit over several cameras. Written
as LTCC is::

    LTCC_ReID/
    ├── train/001_1_c11_015861.png   <pid 3 digits>_<outfit>_c<camera 1..12>_<frame 6 digits>.png
    ├── query/...                    one image per outfit of each test identity
    ├── test/...                     the gallery: the other images of the test identities
    ├── masks/<split>/<stem>.png     part labels (0 background .. 4 foot, 5 bag with BAGS_PERCENT)
    └── synthetic_manifest.json      parameters, the outfits of each identity, one record per image

``IDENTITY_CUES`` 1 draws the **clothes-changing world**: the body cues are
:func:`~.people.cue_body`'s (hair colour from 12 and style from 5, skin tone, head size, height,
build and leg length, ranges wide enough to be seen at 64x32), from their own random stream, and
nobody wears a hat; with ``BAGS_PERCENT`` 100 everyone carries their bag in every outfit. The
default (0) draws exactly what it drew before.

The clothes id of an image is ``<pid>_<outfit>`` (``001_1``), as LTCC loaders read it. Every test
identity shows each of its outfits in the query and in the gallery, so both the standard and the
clothes-changing protocol have true matches for every query. No occluders.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import numpy as np
from PIL import Image

from .bags import bag_carriers, bag_for
from .cache import generate_once, read_manifest
from .params import params_hash, synthetic_params
from .people import _identity, cue_body
from .render import _render
from .scenes import _camera
from .writer import progress_bar, save_mask, write_manifest

__all__ = ["CC_GENERATOR_VERSION", "CC_DATASET_DIR", "CC_SPLIT_DIRS", "CC_NUM_CAMERAS",
           "BODY_KEYS", "CUE_KEYS", "OUTFIT_KEYS", "outfits_of", "generate_ltcc", "ensure_synthetic_ltcc",
           "synthetic_ltcc_cache_dir"]

#: Bump when the cloth-changing set on disk changes (part of its cache hash).
CC_GENERATOR_VERSION = 1
CC_DATASET_DIR = "LTCC_ReID"
CC_SPLIT_DIRS = {"train": "train", "query": "query", "gallery": "test"}
CC_NUM_CAMERAS = 12
#: What an identity keeps across outfits, and what an outfit changes (keys of ``_identity``).
BODY_KEYS = ("skin", "hair", "long_hair", "build", "height", "shoes")
#: What the ``IDENTITY_CUES`` world adds to the body (:func:`~.people.cue_body`).
CUE_KEYS = ("hair_style", "head_scale", "hip")
OUTFIT_KEYS = ("upper", "upper_pattern", "upper_period", "long_sleeves", "lower", "lower_kind",
               "lower_pattern", "hat")
#: Outfits per identity when ``OUTFITS_PER_ID`` is 0: 2 or 3, drawn per identity.
DEFAULT_OUTFITS = (2, 3)

_PLAN_STREAM, _BODY_STREAM, _SCENE_STREAM, _IMAGE_STREAM, _OUTFIT_STREAM, _BAG_STREAM = \
    7920, 1, 2, 3, 6, 5
_CUE_STREAM = 13


def outfits_of(seed: int, pid: int, n_outfits: int, cues: bool = False) -> List[Dict[str, Any]]:
    """The appearance of identity ``pid`` in each of its ``n_outfits`` outfits: the body cues of
    ``_identity([seed, 1, pid])`` with the garments of outfit k (k = 1: its own). ``cues`` (the
    ``IDENTITY_CUES`` world): the body cues are :func:`~.people.cue_body`'s, from their own random
    stream, and nobody wears a hat (it would hide the hair)."""
    body = _identity(np.random.default_rng([seed, _BODY_STREAM, pid]))
    if cues:
        body.update(cue_body(np.random.default_rng([seed, _CUE_STREAM, pid])))
    looks = [body]
    for k in range(2, n_outfits + 1):
        garments = _identity(np.random.default_rng([seed, _OUTFIT_STREAM, pid, k]))
        look = dict(body)
        look.update({key: garments[key] for key in OUTFIT_KEYS})
        looks.append(look)
    if cues:
        for look in looks:
            look["hat"] = None
    return looks


def _check(params: Dict[str, int]) -> None:
    if params["num_train_ids"] + params["num_test_ids"] > 999:
        raise ValueError("NUM_TRAIN_IDS + NUM_TEST_IDS must be <= 999 for the cloth-changing set "
                         "(LTCC's 3-digit pids)")
    n_max = params["outfits_per_id"] or max(DEFAULT_OUTFITS)
    if params["outfits_per_id"] < 0 or params["outfits_per_id"] > 9:
        raise ValueError(f"OUTFITS_PER_ID must be 0 (2 or 3 per identity) or 1..9, got "
                         f"{params['outfits_per_id']}")
    if params["images_per_id"] < 2 * n_max:
        raise ValueError(
            f"IMAGES_PER_ID={params['images_per_id']} is too small for {n_max} outfits per identity: "
            f"each outfit of a test identity needs a query and a gallery image "
            f"(IMAGES_PER_ID >= {2 * n_max})")
    bag_carriers([], params["bags_percent"], params["seed"])  # range check
    for key in ("misaligned_percent", "partial_percent", "garment_pool"):
        if params[key]:
            raise ValueError(f"{key.upper()} is for the occluded set (dataset SyntheticOccludedDuke); "
                             f"the cloth-changing set (SyntheticLTCC) draws every person in the "
                             f"default framing with its own outfits, got {key.upper()}={params[key]}")


def _plan(params) -> List[Dict[str, Any]]:
    """Every image to draw: split, pid, outfit, camera, frame (no pixels yet)."""
    rng = np.random.default_rng([params["seed"], _PLAN_STREAM])
    n_tr, n_te, per_id = params["num_train_ids"], params["num_test_ids"], params["images_per_id"]
    pids = rng.choice(np.arange(1, 1000), size=n_tr + n_te, replace=False)
    train_ids, test_ids = sorted(int(p) for p in pids[:n_tr]), sorted(int(p) for p in pids[n_tr:])
    used = set()

    def frame():
        while True:
            f = int(rng.integers(0, 1_000_000))
            if f not in used:
                used.add(f)
                return f

    plan = []
    for split, ids in (("train", train_ids), ("test", test_ids)):
        for pid in ids:
            n_out = params["outfits_per_id"] or int(rng.integers(DEFAULT_OUTFITS[0], DEFAULT_OUTFITS[1] + 1))
            outfit = [k % n_out + 1 for k in range(per_id)]  # round robin: every outfit >= 2 images
            cams = [int(c) for c in rng.integers(1, CC_NUM_CAMERAS + 1, size=per_id)]
            seen_query = set()
            for k, c in zip(outfit, cams):
                if split == "train":
                    s = "train"
                else:  # the first image of each outfit is a query, the others gallery
                    s = "gallery" if k in seen_query else "query"
                    seen_query.add(k)
                plan.append({"split": s, "pid": pid, "outfit": k, "outfits": n_out, "camid": c,
                             "frame": frame()})
            if split == "test":  # the standard protocol drops same-camera matches: keep one
                rows = [p for p in plan if p["pid"] == pid]
                gal_cams = {p["camid"] for p in rows if p["split"] == "gallery"}
                for p in rows:
                    if p["split"] == "query" and gal_cams == {p["camid"]}:
                        p["camid"] = p["camid"] % CC_NUM_CAMERAS + 1
    for p in plan:
        p["clothes"] = f"{p['pid']:03d}_{p['outfit']}"
        p["file"] = (f"{CC_SPLIT_DIRS[p['split']]}/{p['pid']:03d}_{p['outfit']}_c{p['camid']}_"
                     f"{p['frame']:06d}.png")
    return plan


def _write_dataset(dataset_dir: str, params: Dict[str, int], progress: bool) -> Dict[str, Any]:
    h, w, seed = params["height"], params["width"], params["seed"]
    plan = _plan(params)
    for d in CC_SPLIT_DIRS.values():
        os.makedirs(os.path.join(dataset_dir, d), exist_ok=True)
        os.makedirs(os.path.join(dataset_dir, "masks", d), exist_ok=True)
    n_outfits = {p["pid"]: p["outfits"] for p in plan}
    cues = bool(params["identity_cues"])
    looks = {pid: outfits_of(seed, pid, n, cues) for pid, n in sorted(n_outfits.items())}
    with_bags = params["bags_percent"] > 0
    carriers = bag_carriers(looks, params["bags_percent"], seed)
    for pid in carriers:  # a bag belongs to the person: the same in every outfit
        for look in looks[pid]:
            look["bag"] = bag_for(seed, pid)
    num_parts = 5 if with_bags else 4
    cams = {c: _camera(np.random.default_rng([seed, _SCENE_STREAM, c]), h, w)
            for c in range(1, CC_NUM_CAMERAS + 1)}
    bar = progress_bar(len(plan), "Generating SyntheticLTCC", progress)
    records = []
    for i, p in enumerate(plan):
        rng = np.random.default_rng([seed, _IMAGE_STREAM, i])
        look = looks[p["pid"]][p["outfit"] - 1]
        bag_rng = np.random.default_rng([seed, _BAG_STREAM, i]) if "bag" in look else None
        img, label, _, _, _ = _render(look, cams[p["camid"]], rng, h, w, False, bag_rng=bag_rng,
                                      num_parts=num_parts)
        Image.fromarray(img, "RGB").save(os.path.join(dataset_dir, p["file"]), format="PNG")
        rec = {k: p[k] for k in ("split", "pid", "outfit", "clothes", "camid", "frame", "file")}
        rec["mask"] = save_mask(dataset_dir, CC_SPLIT_DIRS[p["split"]], p["file"], label)
        if with_bags:
            rec["bag"] = look["bag"]["kind"] if "bag" in look else None
        records.append(rec)
        bar.update(1)
    bar.close()
    manifest = {
        "generator": "rganet_plugin.data.synthetic.cloth_changing",
        "version": CC_GENERATOR_VERSION,
        "params": params,
        "hash": params_hash(params, CC_GENERATOR_VERSION),
        "body_keys": list(BODY_KEYS + CUE_KEYS if cues else BODY_KEYS),
        "outfit_keys": list(OUTFIT_KEYS),
        "outfits": {f"{pid:03d}": n for pid, n in sorted(n_outfits.items())},
        "images": records,
    }
    return write_manifest(dataset_dir, manifest, carriers if with_bags else None)


def generate_ltcc(out_dir: str, num_train_ids: int = 48, num_test_ids: int = 32,
                  images_per_id: int = 8, seed: int = 0, height: int = 256, width: int = 128,
                  bags_percent: int = 0, outfits_per_id: int = 0, identity_cues: int = 0,
                  overwrite: bool = False,
                  progress: bool = True, **occluded_set_only) -> str:
    """Generate the cloth-changing set as ``<out_dir>/LTCC_ReID`` and return that folder (same
    caching rules as :func:`~.occluded_duke.generate_occluded_duke`). The misaligned world's
    parameters (``occluded_set_only``) are refused unless 0."""
    params = synthetic_params(num_train_ids=num_train_ids, num_test_ids=num_test_ids,
                              images_per_id=images_per_id, seed=seed, height=height, width=width,
                              bags_percent=bags_percent, outfits_per_id=outfits_per_id,
                              identity_cues=identity_cues, **occluded_set_only)
    _check(params)
    return generate_once(out_dir, CC_DATASET_DIR, params, CC_GENERATOR_VERSION,
                         lambda tmp: _write_dataset(tmp, params, progress), "SyntheticLTCC",
                         overwrite=overwrite)


def synthetic_ltcc_cache_dir(root: str, synthetic: Any = None, **overrides) -> str:
    """``<root>/synthetic_cc/<hash of params>``: the folder that holds ``LTCC_ReID``."""
    params = synthetic_params(synthetic, **overrides)
    return os.path.join(os.fspath(root), "synthetic_cc", params_hash(params, CC_GENERATOR_VERSION))


def ensure_synthetic_ltcc(root: str = "datasets", synthetic: Any = None, progress: bool = True,
                          **overrides) -> str:
    """Return ``<root>/synthetic_cc/<hash>/LTCC_ReID``, generating it on first use."""
    params = synthetic_params(synthetic, **overrides)
    out_dir = synthetic_ltcc_cache_dir(root, params)
    dataset_dir = os.path.join(out_dir, CC_DATASET_DIR)
    if read_manifest(dataset_dir) is not None:
        return dataset_dir
    return generate_ltcc(out_dir, progress=progress, **params)
