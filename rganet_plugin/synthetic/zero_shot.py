"""Zero-shot checks of a CLIP model on held-apart generated people (before any ReID training).

* **Caption-to-image retrieval**: each held-apart person's caption against all their images;
  R@1 / R@5 of the right image (chance ``1/N``), and image-to-caption R@1.
* **Part localisation**: per patch, the argmax over the part prompts ("a {} part of a person.")
  of the cosine between the projected patch token and the prompt's text feature, spread over the
  patch's pixels and scored against the generator's part masks on body pixels
  (:func:`rganet_plugin.synthetic.region_metrics.part_iou`).

The held-apart people are pairs ``10_000_000 ..`` of the pre-training stream: never trained on,
drawn in the ``full`` view (whole person, no occluder) for retrieval and the headline part mIoU.
Part localisation is also reported per view (issue 19): ``full``, ``top`` and ``bottom`` (the
camera frames the upper or lower part of the person; the person shifted down or up, so a part is
not at its usual rows) and ``occluded``, each next to fixed stripes scored on the same images, and
the **linear probe's part mIoU** (a logistic regression from a patch token to its part, trained on
3/4 of the full views and scored on the rest, pixels as for the prompts): what the tokens hold in
any direction, the ceiling of a read-out from them. ``readout`` picks the dense read-out of the
last block the patch tokens come from (``--readout`` of ``pretrain-clip``; MaskCLIP's value path
and others, ``modeling/backbones/clip_dense_readout.py``); retrieval does not depend on it.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.losses import patch_targets
from .region_metrics import part_iou, patch_to_pixels, stripe_pixels

HELD_APART_START = 10_000_000
#: Views of the per-view localisation table (``render_pair`` views, natural placement).
LOCALISATION_VIEWS = ("full", "top", "bottom", "occluded")
PART_CLASSES = ("head", "upper body", "lower body", "foot")
PART_TEMPLATE = "a {} part of a person."


@torch.no_grad()
def patch_features(model, name: str, images: torch.Tensor, batch: int = 64,
                   readout: str = "tokens") -> torch.Tensor:
    """Projected patch tokens ``(B, d, gh, gw)`` of an open_clip ViT (the ReID backbone's path,
    with its dense ``readout`` of the last block)."""
    from ..modeling.backbones.clip_vit import CLIPViTBackbone

    bb = CLIPViTBackbone(model, name, image_size=tuple(images.shape[-2:]),
                         dense_readout=readout).eval()
    return torch.cat([bb.forward_features(images[i:i + batch])["feature_map"]
                      for i in range(0, len(images), batch)])


@torch.no_grad()
def text_features(model, name: str, texts: Sequence[str]) -> torch.Tensor:
    import open_clip

    tok = open_clip.get_tokenizer(name)
    return model.encode_text(tok(list(texts)))


@torch.no_grad()
def part_localisation(fmap: torch.Tensor, protos: torch.Tensor, labels: np.ndarray) -> Dict:
    """Argmax of ``cos(F(x, y), p_k)`` over the parts, scored on body pixels."""
    cos = torch.einsum("bdhw,kd->bkhw", F.normalize(fmap, dim=1), F.normalize(protos, dim=1))
    pred = patch_to_pixels(cos.argmax(dim=1) + 1, labels.shape[-2:]).numpy()
    return part_iou(pred, labels, protos.shape[0])


def retrieval(img_f: torch.Tensor, txt_f: torch.Tensor, ks=(1, 5)) -> Dict[str, float]:
    """Caption ``i`` should find image ``i``; recall at ``ks`` both ways."""
    sim = F.normalize(txt_f, dim=-1) @ F.normalize(img_f, dim=-1).t()
    gt = torch.arange(len(sim))
    out = {}
    rank_t2i = (sim > sim[gt, gt][:, None]).sum(dim=1)
    rank_i2t = (sim.t() > sim[gt, gt][:, None]).sum(dim=1)
    for k in ks:
        out[f"text_to_image_R@{k}"] = float((rank_t2i < k).float().mean())
    out["image_to_text_R@1"] = float((rank_i2t < 1).float().mean())
    out["chance_R@1"] = 1.0 / len(sim)
    return out


@torch.no_grad()
def zero_shot_report(model, name: str, cache_root: str, seed: int = 0, num: int = 512,
                     progress: bool = False, readout: str = "tokens") -> Dict:
    from .image_text import build_pairs, images_to_tensor

    model.eval()
    pairs = build_pairs(cache_root, num, seed, start=HELD_APART_START, view="full",
                        progress=progress)
    images = images_to_tensor(pairs.images[:])
    img_f = torch.cat([model.encode_image(images[i:i + 64]) for i in range(0, len(images), 64)])
    fmap = patch_features(model, name, images, readout=readout)
    txt_f = text_features(model, name, [r["captions"][0] for r in pairs.records])
    report = retrieval(img_f, txt_f)
    protos = text_features(model, name, [PART_TEMPLATE.format(c) for c in PART_CLASSES])
    loc = part_localisation(fmap, protos, np.asarray(pairs.labels[:]))
    report["part_miou"] = loc["miou"]
    report["part_iou"] = dict(zip(PART_CLASSES, loc["iou"]))
    report["num_people"], report["readout"] = len(pairs), readout
    report.update(dense_diagnostics(fmap, protos, np.asarray(pairs.labels[:])))
    report["views"] = {"full": _view_row(loc, np.asarray(pairs.labels[:]), len(protos),
                                         fmap.shape[-2:])}
    for view in LOCALISATION_VIEWS[1:]:
        vp = build_pairs(cache_root, num, seed, start=HELD_APART_START, view=view,
                         progress=progress)
        labels = np.asarray(vp.labels[:])
        vloc = part_localisation(patch_features(model, name, images_to_tensor(vp.images[:]),
                                                readout=readout), protos, labels)
        report["views"][view] = _view_row(vloc, labels, len(protos), fmap.shape[-2:])
    return report


def _view_row(loc: Dict, labels: np.ndarray, num_parts: int, grid) -> Dict:
    """A view's prompt read-out next to fixed stripes (on the patch ``grid``) on the same images."""
    pred = stripe_pixels(num_parts, grid, len(labels), labels.shape[-2:])
    return {"prompt_miou": loc["miou"], "prompt_iou": dict(zip(PART_CLASSES, loc["iou"])),
            "stripes_miou": part_iou(pred, labels, num_parts)["miou"], "num_images": len(labels)}


