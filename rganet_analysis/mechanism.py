"""Measuring what RGM, RAM and the memory bank do, against the generated data's ground truth.

The generated dataset (:mod:`rganet_plugin.data.datasets.synthetic`) writes a part mask for every
image and records which fraction of each part the occluder covers (``part_covered``). With them:

* :func:`measure_regions`: RGM masks (argmax over the part channels, on body pixels) against
  the part masks (part mIoU), the background channel against the person (foreground IoU), and the
  confidences ``w``, ``alpha``, ``beta`` of each region against visibility (AUROC, visible =
  less than half of the part covered).
* :func:`stripe_part_iou`: the same part mIoU for fixed stripes, the reference row.
* :func:`bank_alignment`: cosine between each memory-bank centre ``C_j`` and the mean feature of
  part ``j`` (ground-truth part pooling of the feature map over training images), and the mean
  RGM region feature ``F_j^r``.
* :func:`read_bank_log`: regions that passed the ``alpha`` filter per class per epoch, from the
  ``memory_bank.jsonl`` the training hook writes.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rganet_plugin.modeling.heads.region_generation import masked_average_pool, stripe_masks
from rganet_plugin.modeling.losses import patch_targets
from rganet_plugin.synthetic.region_metrics import (auroc, foreground_iou, part_iou, patch_to_pixels,
                                                   stripe_pixels)

__all__ = ["GroundTruth", "alignment_groups", "load_ground_truth", "measure_regions", "stripe_part_iou",
           "retrieval_by_alignment",
           "bank_alignment", "read_bank_log", "COVERED_THRESH"]

#: A region counts as covered when at least this fraction of its part is behind the occluder.
COVERED_THRESH = 0.5


def alignment_groups(framings: Sequence[str]) -> Dict[str, np.ndarray]:
    """``{"aligned": full views, "misaligned": shifted and partial views}`` as boolean masks over
    ``framings`` (the non-empty ones): the one rule every per-view figure uses."""
    f = np.asarray(framings)
    return {k: v for k, v in (("aligned", f == "full"), ("misaligned", f != "full")) if v.any()}


class GroundTruth:
    """Images of some splits of a generated dataset with their part masks and part occlusion."""

    def __init__(self, dataset_dir: str, records: List[Dict]):
        self.dataset_dir = dataset_dir
        self.records = records

    @property
    def paths(self) -> List[str]:
        return [os.path.join(self.dataset_dir, r["file"]) for r in self.records]

    def masks(self, idx: Sequence[int]) -> np.ndarray:
        from PIL import Image

        out = []
        for i in idx:
            with Image.open(os.path.join(self.dataset_dir, self.records[i]["mask"])) as m:
                out.append(np.asarray(m, dtype=np.int64))
        return np.stack(out)

    def covered(self) -> np.ndarray:
        """``(M, 4)`` fraction of each part behind the occluder."""
        return np.array([r.get("part_covered", [0.0] * 4) for r in self.records], np.float64)

    def __len__(self) -> int:
        return len(self.records)

    def framings(self) -> List[str]:
        """Each image's framing (``full``, ``shifted``, ``top``, ``bottom``; ``full`` in a set
        generated without the misaligned world, :mod:`rganet_plugin.synthetic.framing`)."""
        return [r.get("framing", "full") for r in self.records]

    def subset(self, keep: Sequence[bool]) -> "GroundTruth":
        """The images where ``keep`` is true."""
        return GroundTruth(self.dataset_dir, [r for r, k in zip(self.records, keep) if k])

    def by_alignment(self) -> Dict[str, "GroundTruth"]:
        """``{"aligned": full views, "misaligned": shifted and partial views}`` (non-empty ones)."""
        return {k: self.subset(keep) for k, keep in alignment_groups(self.framings()).items()}


def load_ground_truth(dataset_dir: str, splits: Sequence[str] = ("query", "gallery"),
                      limit: int = 0) -> GroundTruth:
    from rganet_plugin.synthetic.cache import MANIFEST_NAME

    path = os.path.join(dataset_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the mechanism checks need a generated dataset's manifest")
    with open(path) as f:
        manifest = json.load(f)
    recs = [r for r in manifest["images"] if r["split"] in splits]
    if recs and "part_covered" not in recs[0]:
        raise ValueError(f"{dataset_dir} was generated before part occlusion was recorded "
                         f"(generator version {manifest.get('version')}): delete it to regenerate")
    if limit:
        recs = recs[:limit]
    return GroundTruth(dataset_dir, recs)


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield list(range(i, min(n, i + size)))


@torch.no_grad()
def measure_regions(predictor, gt: GroundTruth, batch_size: int = 64,
                    by_alignment: bool = False) -> Dict[str, object]:
    """Part mIoU and foreground IoU of the model's masks, AUROC of ``w`` / ``alpha`` / ``beta``
    for visible against covered regions. ``predictor``: :class:`rganet_plugin.tools.predictor.
    Predictor` of a model with a region head. ``by_alignment``: also the same figures for the
    aligned and the misaligned images apart (``"by_alignment"``; one pass over the images)."""
    head = predictor.model.region_head
    if head is None:
        raise ValueError("this model has no region head")
    n = head.num_regions
    has_bg = predictor.region_mode == "rgm"
    preds, fgs, gts = [], [], []
    conf = {"weights": [], "alpha": [], "beta": []}
    for idx in _batches(len(gt), batch_size):
        d = predictor.details([gt.paths[i] for i in idx])
        masks = d["masks"]
        parts = masks[:, 1:] if has_bg else masks
        labels = gt.masks(idx).astype(np.uint8)
        preds.append(patch_to_pixels(parts.argmax(dim=1) + 1, labels.shape[-2:]).numpy()
                     .astype(np.uint8))
        if has_bg:
            fgs.append(patch_to_pixels((masks.argmax(dim=1) > 0).long(), labels.shape[-2:])
                       .numpy().astype(np.uint8))
        gts.append(labels)
        for k in conf:
            if d.get(k) is not None:
                conf[k].append(d[k].numpy())
    pred, lab = np.concatenate(preds), np.concatenate(gts)
    fg = np.concatenate(fgs) if has_bg else None
    conf = {k: np.concatenate(v) for k, v in conf.items() if v}
    covered = gt.covered()[:, :n] >= COVERED_THRESH
    out = _region_figures(np.arange(len(gt)), pred, lab, fg, conf, covered, n)
    if by_alignment:
        out["by_alignment"] = {
            name: _region_figures(np.flatnonzero(keep), pred, lab, fg, conf, covered, n)
            for name, keep in alignment_groups(gt.framings()).items()}
    return out


def _region_figures(rows, pred, lab, fg, conf, covered, n) -> Dict[str, object]:
    out: Dict[str, object] = {"num_images": len(rows)}
    iou = part_iou(pred[rows], lab[rows], n)
    out["part_miou"], out["part_iou"] = iou["miou"], iou["iou"]
    out["foreground_iou"] = foreground_iou(fg[rows], lab[rows]) if fg is not None else None
    cov = covered[rows]
    out["regions_covered"] = int(cov.sum())
    out["regions_visible"] = int((~cov).sum())
    for k in ("weights", "alpha", "beta"):
        v = conf[k][rows] if k in conf else None
        out[f"auroc_{k}"] = auroc(v.ravel(), (~cov).ravel()) if v is not None else None
        out[f"mean_{k}_visible"] = float(v[~cov].mean()) if v is not None else None
        out[f"mean_{k}_covered"] = float(v[cov].mean()) if v is not None and cov.any() else None
    return out


def retrieval_by_alignment(predictor, gt: GroundTruth) -> Dict[str, Dict[str, float]]:
    """Rank-1 / mAP (eq. 10 on the model's features, the evaluator's distance) of all queries of
    ``gt`` (query + gallery records) and of its aligned and misaligned queries apart; for a model
    with regions also ``global Rank-1`` / ``global mAP``: the same model ranked by its global
    feature alone (do the regions help at test, or did their losses change the backbone?)."""
    from rganet_plugin.evaluation.distance import weighted_region_distance
    from rganet_plugin.evaluation.ranking import evaluate_rank
    from rganet_plugin.modeling.outputs import Features

    feats = predictor.extract(gt.paths, progress=False)
    split = np.array([r["split"] for r in gt.records])
    pid = np.array([r["pid"] for r in gt.records])
    cam = np.array([r["camid"] for r in gt.records])
    q, g = np.flatnonzero(split == "query"), np.flatnonzero(split == "gallery")
    def rows(idx):
        return Features(feats.global_feat[idx], feats.region_feats[idx], feats.weights[idx])

    def global_rows(idx):  # N = 0: eq. (10) is the cosine distance of the global features
        return Features(feats.global_feat[idx], feats.region_feats[idx][:, :0], feats.weights[idx][:, :0])

    dists = {"": weighted_region_distance(rows(q), rows(g), device="cpu")}
    if feats.region_feats.shape[1]:  # the same model ranked by its global feature alone
        dists["global "] = weighted_region_distance(global_rows(q), global_rows(g), device="cpu")
    framing = np.array(gt.framings())[q]
    out = {}
    for name, keep in {"all": np.ones(len(q), bool), **alignment_groups(framing)}.items():
        if keep.any():
            out[name] = {"queries": int(keep.sum())}
            for prefix, dist in dists.items():
                cmc, ap, _ = evaluate_rank(dist[keep], pid[q][keep], pid[g], cam[q][keep], cam[g])
                out[name].update({prefix + "Rank-1": float(cmc[0] * 100),
                                  prefix + "mAP": float(np.mean(ap) * 100)})
    return out


def stripe_part_iou(gt: GroundTruth, num_parts: int, grid=(16, 8)) -> Dict[str, object]:
    """Part mIoU of fixed horizontal stripes (stripe ``j`` = part ``j``) on the same images."""
    preds, labs = [], []
    for idx in _batches(len(gt), 256):
        labels = gt.masks(idx)
        preds.append(stripe_pixels(num_parts, grid, len(idx), labels.shape[-2:]))
        labs.append(labels)
    iou = part_iou(np.concatenate(preds), np.concatenate(labs), num_parts)
    return {"part_miou": iou["miou"], "part_iou": iou["iou"], "num_images": len(gt)}


@torch.no_grad()
def bank_alignment(predictor, gt: GroundTruth, batch_size: int = 64) -> Dict[str, List[float]]:
    """``cos(C_j, mean_i pool(F_i, part mask j))`` and ``cos(C_j, mean_i F_ij^r)`` per class,
    and the same for the mean fixed-stripe features (where the bank started)."""
    head = predictor.model.region_head
    n = head.num_regions
    centres = head.memory.centers.detach().float().cpu()
    sums = {"part": torch.zeros(n, head.dim), "region": torch.zeros(n, head.dim),
            "stripe": torch.zeros(n, head.dim)}
    counts = torch.zeros(n)
    for idx in _batches(len(gt), batch_size):
        d = predictor.details([gt.paths[i] for i in idx])
        f = head.project(d["feature_map"].to(predictor.device)).float().cpu()
        labels = torch.from_numpy(gt.masks(idx))
        frac = patch_targets(labels, f.shape[-2:], n + 1, "soft")[:, 1:]  # area of part j
        pooled = masked_average_pool(frac, f)  # (B, N, d)
        present = frac.sum(dim=(2, 3)) > 0
        sums["part"] += (pooled * present[..., None]).sum(dim=0)
        counts += present.sum(dim=0)
        sums["region"] += d["region_feats"].float().sum(dim=0)
        stripes = stripe_masks(n, *f.shape[-2:]).unsqueeze(0).expand(len(idx), -1, -1, -1)
        sums["stripe"] += masked_average_pool(stripes, f).sum(dim=0)
    out = {}
    for k, s in sums.items():
        mean = s / (counts[:, None].clamp(min=1) if k == "part" else len(gt))
        out[f"cos_centre_{k}_mean"] = F.cosine_similarity(centres, mean, dim=1).tolist()
    return out


def read_bank_log(output_dir: str) -> Optional[Dict[str, object]]:
    """Per-epoch, per-class counts of regions that passed the ``alpha`` filter (``None`` when the
    run wrote no log: no region head, or an older run)."""
    path = os.path.join(output_dir, "memory_bank.jsonl")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines:
        return None
    per_epoch = np.array([line["selected"] for line in lines], np.int64)
    return {"classes": lines[0]["classes"], "epochs": [line["epoch"] for line in lines],
            "selected": per_epoch.tolist(), "total": per_epoch.sum(axis=0).tolist(),
            "images_per_epoch": lines[0]["images"], "alpha_thresh": lines[0]["alpha_thresh"]}
