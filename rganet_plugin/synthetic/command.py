"""``python -m rganet_plugin.tools pretrain-clip``: pre-train a small CLIP on generated
image-caption pairs (no identities, no masks), then print the zero-shot checks.

    python -m rganet_plugin.tools pretrain-clip --out weights/person_clip

Resumable (run the same command again after an interruption). See docs/pretrained_clip.md for
the shipped weights, the exact command that made them and the zero-shot table.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import sys
from typing import Optional, Sequence

from .clip_pretrain import PretrainSettings, PretrainStateMismatch, pretrain_clip


def format_report(report) -> str:
    rows = [("model", "text->image R@1", "text->image R@5", "image->text R@1", "part mIoU",
             "head", "upper body", "lower body", "foot")]
    for which in ("random", "trained"):
        r = report.get(which)
        if r is None:
            continue
        iou = r["part_iou"]
        rows.append((which, f"{r['text_to_image_R@1']:.3f}", f"{r['text_to_image_R@5']:.3f}",
                     f"{r['image_to_text_R@1']:.3f}", f"{r['part_miou']:.3f}",
                     *(f"{iou[k]:.3f}" for k in ("head", "upper body", "lower body", "foot"))))
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    diag = [("model", "part prompts: mean cos", "prompt cos, body patches",
             "prompt cos, background patches", "linear probe (patch -> part)", "majority class")]
    for which in ("random", "trained"):
        r = report.get(which)
        if r is None or "part_prompt_cos" not in r:
            continue
        diag.append((which, f"{r['part_prompt_cos']:.2f}", f"{r['prompt_cos_body']:.3f}",
                     f"{r['prompt_cos_background']:.3f}", f"{r.get('linear_probe_acc', float('nan')):.3f}",
                     f"{r.get('linear_probe_majority', float('nan')):.3f}"))
    if len(diag) > 1:
        out += ["", "| " + " | ".join(diag[0]) + " |", "|" + "---|" * len(diag[0])]
        out += ["| " + " | ".join(r) + " |" for r in diag[1:]]
    views = [("model", "view", "prompts: part mIoU", "stripes, same images", "head", "upper body",
              "lower body", "foot")]
    for which in ("random", "trained"):
        r = report.get(which)
        for view, v in ((r or {}).get("views") or {}).items():
            iou = v["prompt_iou"]
            views.append((which, view, f"{v['prompt_miou']:.3f}", f"{v['stripes_miou']:.3f}",
                          *(f"{iou[k]:.3f}" for k in ("head", "upper body", "lower body", "foot"))))
    if len(views) > 1:
        out += ["", "| " + " | ".join(views[0]) + " |", "|" + "---|" * len(views[0])]
        out += ["| " + " | ".join(r) + " |" for r in views[1:]]
    probe = [f"{w} {report[w]['linear_probe_miou']:.3f}" for w in ("random", "trained")
             if report.get(w) and "linear_probe_miou" in report[w]]
    if probe:
        out.append(f"\nlinear probe part mIoU (full views, held-out quarter): {', '.join(probe)}")
    chance = (report.get("trained") or report.get("random"))["chance_R@1"]
    n = (report.get("trained") or report.get("random"))["num_people"]
    out.append(f"\n{n} held-apart people (full view); chance R@1 = {chance:.4f}; part mIoU on "
               f"body pixels, argmax over 'a {{}} part of a person.' (chance about 0.25 or less)")
    return "\n".join(out)


def _evaluate_weights(args, s, cache) -> int:
    import json

    from .clip_pretrain import build_model, sha256_of
    from .zero_shot import zero_shot_report
    from ..modeling.backbones.clip_weights import load_clip_weights

    model = build_model(s.model, s.seed)
    load_clip_weights(model, args.eval_weights)
    report = {"weights": args.eval_weights, "sha256": sha256_of(args.eval_weights),
              "trained": zero_shot_report(model, s.model, cache, s.seed, s.eval_pairs, True,
                                          readout=s.readout)}
    if not args.no_random_baseline:
        report["random"] = zero_shot_report(build_model(s.model, s.seed), s.model, cache, s.seed,
                                            s.eval_pairs, True, readout=s.readout)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "zero_shot.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(format_report(report))
    print(f"\nweights: {args.eval_weights}  sha256 {report['sha256']}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    d = PretrainSettings()
    p = argparse.ArgumentParser(prog="python -m rganet_plugin.tools pretrain-clip",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (weights, state, report)")
    p.add_argument("--cache", default="",
                   help="where rendered pairs are kept (default: <datasets root>/image_text)")
    for f in dataclasses.fields(PretrainSettings):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                       help=f"(default {f.default})")
    p.add_argument("--no-random-baseline", action="store_true",
                   help="skip the zero-shot checks of a random model of the same architecture")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--eval-weights", default="",
                   help="no training: run the zero-shot checks of this weights file (e.g. the "
                        "shipped weights/RGANet-Person-ViT.safetensors) next to a random model")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    s = PretrainSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainSettings)})
    for name in ("steps", "batch_size", "num_pairs", "eval_pairs", "ckpt_every"):
        if getattr(s, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if s.batch_size > s.num_pairs:
        p.error("--batch-size must not exceed --num-pairs")
    from .image_text import PLACEMENTS
    from .clip_pretrain import OBJECTIVES
    if s.placement not in PLACEMENTS:
        p.error(f"--placement must be one of {', '.join(PLACEMENTS)}")
    if s.objective not in OBJECTIVES:
        p.error(f"--objective must be one of {', '.join(OBJECTIVES)}")
    from ..modeling.backbones.clip_dense_readout import DENSE_READOUTS
    if s.readout not in DENSE_READOUTS:
        p.error(f"--readout must be one of {', '.join(DENSE_READOUTS)}")
    if s.part_tag < 0:
        p.error("--part-tag must be >= 0")
    cache = args.cache or os.path.join(os.getenv("FASTREID_DATASETS", "datasets"), "image_text")
    command = "python -m rganet_plugin.tools pretrain-clip " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if args.eval_weights:
        return _evaluate_weights(args, s, cache)
    try:
        report = pretrain_clip(s, args.out, cache, progress=True, command=command,
                               eval_random=not args.no_random_baseline)
    except PretrainStateMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"\nweights: {os.path.join(args.out, report['weights'])}  sha256 {report['sha256']}")
    print(f"contrastive loss: first 20 steps {report['loss_first_20']:.3f}, last 20 "
          f"{report['loss_last_20']:.3f}")
    return 0
