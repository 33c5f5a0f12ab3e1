"""Image-caption pairs of generated people, for pre-training a small CLIP here.

Real CLIP weights cannot be fetched on the project's machines, and RGANet rests on one property of
CLIP: image patches and the text of body-part words share a space. This module makes the data to
give a small CLIP that property the way CLIP got it, from pictures and what people wrote about
them: **image-caption pairs only, no identity labels, no part masks**.

Each pair is a new person (drawn by the same generator as the ReID data,
:mod:`rganet_plugin.data.datasets.synthetic`, from a separate random stream, so no pre-training
person is a demo or test identity) in a new scene, seen in one of these views:

* ``full``: the whole person (45%);
* ``occluded``: the whole person behind a car, a wall, a tree or a pillar (25%);
* ``top`` / ``bottom``: the camera frames only the upper or lower part of the person, the rest
  is out of the frame (10% / 10%), as in partial ReID;
* ``cutout``: one body part alone (the head, the upper-body garment with the arms, the lower-body
  garment with the legs, or the shoes) at its place and size over a scene, the way the web shows
  garments and accessories in product photos (25%).

Cutouts are what ties the part words to image content: in the other views every part word comes
with most of the body, but a cutout's caption ("an upper body part of a person: a red t-shirt")
names the one part the picture shows.

The caption (:func:`rganet_plugin.synthetic.captions.caption`) describes the parts in view and says
which are hidden or out of the frame. ``part_visible`` (the fraction of each part's pixels in
view) and the label map are returned for the zero-shot checks only; training never reads them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from .captions import PART_KEYS, caption, colour_name, describe_person
from .occluders import _make_occluder
from .people import _colourise, _draw_person, _identity
from .scenes import _camera
from .params import DRAWING_VERSION

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_TEXT_VERSION", "VIEW_KINDS", "render_pair", "ImageTextPairs", "build_pairs"]

#: Bump when the pairs change (drawing, views or captions); part of the cache hash.
IMAGE_TEXT_VERSION = 2
VIEW_KINDS = (("full", 0.35), ("occluded", 0.2), ("top", 0.1), ("bottom", 0.1), ("cutout", 0.25))
#: Random streams: people and scenes of the pre-training pairs never share the ReID data's
#: streams (``[seed, 1, pid]`` for identities, ``[seed, 2, camera]`` for scenes).
_PERSON_STREAM, _SCENE_STREAM, _VIEW_STREAM = 101, 102, 103
NUM_SCENES = 48


def _shift_rows(a: np.ndarray, dy: int) -> np.ndarray:
    """``a`` moved down by ``dy`` rows (up when negative), zero-filled."""
    out = np.zeros_like(a)
    if dy >= 0:
        out[dy:] = a[:a.shape[0] - dy]
    else:
        out[:dy] = a[-dy:]
    return out


def _scene_phrase(cam: Dict[str, Any], h: int) -> str:
    wall = colour_name(cam["bg"][: h // 2].reshape(-1, 3).mean(axis=0))
    floor = colour_name(cam["bg"][-h // 10:].reshape(-1, 3).mean(axis=0))
    return f"in front of a {wall} building" if wall != floor else f"on a {floor} street"


#: CLIP's pixel normalisation (0..255 scale), as in the ReID configs: the pairs' images as the
#: model reads them (pre-training and the zero-shot checks)
PIXEL_MEAN = (122.7709, 116.7460, 104.0937)
PIXEL_STD = (68.5005, 66.6322, 70.3232)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> normalised float ``(B, 3, H, W)``."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def render_pair(index: int, seed: int = 0, height: int = 256, width: int = 128,
                scenes: Optional[List[Dict[str, Any]]] = None, view: Optional[str] = None,
                num_captions: int = 3) -> Dict[str, Any]:
    """Pair ``index`` of the stream ``seed``: image (HxWx3 uint8), ``num_captions`` captions
    (varied wording of the same content), label map (HxW uint8, 0 background, 1-4 parts),
    ``part_visible`` per part, ``view`` and ``occluder``."""
    h, w = height, width
    rng = np.random.default_rng([seed, _VIEW_STREAM, index])
    ident = _identity(np.random.default_rng([seed, _PERSON_STREAM, index]))
    if scenes is None:
        scenes = [_camera(np.random.default_rng([seed, _SCENE_STREAM, int(rng.integers(NUM_SCENES))]), h, w)]
    cam = scenes[int(rng.integers(len(scenes)))]
    if view is None:
        kinds, probs = zip(*VIEW_KINDS)
        view = kinds[int(rng.choice(len(kinds), p=np.array(probs)))]

    label, material, geom = _draw_person(ident, rng, h, w)
    person = _colourise(ident, material, geom, h, w)
    totals = np.bincount(label.ravel(), minlength=5)[1:5].astype(np.float64)
    if view in ("top", "bottom"):
        # frame only part of the person: move it down (top view) or up (bottom view)
        frac = rng.uniform(0.3, 0.55)
        dy = int(round(frac * h)) if view == "top" else -int(round(frac * h))
        label, material, person = (_shift_rows(a, dy) for a in (label, material, person))
    elif view == "cutout":
        keep = label == int(rng.integers(1, 5))
        label = np.where(keep, label, 0).astype(label.dtype)
        material = np.where(keep, material, 0).astype(material.dtype)
    off = int(rng.integers(0, 2 * cam["pad"] + 1))
    img = cam["bg"][:, off:off + w].copy()
    np.copyto(img, person, where=(material > 0)[..., None])
    img *= (rng.uniform(0.9, 1.1) * cam["cast"]).astype(np.float32)
    if rng.random() < 0.5:
        img, label = img[:, ::-1].copy(), label[:, ::-1].copy()
    occluder = None
    covered = np.zeros(4)
    if view == "occluded":
        kind, mask, colour = _make_occluder(rng, h, w)
        covered = np.array([(mask & (label == k)).sum() for k in range(1, 5)], np.float64)
        np.copyto(img, colour, where=mask[..., None])
        label = label.copy()
        label[mask] = 0
        occluder = (kind, colour_name(colour[mask].mean(axis=0)) if mask.any() else "grey")
    dy, dx = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
    img += cam["noise"][dy:dy + h, dx:dx + w]
    np.clip(img, 0, 255, out=img)

    in_view = np.bincount(label.ravel(), minlength=5)[1:5].astype(np.float64)
    safe = np.maximum(totals, 1.0)
    visible = {k: float(in_view[i] / safe[i]) for i, k in enumerate(PART_KEYS)}
    for i, k in enumerate(PART_KEYS):
        visible[k + "_occluded"] = float(covered[i] / safe[i])
    parts = describe_person(ident)
    scene = _scene_phrase(cam, h)
    caps = [caption(parts, visible, rng, occluder, scene, alone=view == "cutout")
            for _ in range(num_captions)]
    return {"image": img.astype(np.uint8), "label": label.astype(np.uint8), "captions": caps,
            "part_visible": {k: visible[k] for k in PART_KEYS}, "view": view,
            "occluder": None if occluder is None else occluder[0]}


def _scenes(seed: int, h: int, w: int) -> List[Dict[str, Any]]:
    return [_camera(np.random.default_rng([seed, _SCENE_STREAM, c]), h, w)
            for c in range(NUM_SCENES)]


class ImageTextPairs:
    """A block of pre-rendered pairs kept in memory-mapped arrays under ``folder``:
    ``images.npy`` (N, H, W, 3) uint8, ``labels.npy`` (N, H, W) uint8, ``pairs.json``
    (captions, views, visible fractions, the parameters and the generator versions)."""

    def __init__(self, folder: str):
        self.folder = folder
        with open(os.path.join(folder, "pairs.json")) as f:
            self.meta = json.load(f)
        self.images = np.load(os.path.join(folder, "images.npy"), mmap_mode="r")
        self.labels = np.load(os.path.join(folder, "labels.npy"), mmap_mode="r")
        self.records = self.meta["records"]

    def __len__(self) -> int:
        return len(self.records)


def pairs_params(num: int, seed: int, start: int = 0, height: int = 256, width: int = 128,
                 view: Optional[str] = None) -> Dict[str, Any]:
    return {"num": int(num), "seed": int(seed), "start": int(start), "height": int(height),
            "width": int(width), "view": view, "image_text_version": IMAGE_TEXT_VERSION,
            "drawing_version": DRAWING_VERSION}


def build_pairs(cache_root: str, num: int, seed: int = 0, start: int = 0, height: int = 256,
                width: int = 128, view: Optional[str] = None, progress: bool = True) -> ImageTextPairs:
    """Pairs ``start .. start+num-1`` of stream ``seed``, rendered once into
    ``<cache_root>/pairs-<hash>`` (written under a temporary name, then renamed)."""
    params = pairs_params(num, seed, start, height, width, view)
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    folder = os.path.join(cache_root, f"pairs-{key}")
    if os.path.isfile(os.path.join(folder, "pairs.json")):
        return ImageTextPairs(folder)
    os.makedirs(cache_root, exist_ok=True)
    _remove_dead_leftovers(cache_root)
    tmp = f"{folder}.tmp-{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    try:
        _render_into(tmp, params, progress)
        if os.path.exists(folder):  # another process finished first: keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ImageTextPairs(folder)


def _remove_dead_leftovers(cache_root: str) -> None:
    """Temporary folders of renderings whose process is gone (killed): ``*.tmp-<pid>``."""
    for name in os.listdir(cache_root):
        head, sep, pid = name.rpartition(".tmp-")
        if not sep or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            logger.warning("Removing %s, left by an interrupted rendering", name)
            shutil.rmtree(os.path.join(cache_root, name), ignore_errors=True)
        except OSError:  # alive but not ours
            pass


def _render_into(folder: str, params: Dict[str, Any], progress: bool) -> None:
    num, h, w = params["num"], params["height"], params["width"]
    images = np.lib.format.open_memmap(os.path.join(folder, "images.npy"), "w+", np.uint8,
                                       (num, h, w, 3))
    labels = np.lib.format.open_memmap(os.path.join(folder, "labels.npy"), "w+", np.uint8,
                                       (num, h, w))
    scenes = _scenes(params["seed"], h, w)
    from tqdm import tqdm

    records = []
    for i in tqdm(range(num), desc="Rendering image-caption pairs", unit="pair",
                  disable=not progress):
        p = render_pair(params["start"] + i, params["seed"], h, w, scenes, params["view"])
        images[i], labels[i] = p["image"], p["label"]
        records.append({k: p[k] for k in ("captions", "part_visible", "view", "occluder")})
    images.flush()
    labels.flush()
    del images, labels
    with open(os.path.join(folder, "pairs.json"), "w") as f:
        json.dump({"params": params, "records": records}, f)
