"""Zero-shot checks of a CLIP model on held-apart generated people (before any ReID training).

* **Caption-to-image retrieval**: each held-apart person's caption against all their images;
  R@1 / R@5 of the right image (chance ``1/N``), and image-to-caption R@1.
* **Part localisation**: per patch, the argmax over the part prompts ("a {} part of a person.")
  of the cosine between the projected patch token and the prompt's text feature, spread over the
  patch's pixels and scored against the generator's part masks on body pixels
  (:func:`rganet_plugin.evaluation.region_metrics.part_iou`).

The held-apart people are pairs ``10_000_000 ..`` of the pre-training stream: never trained on,
drawn in the ``full`` view (whole person, no occluder).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .region_metrics import part_iou, patch_to_pixels

HELD_APART_START = 10_000_000
PART_CLASSES = ("head", "upper body", "lower body", "foot")
PART_TEMPLATE = "a {} part of a person."


@torch.no_grad()
def patch_features(model, name: str, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Projected patch tokens ``(B, d, gh, gw)`` of an open_clip ViT (the ReID backbone's path)."""
    from ..modeling.backbones.clip_vit import CLIPViTBackbone

    bb = CLIPViTBackbone(model, name, image_size=tuple(images.shape[-2:])).eval()
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
                     progress: bool = False) -> Dict:
    from ..data.image_text import build_pairs
    from ..engine.clip_pretrain import images_to_tensor

    model.eval()
    pairs = build_pairs(cache_root, num, seed, start=HELD_APART_START, view="full",
                        progress=progress)
    images = images_to_tensor(pairs.images[:])
    img_f = torch.cat([model.encode_image(images[i:i + 64]) for i in range(0, len(images), 64)])
    fmap = patch_features(model, name, images)
    txt_f = text_features(model, name, [r["captions"][0] for r in pairs.records])
    report = retrieval(img_f, txt_f)
    protos = text_features(model, name, [PART_TEMPLATE.format(c) for c in PART_CLASSES])
    loc = part_localisation(fmap, protos, np.asarray(pairs.labels[:]))
    report["part_miou"] = loc["miou"]
    report["part_iou"] = dict(zip(PART_CLASSES, loc["iou"]))
    report["num_people"] = len(pairs)
    return report
