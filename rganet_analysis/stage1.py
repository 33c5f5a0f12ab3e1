"""Stage 1 against its ceilings (issue 19): what the prompt learner reaches on its frozen tokens,
next to what any read-out of the same tokens with the same loss could reach.

Stage 1 (:class:`~rganet_plugin.modeling.meta_arch.prompt_learner.RGANetPromptLearner`) trains
only the prompt context (and ``p_0``) against pseudo part masks with ``L_seg``; the backbone is
frozen and its inputs are not augmented, so its tokens are a fixed function of the image. They are
computed once here (:func:`frozen_tokens`), and three read-outs learn on them with the same
patch targets and the same ``L_seg`` (``include_background=True``):

* ``prompt``: the prompt learner's own prompts through CLIP's frozen text tower, read out by the
  RGM's cosine, gamma and softmax (eq. 1): what stage 1 is;
* ``free``: N + 1 free vectors in the same cosine, gamma and softmax (initialised from the
  prompts' prototypes): the ceiling of any prototype the text tower could give;
* ``probe``: a linear layer from the token to the N + 1 classes, softmax: the ceiling of any
  linear read-out of the tokens.

Each is scored like :func:`rganet_analysis.mechanism.measure_regions` scores a model (the argmax
over the part channels per patch, on body pixels) on held-apart images, per framing.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
from torch import nn

from rganet_plugin.modeling.heads.region_generation import region_masks
from rganet_plugin.modeling.losses import patch_targets, segmentation_loss
from rganet_plugin.synthetic.region_metrics import part_iou, patch_to_pixels

from .mechanism import alignment_groups

ARMS = ("prompt", "free", "probe")


def build_stage1_model(cfg):
    """The stage-1 model (``RGANetPromptLearner``) of a stage-2 config, with its pre-trained CLIP,
    on the CPU, in eval mode."""
    from fastreid.modeling import build_model
    from rganet_plugin.engine.stages import prompt_stage_cfg

    c = prompt_stage_cfg(cfg)
    c.defrost()
    c.MODEL.DEVICE = "cpu"
    c.freeze()
    return build_model(c).eval()


@torch.no_grad()
def frozen_tokens(model, cfg, paths: Sequence[str], batch: int = 64) -> torch.Tensor:
    """The tokens the RGM reads (backbone feature map through the region head's projection),
    ``(len(paths), d, H, W)``, for the images at ``paths`` with the test transform (stage 1's
    un-augmented input)."""
    from fastreid.data.transforms import build_transforms
    from PIL import Image

    tf = build_transforms(cfg, is_train=False)
    out = []
    for i in range(0, len(paths), batch):
        imgs = []
        for p in paths[i:i + batch]:
            with Image.open(p) as im:
                imgs.append(tf(im.convert("RGB")))
        x = model.preprocess_image(torch.stack(imgs))
        fmap, _ = model.extract(x)
        out.append(model.region_head.project(fmap).float())
    return torch.cat(out)


def seg_targets(labels: np.ndarray, grid, num_classes: int, mode: str = "majority") -> torch.Tensor:
    """Stage 1's patch targets of label maps ``(M, H_img, W_img)`` on the token ``grid``."""
    return patch_targets(torch.from_numpy(np.asarray(labels, np.int64)), grid, num_classes, mode)


def fit_readout(arm: str, model, tokens: torch.Tensor, targets: torch.Tensor, epochs: int,
                lr: float, batch: int = 32, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Train one read-out on ``tokens`` with ``L_seg`` (Adam, ``epochs`` passes in batches of
    ``batch``); returns ``masks(tokens) -> (B, N + 1, H, W)`` (background first)."""
    if arm not in ARMS:
        raise ValueError(f"unknown read-out {arm!r}; choose from {ARMS}")
    head = model.region_head
    gamma = head.generator.gamma
    if arm == "prompt":
        params = [model.prompts.ctx, head.background]

        def masks(t):
            return head.masks(t, model.prompts(model.text_tower).float())
    elif arm == "free":
        with torch.no_grad():
            init = torch.cat([head.background[None].float(),
                              model.prompts(model.text_tower).float()])
        protos = nn.Parameter(init.clone())
        params = [protos]

        def masks(t):
            return region_masks(t, protos[1:], protos[0], gamma)
    else:  # the linear probe
        gen = torch.Generator().manual_seed(seed)
        layer = nn.Conv2d(tokens.shape[1], head.num_regions + 1, 1)
        with torch.no_grad():
            layer.weight.normal_(0, 0.01, generator=gen)
            layer.bias.zero_()
        params = list(layer.parameters())

        def masks(t):
            return torch.softmax(layer(t), dim=1)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = tokens.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            loss = segmentation_loss(masks(tokens[idx]), targets[idx], include_background=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return lambda t: masks(t).detach()


@torch.no_grad()
def score_masks(masks_fn, tokens: torch.Tensor, labels: np.ndarray, num_parts: int,
                batch: int = 256) -> Dict[str, object]:
    """Part mIoU on body pixels of the read-out's masks (argmax over the part channels per patch,
    spread over the patch's pixels), as the mechanism benchmark scores a model's masks."""
    preds = []
    for i in range(0, tokens.shape[0], batch):
        m = masks_fn(tokens[i:i + batch])
        preds.append(patch_to_pixels(m[:, 1:].argmax(dim=1) + 1, labels.shape[-2:]).numpy()
                     .astype(np.uint8))
    return part_iou(np.concatenate(preds), labels, num_parts)


def groups_of(framings: Sequence[str]) -> Dict[str, np.ndarray]:
    """Index sets of the views scored apart: all, aligned (full), misaligned (shifted, top and
    bottom windows), and each misaligned framing alone (non-empty ones)."""
    f = np.asarray(framings)
    out = {"all": np.arange(len(f)),
           **{k: np.flatnonzero(v) for k, v in alignment_groups(f).items()}}
    for name in ("shifted", "top", "bottom"):
        out[name] = np.flatnonzero(f == name)
    return {k: v for k, v in out.items() if len(v)}


def ceiling_rows(results: Dict[str, Dict[str, List[float]]], groups: Sequence[str]) -> List[str]:
    """Markdown rows: read-out -> per group ``mean ± std`` over seeds."""
    rows = []
    for name, per_group in results.items():
        cells = []
        for g in groups:
            v = per_group.get(g, [])
            cells.append("n/a" if not v else f"{np.mean(v):.3f}" if len(v) == 1
                         else f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


__all__ = ["ARMS", "build_stage1_model", "frozen_tokens", "seg_targets", "fit_readout",
           "score_masks", "groups_of", "ceiling_rows"]