@torch.no_grad()
def dense_diagnostics(fmap: torch.Tensor, protos: torch.Tensor, labels: np.ndarray) -> Dict:
    """Why part localisation works or not:

    * ``part_prompt_cos``: mean cosine between different part prompts (near 1: the text tower
      does not tell the parts apart);
    * ``prompt_cos_body`` / ``prompt_cos_background``: mean cosine of the part prompts with
      body patches and with background patches (patches by majority label);
    * ``linear_probe_acc``: a logistic regression from the normalised patch tokens to the
      patch's part (patches at least 30% body; trained on 3/4 of the images, scored on the
      rest), next to ``linear_probe_majority`` (always the most frequent part): whether the
      tokens hold the part at all, in any direction.
    """
    from sklearn.linear_model import LogisticRegression

    p = F.normalize(protos.float(), dim=1)
    k = p.shape[0]
    pc = p @ p.t()
    out = {"part_prompt_cos": float((pc.sum() - pc.diag().sum()) / (k * k - k))}
    f = F.normalize(fmap.float(), dim=1)
    frac = patch_targets(torch.from_numpy(np.asarray(labels, np.int64)), f.shape[-2:], k + 1,
                         "soft")  # area of background and of each part in each patch
    cos = torch.einsum("bdhw,kd->bhw", f, p) / k  # mean over prompts
    maj = frac.argmax(dim=1)
    out["prompt_cos_body"] = float(cos[maj > 0].mean())
    out["prompt_cos_background"] = float(cos[maj == 0].mean())
    body = frac[:, 1:].sum(dim=1) >= 0.3
    y = frac[:, 1:].argmax(dim=1)
    n_img = f.shape[0]
    split = max(1, n_img * 3 // 4)
    tokens = f.permute(0, 2, 3, 1)
    xtr, ytr = tokens[:split][body[:split]].numpy(), y[:split][body[:split]].numpy()
    xte, yte = tokens[split:][body[split:]].numpy(), y[split:][body[split:]].numpy()
    if len(set(ytr.tolist())) > 1 and len(yte):
        clf = LogisticRegression(max_iter=300).fit(xtr, ytr)
        out["linear_probe_acc"] = float(clf.score(xte, yte))
        out["linear_probe_majority"] = float(np.mean(yte == np.bincount(ytr).argmax()))
        # every patch of the held-out images, spread over its pixels, scored like the prompts
        held = tokens[split:]
        pred = torch.from_numpy(clf.predict(held.reshape(-1, held.shape[-1]).numpy()))
        pred = patch_to_pixels(pred.view(held.shape[:3]) + 1, labels.shape[-2:]).numpy()
        out["linear_probe_miou"] = part_iou(pred, np.asarray(labels)[split:], k)["miou"]
    return out
