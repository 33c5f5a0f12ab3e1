#!/usr/bin/env python
"""The measured effect of each of the paper's open choices (docs/fidelity.md) on the embedded
default.

    .venv/bin/python benchmarks/fidelity.py [--seeds 0 1 2] [--out logs/mechanism]
        [--variants rganet_w_mean rganet_mu_text ...] [--plot docs/images/fidelity.png]

1. Training variants: each a one-key change of the demo RGANet (``benchmarks/mechanism.py``'s
   ``rganet_*`` runs, trained there and cached per run and seed in ``<out>/<run>_seed<s>``; runs
   that are missing are trained here through the same code). Per variant: accuracy, AUROC of
   ``w`` / ``alpha`` for visible against covered regions, mean ``alpha``, and the regions that
   passed the memory bank's ``alpha > 0.85`` filter over the whole training.
2. Test-time features (``TEST.RGANET.FEATURES``): the finished default runs (``baseline`` and
   ``rganet``) evaluated again with the pre-BN features (``--eval-only``), no retraining.
3. The background embedding's start (``PROMPT.BACKGROUND_INIT``): the cosine of ``p_0`` with each
   part prototype (the template prompt's and the learned ones of the seed's stage 1), no training.

Prints markdown tables (mean ± std over the seeds that exist for a row) and writes
``<out>/fidelity.json``.
"""
import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rganet_analysis.machine import cpu_model, load_average  # noqa: E402
from mechanism import RUNS, measure, mean_std, seed_stats, train  # noqa: E402

#: the one-key variants of mechanism.py's RUNS (its combined arms belong to issue 19's benchmark)
VARIANTS = [r for r in RUNS if r.startswith("rganet_") and len(RUNS[r]) > 2 and len(RUNS[r][2]) == 2]


def run_record(run, seed, out_root, train_missing):
    out = os.path.join(out_root, f"{run}_seed{seed}")
    cache = os.path.join(out, "mechanism.json")
    if os.path.isfile(cache):
        with open(cache) as f:
            return json.load(f)
    if not train_missing:
        return None
    res = train(run, seed, out, [])
    rec = {"result": res, "mechanism": measure(run, seed, out, [])}
    with open(cache, "w") as f:
        json.dump(rec, f, indent=1)
    return rec


