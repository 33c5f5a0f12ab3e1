"""Stage 1 of AG-ReID: attribute pseudo-labels from the person CLIP, zero-shot.

For every training image and every attribute group (:mod:`agreid.vocabulary`):

1. the image feature: the mean of the CLIP's projected patch tokens, over the whole image
   (``MODEL.AGREID.LABELS.VIEW: global``, the CLIP's own image feature) or over the rows where
   the group's body part usually is (``band``, :data:`BANDS`);
2. per value, the text feature: the normalised mean over its prompts (``ENSEMBLE: mean``) or its
   first prompt (``first``);
3. centring (``CENTER``): each value's mean cosine over the training set is subtracted (a
   prompt's prior, whatever the image; estimated without labels);
4. probabilities: softmax over the group's values of the CLIP's logit scale times the cosine;
5. voting (``VOTING``): ``image`` keeps each image's argmax; ``identity`` averages the
   probabilities over the identity's training images (identities are known in supervised ReID)
   and gives all of them the argmax;
6. rejection: a label whose confidence (its probability after voting) is below ``THRESHOLD`` is
   ``-1`` (ignored by the losses).

The labels file (JSON, :func:`write_labels`)::

    {"format": "agreid-labels/1", "settings": {...}, "groups": {group: [value, ...]},
     "images": [{"path": ..., "pid": ..., "labels": {group: index or -1},
                 "argmax": {group: index}, "confidence": {group: float}}, ...],
     "report": {group: {...}}   # only where the generator's truth exists}

Where the training images come from the generator (a ``synthetic_manifest.json`` two folders up),
:func:`truth_of` reads what it drew and :func:`label_report` measures, per group: accuracy before
rejection, coverage and accuracy after it, the majority-class share and the most frequent confusions.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rganet_plugin.config.setup import ConfigError

from .vocabulary import PART_OF_GROUP, check_groups, group_prompts, group_values, true_attributes

logger = logging.getLogger(__name__)

__all__ = ["BANDS", "LABELS_FORMAT", "labelling_settings", "attribute_text_features",
           "label_items", "image_features", "assign", "vote", "sweep", "truth_of", "label_report", "write_labels", "read_labels",
           "default_labels_path", "format_report"]

LABELS_FORMAT = "agreid-labels/1"
#: rows (fraction of the image height) where each part usually is in a 256x128 person box
BANDS = {"head": (0.0, 0.25), "upper": (0.12, 0.55), "lower": (0.45, 0.95), "foot": (0.8, 1.0)}


def labelling_settings(cfg) -> Dict:
    """What the labels depend on (recorded in the file; a file with other settings is not reused)."""
    lab = cfg.MODEL.AGREID.LABELS
    b = cfg.MODEL.BACKBONE
    return {"groups": list(cfg.MODEL.AGREID.GROUPS), "ensemble": lab.ENSEMBLE,
            "voting": lab.VOTING, "threshold": float(lab.THRESHOLD), "view": lab.VIEW,
            "center": bool(lab.CENTER),
            "clip": b.CLIP.NAME, "weights": b.PRETRAIN_PATH or b.CLIP.PRETRAINED_TAG,
            "size": list(cfg.INPUT.SIZE_TEST)}


def _settings_hash(settings: Dict) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def default_labels_path(cfg, items) -> str:
    """``<dataset folder>/agreid_labels/<hash of the settings>.json``: next to the dataset (the
    folder above the training images' split folder)."""
    dataset_dir = os.path.dirname(os.path.dirname(os.path.abspath(items[0][0])))
    return os.path.join(dataset_dir, "agreid_labels", _settings_hash(labelling_settings(cfg)) + ".json")


@torch.no_grad()
def attribute_text_features(encode_text, groups: Sequence[str], ensemble: str = "mean"
                            ) -> List[torch.Tensor]:
    """Per group, ``(values, d)`` unit text features; ``encode_text(list of str) -> (n, d)``."""
    out = []
    for g in groups:
        feats = [F.normalize(F.normalize(encode_text(p).float(), dim=-1).mean(0), dim=0)
                 for p in group_prompts(g, ensemble)]
        out.append(torch.stack(feats))
    return out


def _clip_models(cfg):
    """The person CLIP of the config: (image backbone, text tower, logit scale)."""
    from rganet_plugin.modeling.backbones.clip_choice import clip_choice
    from rganet_plugin.modeling.backbones.clip_text import CLIPTextTower
    from rganet_plugin.modeling.backbones.clip_vit import CLIPViTBackbone, clip_model_from_cfg

    choice = clip_choice(cfg)
    if choice.image is None:
        raise ConfigError(f"AG-ReID labels images with the CLIP backbone; MODEL.BACKBONE.NAME is "
                          f"{cfg.MODEL.BACKBONE.NAME!r} (use build_clip_vit_backbone)")
    if not choice.image.pretrain:
        raise ConfigError("AG-ReID's pseudo-labels need a pre-trained CLIP: MODEL.BACKBONE.PRETRAIN "
                          "is False (a random CLIP names no attribute)")
    model = clip_model_from_cfg(cfg, choice.image).eval()
    name = cfg.MODEL.BACKBONE.CLIP.NAME
    backbone = CLIPViTBackbone(model, name, image_size=tuple(cfg.INPUT.SIZE_TEST)).eval()
    scale = float(model.logit_scale.detach().exp()) if hasattr(model, "logit_scale") else 100.0
    return backbone, CLIPTextTower(model, name), scale


def _band_mean(fmap: torch.Tensor, part: str) -> torch.Tensor:
    h = fmap.shape[-2]
    lo, hi = BANDS[part]
    r0, r1 = int(np.floor(lo * h)), max(int(np.ceil(hi * h)), int(np.floor(lo * h)) + 1)
    return fmap[:, :, r0:r1].mean(dim=(2, 3))


def vote(probs: np.ndarray, pids: Sequence, voting: str) -> np.ndarray:
    """``probs`` (N, K) per image -> per image (N, K): itself (``image``) or the mean over the
    images of the same identity (``identity``)."""
    if voting == "image":
        return probs
    pids = np.asarray(pids)
    out = np.empty_like(probs)
    for p in np.unique(pids):
        sel = pids == p
        out[sel] = probs[sel].mean(axis=0)
    return out


@torch.no_grad()
def image_features(cfg, items, backbone) -> Dict[str, torch.Tensor]:
    """Unit image features of ``items`` in one pass: ``"global"`` (mean of all projected patch
    tokens) and one per body part (mean over the part's rows, :data:`BANDS`)."""
    from rganet_plugin.data import build as data_build

    mean = torch.tensor(cfg.MODEL.PIXEL_MEAN).view(1, -1, 1, 1)
    std = torch.tensor(cfg.MODEL.PIXEL_STD).view(1, -1, 1, 1)
    feats = defaultdict(list)
    for batch in data_build.train_feature_loader(cfg, items):
        fmap = backbone.forward_features((batch["images"].float() - mean) / std)["feature_map"]
        feats["global"].append(fmap.mean(dim=(2, 3)))
        for part in BANDS:
            feats[part].append(_band_mean(fmap, part))
    return {k: F.normalize(torch.cat(v).float(), dim=-1) for k, v in feats.items()}


def assign(feats: torch.Tensor, texts: torch.Tensor, pids: Sequence, scale: float, voting: str,
           threshold: float, center: bool):
    """One group's labels: ``(argmax, confidence, label)`` per image (label -1: rejected).
    ``center``: subtract each value's mean cosine over the images first (the prior a text
    prompt carries whatever the image, estimated on the unlabelled set itself)."""
    cos = feats @ texts.t()
    if center:
        cos = cos - cos.mean(dim=0, keepdim=True)
    probs = vote(torch.softmax(scale * cos, dim=-1).numpy(), pids, voting)
    idx, conf = probs.argmax(axis=1), probs.max(axis=1)
    return idx, conf, np.where(conf >= threshold, idx, -1)


@torch.no_grad()
def label_items(cfg, items, models=None, feats=None) -> Dict:
    """Label ``items`` (fast-reid training items: path, pid, camid) zero-shot; the labels-file
    content (without the report). ``models`` / ``feats``: :func:`_clip_models` and
    :func:`image_features` already computed (the sweep reuses them)."""
    if not items:
        raise ValueError("no training images to label (the training set is empty)")
    lab = cfg.MODEL.AGREID.LABELS
    groups = check_groups(cfg.MODEL.AGREID.GROUPS)
    backbone, tower, scale = models or _clip_models(cfg)
    texts = attribute_text_features(tower.encode_text, groups, lab.ENSEMBLE)
    feats = feats or image_features(cfg, items, backbone)
    pids = [it[1] for it in items]
    images = [{"path": it[0], "pid": it[1], "labels": {}, "argmax": {}, "confidence": {}}
              for it in items]
    for g, t in zip(groups, texts):
        f = feats["global" if lab.VIEW == "global" else PART_OF_GROUP[g]]
        idx, conf, label = assign(f, t, pids, scale, lab.VOTING, lab.THRESHOLD, lab.CENTER)
        for rec, k, c, y in zip(images, idx, conf, label):
            rec["argmax"][g] = int(k)
            rec["labels"][g] = int(y)
            rec["confidence"][g] = round(float(c), 4)
    return {"format": LABELS_FORMAT, "settings": labelling_settings(cfg),
            "groups": {g: group_values(g) for g in groups}, "images": images}


SWEEP = {"VIEW": ("global", "band"), "ENSEMBLE": ("first", "mean"), "VOTING": ("image", "identity"),
         "CENTER": (False, True)}


@torch.no_grad()
def sweep(cfg, items, truth, thresholds=(0.0, 0.3, 0.5, 0.7)) -> str:
    """The measurement behind the labelling defaults: mean over the groups of accuracy (before
    rejection) for every combination of :data:`SWEEP`, then coverage and kept accuracy at
    ``thresholds`` for the config's own combination. Markdown tables."""
    import itertools

    models = _clip_models(cfg)
    feats = image_features(cfg, items, models[0])
    lab = cfg.MODEL.AGREID.LABELS
    lines = ["| view | ensemble | voting | center | mean accuracy | worst group |", "|---|---|---|---|---|---|"]
    for combo in itertools.product(*SWEEP.values()):
        c = cfg.clone()
        c.defrost()
        for key, value in zip(SWEEP, combo):
            setattr(c.MODEL.AGREID.LABELS, key, value)
        c.MODEL.AGREID.LABELS.THRESHOLD = 0.0
        rep = label_report(label_items(c, items, models, feats), truth)
        worst = min(rep, key=lambda g: rep[g]["accuracy"] - rep[g]["majority"])
        lines.append(f"| {combo[0]} | {combo[1]} | {combo[2]} | {combo[3]} | "
                     f"{np.mean([r['accuracy'] for r in rep.values()]):.3f} | {worst} "
                     f"({rep[worst]['accuracy']:.2f} vs majority {rep[worst]['majority']:.2f}) |")
    lines += ["", f"Rejection, at view {lab.VIEW}, ensemble {lab.ENSEMBLE}, voting {lab.VOTING}, "
              f"center {lab.CENTER}:", "", "| threshold | mean coverage | mean accuracy (kept) |",
              "|---|---|---|"]
    for t in thresholds:
        c = cfg.clone()
        c.defrost()
        c.MODEL.AGREID.LABELS.THRESHOLD = t
        rep = label_report(label_items(c, items, models, feats), truth)
        lines.append(f"| {t} | {np.mean([r['coverage'] for r in rep.values()]):.3f} | "
                     f"{np.nanmean([r['accepted_accuracy'] for r in rep.values()]):.3f} |")
    return "\n".join(lines)


def truth_of(paths: Sequence[str]) -> Optional[List[Dict[str, str]]]:
    """What the generator drew for each image (its identity's attributes), or None when the
    images do not come from a generated set (no ``synthetic_manifest.json`` two folders up)."""
    from rganet_plugin.synthetic.cache import read_manifest
    from rganet_plugin.synthetic.occluded_duke import identities

    manifests = {}
    out = []
    for p in paths:
        d = os.path.dirname(os.path.dirname(os.path.abspath(p)))
        if d not in manifests:
            m = read_manifest(d)
            if m is None or "params" not in m:
                return None
            pids = {int(r["pid"]) for r in m["images"]}
            manifests[d] = identities(m["params"], pids)[0]
        pid = int(os.path.basename(p).split("_")[0])
        out.append(true_attributes(manifests[d][pid]))
    return out


def label_report(content: Dict, truth: List[Dict[str, str]], top: int = 3) -> Dict[str, Dict]:
    """Per group: ``accuracy`` (argmax before rejection, all images), ``coverage`` (share kept),
    ``accepted_accuracy`` (on the kept ones), ``majority`` (share of the most frequent true
    value: what a constant label scores), ``confusions`` (the ``top`` most frequent
    ``true->predicted`` errors among the kept)."""
    out = {}
    for g, values in content["groups"].items():
        n = len(content["images"])
        preds = [rec["labels"][g] for rec in content["images"]]
        raw = [rec["argmax"][g] for rec in content["images"]]
        true = [t[g] for t in truth]
        kept = [i for i, p in enumerate(preds) if p >= 0]
        correct_all = sum(values[r] == t for r, t in zip(raw, true))
        correct = sum(values[preds[i]] == true[i] for i in kept)
        conf = Counter(f"{true[i]}->{values[preds[i]]}" for i in kept if values[preds[i]] != true[i])
        out[g] = {"accuracy": correct_all / n, "coverage": len(kept) / n,
                  "accepted_accuracy": correct / len(kept) if kept else float("nan"),
                  "majority": Counter(true).most_common(1)[0][1] / n,
                  "values_seen": len(set(true)),
                  "confusions": ", ".join(f"{k} ({v})" for k, v in conf.most_common(top))}
    return out


def format_report(report: Dict[str, Dict]) -> str:
    lines = ["| group | accuracy (all) | coverage | accuracy (kept) | majority value | true values | "
             "most frequent confusions (kept) |", "|---|---|---|---|---|---|---|"]
    mean = defaultdict(list)
    for g, r in report.items():
        for k in ("accuracy", "coverage", "accepted_accuracy", "majority"):
            mean[k].append(r[k])
        lines.append(f"| {g} | {r['accuracy']:.3f} | {r['coverage']:.3f} | "
                     f"{r['accepted_accuracy']:.3f} | {r['majority']:.3f} | {r['values_seen']} | "
                     f"{r['confusions'] or '-'} |")
    lines.append("| **mean** | " + " | ".join(f"{np.nanmean(mean[k]):.3f}" for k in
                                              ("accuracy", "coverage", "accepted_accuracy", "majority"))
                 + " | | |")
    return "\n".join(lines)


def write_labels(content: Dict, path: str) -> str:
    """Write the labels file atomically (a temporary file renamed into place)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(content, f)
    os.replace(tmp, path)
    return path


def read_labels(path: str, groups: Sequence[str]) -> Dict:
    """A labels file; one of another format, or without every group of ``groups``, is a
    ``ValueError`` naming what is wrong."""
    try:
        with open(path) as f:
            content = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"AG-ReID labels file not found: {path} (make it with "
                                f"`python -m agreid.tools label --config-file ...`)") from None
    except ValueError as e:
        raise ValueError(f"AG-ReID labels file {path} is not JSON ({e})") from None
    if content.get("format") != LABELS_FORMAT:
        raise ValueError(f"{path} is not an AG-ReID labels file (format {content.get('format')!r}, "
                         f"expected {LABELS_FORMAT!r})")
    missing = [g for g in groups if g not in content.get("groups", {})]
    if missing:
        raise ValueError(f"{path} has no labels for the group(s) {missing} (it has "
                         f"{list(content.get('groups', {}))})")
    return content
