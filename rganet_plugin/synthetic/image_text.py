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

**Placement** (``placement``): ``natural`` (the shipped weights' pairs) draws every view at the
person's usual height and scale, so a cutout's part sits at its natural rows and a part word can
be learned as a row. ``free`` breaks that tie (issue 19): full and occluded people are shifted
and scaled as the misaligned ReID world's (:mod:`rganet_plugin.synthetic.framing`), top and
bottom views are windows of 30-80 % of the body resized to the image (partial views), and a
cutout's part is zoomed to 25-80 % of the image height and put at a random height and side. The
extra draws come from their own stream, so ``natural`` pairs are unchanged.

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
from .framing import SHIFT_SCALE, SHIFT_X, body_window, resample

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_TEXT_VERSION", "VIEW_KINDS", "render_pair", "ImageTextPairs", "build_pairs"]

#: Bump when the pairs change (drawing, views or captions); part of the cache hash.
IMAGE_TEXT_VERSION = 2
VIEW_KINDS = (("full", 0.35), ("occluded", 0.2), ("top", 0.1), ("bottom", 0.1), ("cutout", 0.25))
#: Random streams: people and scenes of the pre-training pairs never share the ReID data's
#: streams (``[seed, 1, pid]`` for identities, ``[seed, 2, camera]`` for scenes).
_PERSON_STREAM, _SCENE_STREAM, _VIEW_STREAM, _PLACEMENT_STREAM = 101, 102, 103, 104
PLACEMENTS = ("natural", "free")
#: ``free`` placement: a partial view's window (fraction of the body's height) and a cutout's
#: part height (fraction of the image height).
FREE_WINDOW = (0.3, 0.8)
FREE_CUTOUT_HEIGHT = (0.25, 0.8)
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


def _free_box(label: np.ndarray, view: str, frng: np.random.Generator):
    """Where a ``free``-placement top / bottom view or cutout looks (``None``: no reframing)."""
    h, w = label.shape
    if view in ("top", "bottom"):
        return body_window(label, view, float(frng.uniform(*FREE_WINDOW)))
    if view != "cutout":
        return None
    rows = np.nonzero((label > 0).any(axis=1))[0]
    cols = np.nonzero((label > 0).any(axis=0))[0]
    part_h, part_w = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    win_h = part_h / frng.uniform(*FREE_CUTOUT_HEIGHT)      # the part fills that much of it
    win_w = max(win_h * w / h, part_w * 1.1)
    y0 = rows[0] - frng.random() * (win_h - part_h)          # the part at a random height
    x0 = cols[0] - frng.random() * max(0.0, win_w - part_w)  # and side
    return (x0, y0, x0 + win_w, y0 + win_h)


def render_pair(index: int, seed: int = 0, height: int = 256, width: int = 128,
                scenes: Optional[List[Dict[str, Any]]] = None, view: Optional[str] = None,
                num_captions: int = 3, placement: str = "natural") -> Dict[str, Any]:
    """Pair ``index`` of the stream ``seed``: image (HxWx3 uint8), ``num_captions`` captions
    (varied wording of the same content), label map (HxW uint8, 0 background, 1-4 parts),
    ``part_visible`` per part, ``view`` and ``occluder``; ``placement`` as in the module's
    docstring."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    h, w = height, width
    rng = np.random.default_rng([seed, _VIEW_STREAM, index])
    ident = _identity(np.random.default_rng([seed, _PERSON_STREAM, index]))
    if scenes is None:
        scenes = [_camera(np.random.default_rng([seed, _SCENE_STREAM, int(rng.integers(NUM_SCENES))]), h, w)]
    cam = scenes[int(rng.integers(len(scenes)))]
    if view is None:
        kinds, probs = zip(*VIEW_KINDS)
        view = kinds[int(rng.choice(len(kinds), p=np.array(probs)))]

    free = placement == "free"
    frng = np.random.default_rng([seed, _PLACEMENT_STREAM, index]) if free else None
    frame = None
    if free and view in ("full", "occluded"):
        frame = {"scale": frng.uniform(*SHIFT_SCALE), "top": frng.random(),
                 "dx": frng.uniform(-SHIFT_X, SHIFT_X)}
    label, material, geom = _draw_person(ident, rng, h, w, frame)
    person = _colourise(ident, material, geom, h, w)
    totals = np.bincount(label.ravel(), minlength=5)[1:5].astype(np.float64)
    if free and view in ("top", "bottom", "cutout"):
        if view == "cutout":
            keep = label == int(rng.integers(1, 5))
            label = np.where(keep, label, 0).astype(label.dtype)
            material = np.where(keep, material, 0).astype(material.dtype)
        box = _free_box(label, view, frng)
        label = resample(label, box, (h, w), nearest=True)
        material = resample(material, box, (h, w), nearest=True)
        person = resample(person, box, (h, w), nearest=False)
        totals = np.bincount(label.ravel(), minlength=5)[1:5].astype(np.float64) \
            if view == "cutout" else _scaled_totals(totals, box, h, w)
    elif view in ("top", "bottom"):
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


def _scaled_totals(totals: np.ndarray, box, h: int, w: int) -> np.ndarray:
    """Part areas of the whole person in the pixels of a view zoomed to ``box``, so that the
    view's ``part_visible`` is the fraction of each part inside the window."""
    return totals * (h / (box[3] - box[1])) * (w / (box[2] - box[0]))


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
                 view: Optional[str] = None, placement: str = "natural") -> Dict[str, Any]:
    params = {"num": int(num), "seed": int(seed), "start": int(start), "height": int(height),
              "width": int(width), "view": view, "image_text_version": IMAGE_TEXT_VERSION,
              "drawing_version": DRAWING_VERSION}
    if placement != "natural":  # the natural pairs keep their cache name
        params["placement"] = placement
    return params


def build_pairs(cache_root: str, num: int, seed: int = 0, start: int = 0, height: int = 256,
                width: int = 128, view: Optional[str] = None, progress: bool = True,
                placement: str = "natural") -> ImageTextPairs:
    """Pairs ``start .. start+num-1`` of stream ``seed``, rendered once into
    ``<cache_root>/pairs-<hash>`` (written under a temporary name, then renamed)."""
    params = pairs_params(num, seed, start, height, width, view, placement)
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
        p = render_pair(params["start"] + i, params["seed"], h, w, scenes, params["view"],
                        placement=params.get("placement", "natural"))
        images[i], labels[i] = p["image"], p["label"]
        records.append({k: p[k] for k in ("captions", "part_visible", "view", "occluder")})
    images.flush()
    labels.flush()
    del images, labels
    with open(os.path.join(folder, "pairs.json"), "w") as f:
        json.dump({"params": params, "records": records}, f)