def variant_table(records):
    lines = ["| variant | seeds | Rank-1 | mAP | part mIoU stage 1 / stage 2 | AUROC w | AUROC alpha "
             "| mean alpha visible / covered | regions passing alpha > 0.85 (whole run) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run, recs in records.items():
        recs = [r for r in recs if r]
        if not recs:
            continue
        res = [r["result"] for r in recs]
        st = [r["mechanism"].get("stage2", {}) for r in recs]
        s1 = [r["mechanism"].get("stage1", {}) for r in recs]
        bank = [r["mechanism"].get("bank_log") or {} for r in recs]
        lines.append(
            f"| {RUNS[run][1]} | {len(recs)} | {mean_std([x['Rank-1'] for x in res], '{:.1f}')} | "
            f"{mean_std([x['mAP'] for x in res], '{:.1f}')} | "
            f"{mean_std([x.get('part_miou') for x in s1])} / "
            f"{mean_std([x.get('part_miou') for x in st])} | "
            f"{mean_std([x.get('auroc_weights') for x in st])} | "
            f"{mean_std([x.get('auroc_alpha') for x in st])} | "
            f"{mean_std([x.get('mean_alpha_visible') for x in st])} / "
            f"{mean_std([x.get('mean_alpha_covered') for x in st])} | "
            f"{mean_std([sum(b.get('total', [])) for b in bank], '{:.0f}')} |")
    return "\n".join(lines)


def variant_plot(records, path):
    """Two panels over the variants: the masks' part mIoU after stage 1 and Rank-1 / mAP, mean
    and sample std over the seeds (a stage-2-only variant shares the default's stage 1)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def stats(values):  # (mean, std) for a bar; NaN (no bar) where no seed has the value
        return (seed_stats(values) or (float("nan"), 0.0))[:2]

    runs = [r for r, recs in records.items() if any(recs)]
    names = [RUNS[r][1].replace("RGANet, ", "") for r in runs]
    names = [f"default ({n})" if r == "rganet" else n for r, n in zip(runs, names)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.55 * len(runs) + 1.6), sharey=True)
    y = np.arange(len(runs))
    miou = [stats([(r["mechanism"].get("stage1") or {}).get("part_miou")
                   for r in records[run] if r]) for run in runs]
    ax1.barh(y, [m for m, _ in miou], xerr=[s for _, s in miou], color="#4c72b0", capsize=3)
    ax1.set_xlabel("part mIoU of the masks after stage 1")
    ax1.axvline(miou[0][0], color="grey", lw=0.8, ls="--")
    for i, (m, _) in enumerate(miou):
        if m != m:
            ax1.text(0.005, i, "shares the default's stage 1", va="center", fontsize=8)
    for k, (metric, color) in enumerate((("Rank-1", "#55a868"), ("mAP", "#c44e52"))):
        st = [stats([r["result"][metric] for r in records[run] if r]) for run in runs]
        ax2.barh(y + (k - 0.5) * 0.38, [m for m, _ in st], height=0.38, xerr=[s for _, s in st],
                 color=color, capsize=3, label=metric)
    ax2.set_xlabel("%")
    ax2.set_xlim(50, 100)
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    ax1.set_yticks(y)
    ax1.set_yticklabels(names)
    ax1.invert_yaxis()
    n = max(len([r for r in recs if r]) for recs in records.values())
    fig.suptitle(f"The paper's open choices on the embedded default (mean ± std, {n} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def test_features(seeds, out_root):
    """R1 / mAP of the finished default runs with post-BN (their own result) and pre-BN
    features (evaluated again)."""
    from rganet_analysis.compare import last_result, train_command
    import subprocess

    rows = {}
    for run in ("baseline", "rganet"):
        for seed in seeds:
            out = os.path.join(out_root, f"{run}_seed{seed}")
            final = os.path.join(out, "model_final.pth")
            cache = os.path.join(out, "pre_bn_eval.json")
            if not os.path.isfile(final):
                continue
            if not os.path.isfile(cache):
                cmd = train_command(os.path.join(ROOT, RUNS[run][0]), os.path.join(out, "pre_bn"),
                                    seed, ["TEST.RGANET.FEATURES", "pre_bn"], False)
                cmd[2:2] = ["--eval-only"]  # before the config overrides
                cmd += ["MODEL.WEIGHTS", final]
                p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                res = last_result(p.stdout + p.stderr)
                if p.returncode or res is None:
                    raise SystemExit(f"eval of {final} failed:\n{(p.stdout + p.stderr)[-3000:]}")
                with open(cache, "w") as f:
                    json.dump(res, f)
            with open(cache) as f:
                pre = json.load(f)
            with open(os.path.join(out, "mechanism.json")) as f:
                post = json.load(f)["result"]
            rows.setdefault(run, []).append((post, pre))
    lines = ["| model | seeds | post-BN R1 / mAP (default) | pre-BN R1 / mAP |", "|---|---|---|---|"]
    for run, xs in rows.items():
        lines.append(f"| {RUNS[run][1]} | {len(xs)} | "
                     f"{mean_std([a['Rank-1'] for a, _ in xs], '{:.1f}')} / "
                     f"{mean_std([a['mAP'] for a, _ in xs], '{:.1f}')} | "
                     f"{mean_std([b['Rank-1'] for _, b in xs], '{:.1f}')} / "
                     f"{mean_std([b['mAP'] for _, b in xs], '{:.1f}')} |")
    return "\n".join(lines), rows


def background_inits(seed, out_root):
    """cos(p_0, p_j) at the start, for each initialisation, against the template prompt's
    prototypes and the learned ones (stage 1 of the default run of ``seed``)."""
    import torch
    from fastreid.modeling.meta_arch import build_model

    from rganet_plugin.config import load_config

    learned = None
    stage1 = os.path.join(out_root, f"rganet_seed{seed}", "prompt_stage", "model_final.pth")
    if os.path.isfile(stage1):
        learned = torch.load(stage1, map_location="cpu", weights_only=False)["model"][
            "region_head.prototypes"].float()
    rows = []
    for init in ("text", "random", "zeros"):
        for prompt in ("template", "learnable"):
            cfg = load_config(os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml"), [
                "MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "2",
                "MODEL.RGANET.PROMPT.TYPE", prompt,
                "MODEL.RGANET.PROMPT.BACKGROUND_INIT", init, "SEED", str(seed)])
            cfg.defrost()
            cfg.MODEL.BACKBONE.PRETRAIN_PATH = os.path.join(ROOT, cfg.MODEL.BACKBONE.PRETRAIN_PATH)
            torch.manual_seed(seed)
            head = build_model(cfg).region_head
            p0 = head.background.detach().float()
            protos = head.prototypes if prompt == "template" else learned
            if protos is None:
                continue
            cos = torch.nn.functional.cosine_similarity(p0[None], protos, dim=1)
            rows.append({"init": init, "against": "template prompt 'a {} part of a person.'"
                         if prompt == "template" else "learned prompts (stage 1)",
                         "cos": [float(c) for c in cos], "norm_p0": float(p0.norm()),
                         "norm_protos": float(protos.norm(dim=1).mean())})
    names = ("head", "upper body", "lower body", "foot")
    lines = ["| p_0 init | prototypes | " + " | ".join(f"cos(p_0, {n})" for n in names)
             + " | norm p_0 / mean norm p_j |", "|---|---|" + "---|" * len(names) + "---|"]
    for r in rows:
        lines.append(f"| {r['init']} | {r['against']} | "
                     + " | ".join(f"{c:+.3f}" for c in r["cos"])
                     + f" | {r['norm_p0']:.2f} / {r['norm_protos']:.2f} |")
    return "\n".join(lines), rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=os.path.join(ROOT, "logs", "mechanism"))
    ap.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    ap.add_argument("--plot", default="", help="also draw the variant table as a bar chart here")
    ap.add_argument("--no-train", action="store_true",
                    help="only report the runs that exist (no training)")
    args = ap.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)

    records = {"rganet": [run_record("rganet", s, args.out, not args.no_train)
                          for s in args.seeds]}
    for v in args.variants:
        records[v] = [run_record(v, s, args.out, not args.no_train) for s in args.seeds]
    feat_md, feat_rows = test_features(args.seeds, args.out)
    bg_md, bg_rows = background_inits(args.seeds[0], args.out)
    text = "\n".join([
        f"seeds {args.seeds}; {cpu_model()}; load {load_average()}", "",
        "### One-key variants of the demo RGANet", "", variant_table(records), "",
        "### Test-time features (eq. 10 and the baseline)", "", feat_md, "",
        f"### The background embedding's start (seed {args.seeds[0]})", "", bg_md])
    print(text)
    if args.plot:
        variant_plot(records, args.plot)
        print(f"plot: {args.plot}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fidelity.json"), "w") as f:
        json.dump({"variants": records, "features": feat_rows, "background": bg_rows}, f, indent=1)


if __name__ == "__main__":
    main()
