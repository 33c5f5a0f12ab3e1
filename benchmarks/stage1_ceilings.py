#!/usr/bin/env python
"""Stage 1 against its ceilings (issue 19): the prompt learner, free prototypes and a linear probe
on the same frozen tokens with the same L_seg, and the paper's prompt structure (context length,
class-specific context, learning rate, epochs) one key at a time, scored per framing against the
generator's part masks, next to fixed stripes on the same images.

    .venv/bin/python benchmarks/stage1_ceilings.py [--seeds 0 1 2] [--variants ...]
        [--world benchmark|default] [-- KEY VALUE ...]     # config overrides

The tokens are computed once (``rganet_analysis.stage1``); each read-out trains on them, so the
whole table takes minutes on 2 cores. ``--world benchmark`` (the default) is the misaligned world
of ``benchmarks/misaligned_world.py``; ``default`` the demo's data.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rganet_analysis import stage1  # noqa: E402
from rganet_analysis.machine import cpu_model, load_average  # noqa: E402

CONFIG = "configs/Demo/rganet_demo.yml"
#: variant -> (read-out, config overrides, learning-rate factor, epochs factor)
VARIANTS = {
    "prompt": ("prompt", [], 1.0, 1.0),
    "prompt_ctx4": ("prompt", ["MODEL.RGANET.PROMPT.N_CTX", "4"], 1.0, 1.0),
    "prompt_ctx16": ("prompt", ["MODEL.RGANET.PROMPT.N_CTX", "16"], 1.0, 1.0),
    "prompt_csc": ("prompt", ["MODEL.RGANET.PROMPT.CLASS_SPECIFIC", "True"], 1.0, 1.0),
    "prompt_lr_x5": ("prompt", [], 5.0, 1.0),
    "prompt_lr_x0.2": ("prompt", [], 0.2, 1.0),
    "prompt_epochs_x3": ("prompt", [], 1.0, 3.0),
    "prompt_csc_epochs_x3": ("prompt", ["MODEL.RGANET.PROMPT.CLASS_SPECIFIC", "True"], 1.0, 3.0),
    "free": ("free", [], 1.0, 1.0),
    "probe": ("probe", [], 1.0, 1.0),
}
TITLES = {
    "prompt": "prompt learner (stage 1 as configured)",
    "prompt_ctx4": "prompt, N_CTX 4", "prompt_ctx16": "prompt, N_CTX 16",
    "prompt_csc": "prompt, class-specific context", "prompt_lr_x5": "prompt, lr x 5",
    "prompt_lr_x0.2": "prompt, lr x 0.2", "prompt_epochs_x3": "prompt, epochs x 3",
    "prompt_csc_epochs_x3": "prompt, class-specific context, epochs x 3",
    "free": "free prototypes (N + 1 vectors, RGM's cosine, gamma, softmax)",
    "probe": "linear probe (N + 1 classes, softmax)",
}
GROUPS = ("all", "aligned", "misaligned", "shifted", "top", "bottom")


def world_opts(world: str):
    if world == "default":
        return []
    from misaligned_world import world_overrides
    return world_overrides()


def labels_of(gt):
    return np.concatenate([gt.masks(range(i, min(i + 256, len(gt)))).astype(np.uint8)
                           for i in range(0, len(gt), 256)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--world", choices=("benchmark", "default"), default="benchmark")
    ap.add_argument("opts", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    args.opts = args.opts[1:] if args.opts[:1] == ["--"] else args.opts

    from rganet_plugin.config.setup import load_config
    from rganet_plugin.data.build import dataset_root
    from rganet_plugin.synthetic.occluded_duke import ensure_synthetic_occluded_duke
    from rganet_plugin.synthetic.region_metrics import part_iou, stripe_pixels
    from rganet_analysis.mechanism import load_ground_truth

    t0 = time.time()
    base_opts = world_opts(args.world) + list(args.opts) + ["MODEL.DEVICE", "cpu"]
    cfg = load_config(os.path.join(ROOT, CONFIG), base_opts)
    root = dataset_root(cfg)
    ddir = ensure_synthetic_occluded_duke(root, cfg.DATASETS.SYNTHETIC, progress=False)
    train_gt = load_ground_truth(ddir, ("train",))
    test_gt = load_ground_truth(ddir, ("query", "gallery"))
    model = stage1.build_stage1_model(cfg)
    n = model.region_head.num_regions
    tr_tok = stage1.frozen_tokens(model, cfg, train_gt.paths)
    te_tok = stage1.frozen_tokens(model, cfg, test_gt.paths)
    grid = tr_tok.shape[-2:]
    targets = stage1.seg_targets(labels_of(train_gt), grid, n + 1, cfg.MODEL.LOSSES.SEG.TARGETS)
    te_lab = labels_of(test_gt)
    groups = stage1.groups_of(test_gt.framings())
    cols = [g for g in GROUPS if g in groups]
    print(f"{len(train_gt)} training images, {len(test_gt)} test images "
          f"({', '.join(f'{g} {len(groups[g])}' for g in cols)}); tokens {tuple(tr_tok.shape[1:])}; "
          f"{time.time() - t0:.0f} s to read them", flush=True)

    stripes = stripe_pixels(n, grid, len(test_gt), te_lab.shape[-2:])
    results = {"fixed stripes (reference)": {
        g: [part_iou(stripes[groups[g]], te_lab[groups[g]], n)["miou"]] for g in cols}}
    epochs, lr = cfg.PROMPT_STAGE.MAX_EPOCH, cfg.PROMPT_STAGE.BASE_LR
    for v in args.variants:
        arm, opts, lr_f, ep_f = VARIANTS[v]
        per = {g: [] for g in cols}
        for seed in args.seeds:
            torch.manual_seed(seed)  # the context's random initialisation
            m = model  # free prototypes and the probe leave the model as it is
            if arm == "prompt":  # trains the model's own context: a fresh model per seed
                c = load_config(os.path.join(ROOT, CONFIG), base_opts + opts) if opts else cfg
                m = stage1.build_stage1_model(c)
            masks = stage1.fit_readout(arm, m, tr_tok, targets, max(1, round(epochs * ep_f)),
                                       lr * lr_f, seed=seed)
            for g in cols:
                idx = groups[g]
                per[g].append(stage1.score_masks(masks, te_tok[idx], te_lab[idx], n)["miou"])
        results[TITLES[v]] = per
        print(f"[{v}] " + ", ".join(f"{g} {np.mean(per[g]):.3f}" for g in cols), flush=True)

    print(f"\nseeds {args.seeds}; {cpu_model()}; load {load_average()}; stage 1: "
          f"{epochs} epochs, lr {lr}, L_seg targets {cfg.MODEL.LOSSES.SEG.TARGETS}; "
          f"{time.time() - t0:.0f} s in all\n")
    print("| read-out (part mIoU on body pixels) | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    print("\n".join(stage1.ceiling_rows(results, cols)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
