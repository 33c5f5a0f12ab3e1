"""The generated occluded dataset in the real Occluded-Duke layout and file naming::

    Occluded_Duke/
    ├── bounding_box_train/0005_c2_f0046985.jpg   (9% occluded, as the real set)
    ├── query/...                                  (100% occluded)
    ├── bounding_box_test/...                      (10% occluded)
    ├── masks/bounding_box_train/0005_c2_f0046985.png   part labels of every image (all splits)
    └── synthetic_manifest.json                    parameters and one record per image

Part masks (uint8): 0 background, 1 head, 2 upper body, 3 lower body, 4 foot, and 5 bag when
``BAGS_PERCENT`` > 0; occluder pixels are 0, and the manifest records for each image which
fraction of each part the occluder covers (``part_covered``) and, with bags, which bag the
identity carries (``bag``). The plan (who, which camera, which frame, occluded or not) comes from one
random stream, each image's pixels from its own, so the output is byte-identical for the same
parameters (and numpy / Pillow builds).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Set, Tuple

import numpy as np
from PIL import Image

from .bags import bag_carriers, bag_for
from .cache import generate_once, read_manifest
from .framing import assign_framing
from .occluders import OCCLUDED_AREA
from .params import GENERATOR_VERSION, params_hash, synthetic_params
from .people import _identity, share_garments
from .render import _render
from .scenes import _camera
from .writer import progress_bar, save_mask, write_manifest

__all__ = ["OCCLUSION_RATIOS", "DATASET_DIR", "SPLIT_DIRS", "NUM_CAMERAS", "JPEG_QUALITY",
           "identities", "generate_occluded_duke", "ensure_synthetic_occluded_duke"]

#: Fraction of occluded images per split, as in Occluded-DukeMTMC.
OCCLUSION_RATIOS = {"train": 0.09, "query": 1.0, "gallery": 0.10}

DATASET_DIR = "Occluded_Duke"
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
NUM_CAMERAS = 8
JPEG_QUALITY = 90

_BAG_STREAM = 5  # np.random.default_rng([seed, 5, i]) jitters image i's bag


def _plan(params) -> List[Dict[str, Any]]:
    """Every image to draw: split, pid, camera, frame, occluded flag (no pixels yet)."""
    rng = np.random.default_rng([params["seed"], 7919])
    n_tr, n_te, per_id = params["num_train_ids"], params["num_test_ids"], params["images_per_id"]
    pids = rng.choice(np.arange(1, 9000), size=n_tr + n_te, replace=False)
    train_ids, test_ids = sorted(int(p) for p in pids[:n_tr]), sorted(int(p) for p in pids[n_tr:])
    used = set()

    def frame():
        while True:
            f = int(rng.integers(1000, 9_999_999))
            if f not in used:
                used.add(f)
                return f

    def cameras(n):
        cams = rng.integers(1, NUM_CAMERAS + 1, size=n)
        if n >= 2 and len(set(cams.tolist())) < 2:
            cams[-1] = (cams[0] % NUM_CAMERAS) + 1
        return [int(c) for c in cams]

    plan = []
    for pid in train_ids:
        for cam in cameras(per_id):
            plan.append({"split": "train", "pid": pid, "camid": cam, "frame": frame()})
    for pid in test_ids:
        gal_cams = cameras(per_id)
        for cam in gal_cams:
            plan.append({"split": "gallery", "pid": pid, "camid": cam, "frame": frame()})
        for _ in range(int(rng.integers(1, 3))):
            cam = int(rng.integers(1, NUM_CAMERAS + 1))  # gallery has >= 2 cameras: one differs
            plan.append({"split": "query", "pid": pid, "camid": cam, "frame": frame()})
    for split, ratio in OCCLUSION_RATIOS.items():
        idx = [i for i, p in enumerate(plan) if p["split"] == split]
        n_occ = int(round(ratio * len(idx)))
        occ = set(rng.choice(idx, size=n_occ, replace=False).tolist()) if n_occ else set()
        for i in idx:
            plan[i]["occluded"] = i in occ
    for p in plan:
        p["file"] = f"{SPLIT_DIRS[p['split']]}/{p['pid']:04d}_c{p['camid']}_f{p['frame']:07d}.jpg"
    return plan



def identities(params: Dict[str, int], pids) -> Tuple[Dict[int, Dict[str, Any]], Set[int]]:
    """The appearance of every identity in ``pids`` (``{pid: attributes}``, as
    :func:`.people._identity` draws them, garments shared and bags given as ``params`` say) and
    the set of bag carriers: what the generator drew, for the dataset and for anyone who
    measures against it (AG-ReID's pseudo-label accuracy)."""
    seed = params["seed"]
    idents = {pid: _identity(np.random.default_rng([seed, 1, pid])) for pid in sorted(pids)}
    share_garments(idents, params.get("garment_pool", 0), seed)
    carriers = bag_carriers(idents, params.get("bags_percent", 0), seed)
    for pid in carriers:
        idents[pid]["bag"] = bag_for(seed, pid)
    return idents, carriers


def _write_dataset(dataset_dir: str, params: Dict[str, int], progress: bool) -> Dict[str, Any]:
    h, w, seed = params["height"], params["width"], params["seed"]
    plan = _plan(params)
    assign_framing(plan, seed, params.get("misaligned_percent", 0), params.get("partial_percent", 0))
    for d in SPLIT_DIRS.values():
        os.makedirs(os.path.join(dataset_dir, d), exist_ok=True)
    for d in SPLIT_DIRS.values():
        os.makedirs(os.path.join(dataset_dir, "masks", d), exist_ok=True)
    idents, carriers = identities(params, {p["pid"] for p in plan})
    with_bags = params.get("bags_percent", 0) > 0
    num_parts = 5 if with_bags else 4
    misaligned_world = bool(params.get("misaligned_percent", 0) or params.get("partial_percent", 0))
    cams = {c: _camera(np.random.default_rng([seed, 2, c]), h, w) for c in range(1, NUM_CAMERAS + 1)}
    bar = progress_bar(len(plan), "Generating SyntheticOccludedDuke", progress)
    records = []
    for i, p in enumerate(plan):
        rng = np.random.default_rng([seed, 3, i])
        ident = idents[p["pid"]]
        bag_rng = np.random.default_rng([seed, _BAG_STREAM, i]) if "bag" in ident else None
        img, label, kind, area, covered = _render(ident, cams[p["camid"]], rng, h, w,
                                                  p["occluded"], bag_rng=bag_rng, num_parts=num_parts,
                                                  framing=p["framing"], frame=p["frame"])
        path = os.path.join(dataset_dir, p["file"])
        Image.fromarray(img, "RGB").save(path, format="JPEG", quality=JPEG_QUALITY)
        rec = dict(p, occluder=kind, occluded_area=round(area, 4),
                   part_covered=[round(c, 4) for c in covered])
        if not misaligned_world:
            del rec["framing"], rec["frame"]  # the default world's manifest stays as it was
        if with_bags:
            rec["bag"] = ident["bag"]["kind"] if "bag" in ident else None
        # part masks of every image: the training ones feed stage 1 (L_seg), the test ones are
        # ground truth for the mechanism checks only (benchmarks/mechanism.py)
        rec["mask"] = save_mask(dataset_dir, SPLIT_DIRS[p["split"]], p["file"], label)
        records.append(rec)
        bar.update(1)
    bar.close()
    manifest = {
        "generator": "rganet_plugin.data.datasets.synthetic",
        "version": GENERATOR_VERSION,
        "params": params,
        "hash": params_hash(params),
        "occlusion_ratios": OCCLUSION_RATIOS,
        "occluded_area": list(OCCLUDED_AREA),
        "images": records,
    }
    return write_manifest(dataset_dir, manifest, carriers if with_bags else None)


def generate_occluded_duke(out_dir: str, num_train_ids: int = 48, num_test_ids: int = 32,
                           images_per_id: int = 8, seed: int = 0, height: int = 256,
                           width: int = 128, bags_percent: int = 0, outfits_per_id: int = 0,
                           misaligned_percent: int = 0, partial_percent: int = 0,
                           garment_pool: int = 0, identity_cues: int = 0, overwrite: bool = False,
                           progress: bool = True) -> str:
    """Generate the synthetic dataset as ``<out_dir>/Occluded_Duke`` and return that folder.

    An existing ``Occluded_Duke`` generated with the same parameters is returned as is; one with
    other parameters (or not generated by this function) raises ``FileExistsError`` unless
    ``overwrite=True``. The folder appears atomically (written under a temporary name in
    ``out_dir``, then renamed) and concurrent calls for the same ``out_dir`` generate it once.
    ``outfits_per_id`` must be 0 here: clothes changes are the cloth-changing set's
    (:func:`~rganet_plugin.synthetic.cloth_changing.generate_ltcc`).
    ``misaligned_percent`` / ``partial_percent`` (:mod:`.framing`) and ``garment_pool``
    (:func:`.people.share_garments`) make the misaligned world; 0 keeps the default one.
    """
    params = synthetic_params(num_train_ids=num_train_ids, num_test_ids=num_test_ids,
                              images_per_id=images_per_id, seed=seed, height=height, width=width,
                              bags_percent=bags_percent, outfits_per_id=outfits_per_id,
                              misaligned_percent=misaligned_percent,
                              partial_percent=partial_percent, garment_pool=garment_pool,
                              identity_cues=identity_cues)
    for key in ("outfits_per_id", "identity_cues"):
        if params[key]:
            raise ValueError(f"{key.upper()} is for the cloth-changing set (dataset SyntheticLTCC); the "
                             "occluded set (SyntheticOccludedDuke) has one outfit per identity, got "
                             f"{key.upper()}={params[key]}")
    bag_carriers([], params["bags_percent"], seed)  # range check before any work
    return generate_once(out_dir, DATASET_DIR, params, GENERATOR_VERSION,
                         lambda tmp: _write_dataset(tmp, params, progress),
                         "SyntheticOccludedDuke", overwrite=overwrite)


def ensure_synthetic_occluded_duke(root: str = "datasets", synthetic: Any = None,
                                   progress: bool = True, **overrides) -> str:
    """Return ``<root>/synthetic/<hash>/Occluded_Duke``, generating it on first use."""
    params = synthetic_params(synthetic, **overrides)
    out_dir = os.path.join(os.fspath(root), "synthetic", params_hash(params))
    dataset_dir = os.path.join(out_dir, DATASET_DIR)
    if read_manifest(dataset_dir) is not None:  # fast path: the rename makes it all-or-nothing
        return dataset_dir
    return generate_occluded_duke(out_dir, progress=progress, **params)
