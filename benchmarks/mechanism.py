#!/usr/bin/env python
"""Does RGANet's mechanism do its job? Masks, confidences and the memory bank measured against
the generator's ground truth, next to the accuracy of Table V rows 0 / 4 / 8 and Table VI.

    .venv/bin/python benchmarks/mechanism.py [--seeds 0 1 2] [--out logs/mechanism]
        [--runs baseline stripes rganet rganet_template rganet_random_clip]
        [--docs docs]  [KEY VALUE ...]   # config overrides for every run

Each run is ``projects/RGANet/train_net.py --config-file configs/Demo/<run>.yml`` in a fresh
process (what the README's demo command gives), resumed per run: a finished run's
``mechanism.json`` is reused. Then, on the demo's query and gallery images (part masks and
``part_covered`` from the generator; ``rganet_analysis.mechanism``):

* RGM masks after stage 1 and after stage 2: part mIoU on body pixels (fixed stripes as the
  reference row) and the background channel's foreground IoU;
* confidence: AUROC of w, alpha, beta for visible (< 50% of the part covered) against covered
  regions;
* memory bank: regions passing the alpha filter per class per epoch (the training hook's
  ``memory_bank.jsonl``), and the cosine between each centre and the mean feature of that part
  (ground-truth pooling over the training images) at the end.

Prints markdown tables (mean +- std over seeds), writes ``<out>/summary.json`` and, with
``--docs``, the pictures ``<docs>/images/mechanism_*.png``.
"""
import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rganet_analysis.compare import paired_difference, train_config  # noqa: E402
from rganet_analysis.machine import cpu_model, load_average  # noqa: E402

# run -> (config, title[, config overrides]); the one-key rganet_* variants are the paper's open
# choices (docs/fidelity.md); issue 19's arms combine the switches below.
CSC = ["MODEL.RGANET.PROMPT.CLASS_SPECIFIC", "True"]
DISTILL = ["MODEL.LOSSES.MASK_DISTILL.SCALE", "1.0"]
PAPER_LR = ["SOLVER.BACKBONE_LR_FACTOR", "0.3333"]
#: the region losses are summed over the N regions (eq. 7 and its triplet term), N times the
#: global branch's weight; a quarter each gives them the global branch's weight
REGION_QUARTER = ["MODEL.LOSSES.REGION_CE.SCALE", "0.25", "MODEL.LOSSES.REGION_TRI.SCALE", "0.25"]
VALUE_READOUT = ["MODEL.BACKBONE.CLIP.DENSE_READOUT", "value"]
RUNS = {
    "baseline": ("configs/Demo/clip_baseline_demo.yml", "CLIP baseline (Table V row 0)"),
    "stripes": ("configs/Demo/stripes_demo.yml", "stripes + DAI + IAI (row 4)"),
    "rganet": ("configs/Demo/rganet_demo.yml", "RGANet, learnable prompt (row 8)"),
    "rganet_template": ("configs/Demo/rganet_template_demo.yml",
                        "RGANet, prompt 'a [CLASS] part of a person.' (Table VI)"),
    "rganet_random_clip": ("configs/Demo/rganet_demo_random_clip.yml",
                           "RGANet on a random-weight CLIP (control)"),
    "rganet_w_mean": ("configs/Demo/rganet_demo.yml", "RGANet, w = (alpha + beta) / 2",
                      ["MODEL.RGANET.RAM.CONFIDENCE", "mean"]),
    "rganet_mu_text": ("configs/Demo/rganet_demo.yml", "RGANet, m_u read as in Sec. IV-D",
                       ["MODEL.RGANET.MEMORY.MOMENTUM_READING", "text"]),
    "rganet_seg_nearest": ("configs/Demo/rganet_demo.yml", "RGANet, L_seg targets: nearest pixel",
                           ["MODEL.LOSSES.SEG.TARGETS", "nearest"]),
    "rganet_seg_soft": ("configs/Demo/rganet_demo.yml", "RGANet, L_seg targets: area fractions",
                        ["MODEL.LOSSES.SEG.TARGETS", "soft"]),
    "rganet_p0_random": ("configs/Demo/rganet_demo.yml", "RGANet, p_0 initialised at random",
                         ["MODEL.RGANET.PROMPT.BACKGROUND_INIT", "random"]),
    "rganet_p0_zeros": ("configs/Demo/rganet_demo.yml", "RGANet, p_0 initialised to zeros",
                        ["MODEL.RGANET.PROMPT.BACKGROUND_INIT", "zeros"]),
    "rganet_csc": ("configs/Demo/rganet_demo.yml", "RGANet, class-specific prompt context", CSC),
    # stage 2 keeping stage 1's regions (issue 19; docs/fidelity.md)
    "rganet_distill": ("configs/Demo/rganet_demo.yml", "RGANet, stage 2 distils stage 1's masks",
                       DISTILL),
    "rganet_lr": ("configs/Demo/rganet_demo.yml",
                  "RGANet, backbone lr in the paper's proportion (1e-4)", PAPER_LR),
    "rganet_keep": ("configs/Demo/rganet_demo.yml",
                    "RGANet, mask distillation + backbone lr 1e-4", DISTILL + PAPER_LR),
    # the best stage 1 measured (class-specific context, and MaskCLIP's value read-out of F) with
    # the switch that keeps its masks at no measured cost; the region losses at a quarter (issue 19)
    "rganet_csc_distill": ("configs/Demo/rganet_demo.yml",
                           "RGANet, class-specific context + mask distillation", CSC + DISTILL),
    "rganet_region_quarter": ("configs/Demo/rganet_demo.yml",
                              "RGANet, region losses x 1/4 (sum over regions = the global weight)",
                              REGION_QUARTER),
    "rganet_csc_distill_quarter": ("configs/Demo/rganet_demo.yml",
                                   "RGANet, class-specific context + distillation + region losses x 1/4",
                                   CSC + DISTILL + REGION_QUARTER),
    "rganet_value_csc_distill": ("configs/Demo/rganet_demo.yml",
                                 "RGANet, value read-out + class-specific context + distillation",
                                 VALUE_READOUT + CSC + DISTILL),
}

#: ``--world benchmark``: the misaligned world (benchmarks/misaligned_world.py), 2.7x the demo's
#: training images, trained for 30 epochs (about the demo's number of iterations)
BENCHMARK_OPTS = ["SOLVER.MAX_EPOCH", "30", "SOLVER.STEPS", "[20,26]", "TEST.EVAL_PERIOD", "30"]


def world_opts(world):
    if world != "benchmark":
        return []
    from misaligned_world import world_overrides
    return world_overrides() + BENCHMARK_OPTS


#: variants that change stage 2 only, each with the run whose stage 1 it starts from (the same
#: result the two-stage command would compute again), saving half of their time
STAGE1_OF = {**{r: "rganet" for r in ("rganet_w_mean", "rganet_mu_text", "rganet_distill",
                                       "rganet_lr", "rganet_keep", "rganet_region_quarter")},
             "rganet_csc_distill": "rganet_csc", "rganet_csc_distill_quarter": "rganet_csc"}


def run_opts(run, opts, out=None, seed=None):
    extra = list(RUNS[run][2] if len(RUNS[run]) > 2 else [])
    if run in STAGE1_OF and out is not None:
        stage1 = os.path.join(os.path.dirname(out), f"{STAGE1_OF[run]}_seed{seed}",
                              "prompt_stage", "model_final.pth")
        if os.path.isfile(stage1):
            extra += ["MODEL.WEIGHTS", stage1]
    return list(opts) + extra


PARTS = ("head", "upper body", "lower body", "foot")


def train(run, seed, out, opts):
    return train_config(os.path.join(ROOT, RUNS[run][0]), run, seed, out,
                        run_opts(run, opts, out, seed))


def measure(run, seed, out, opts):
    """Mechanism figures of a finished run (stage 1 and stage 2 checkpoints)."""
    from rganet_plugin.data.build import dataset_root
    from rganet_plugin.synthetic.occluded_duke import ensure_synthetic_occluded_duke
    from rganet_analysis import mechanism as mech
    from rganet_plugin.tools.predictor import build_predictor

    cfg_file = os.path.join(ROOT, RUNS[run][0])
    opts = run_opts(run, opts)
    final = os.path.join(out, "model_final.pth")
    pred = build_predictor(cfg_file, final, list(opts) + ["SEED", str(seed)], device="cpu")
    cfg = pred.cfg
    root = dataset_root(cfg)
    if not os.path.isabs(root):
        root = os.path.join(ROOT, root)
    ddir = ensure_synthetic_occluded_duke(root, cfg.DATASETS.SYNTHETIC, progress=False)
    test = mech.load_ground_truth(ddir, ("query", "gallery"))
    train_gt = mech.load_ground_truth(ddir, ("train",))
    m = {"retrieval": mech.retrieval_by_alignment(pred, test)}
    if pred.model.region_head is None:
        return m
    n = pred.model.region_head.num_regions
    groups = test.by_alignment()
    m["stage2"] = mech.measure_regions(pred, test, by_alignment=True)
    m.update({"stage2_by": m["stage2"].pop("by_alignment"),
              "stripes_reference": mech.stripe_part_iou(test, n),
              "stripes_by": {k: mech.stripe_part_iou(v, n) for k, v in groups.items()},
              "bank_log": mech.read_bank_log(out)})
    m["bank"] = mech.bank_alignment(pred, train_gt)
    stage1 = os.path.join(out, "prompt_stage", "model_final.pth")
    if os.path.isfile(stage1):
        p1 = build_predictor(cfg_file, stage1, list(opts) + ["SEED", str(seed)], device="cpu")
        m["stage1"] = mech.measure_regions(p1, test, by_alignment=True)
        m["stage1_by"] = m["stage1"].pop("by_alignment")
    return m


def seed_stats(values):
    """(mean, sample std, count) of the values that exist (None and NaN left out; std 0 for a
    single value), or None when there are none."""
    v = [x for x in values if x is not None and x == x]
    if not v:
        return None
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)


def mean_std(values, fmt="{:.3f}"):
    stats = seed_stats(values)
    if stats is None:
        return "n/a"
    mean, std, n = stats
    return fmt.format(mean) if n == 1 else f"{fmt.format(mean)} ± {fmt.format(std)}"


def tables(results, runs, seeds):
    lines = [f"seeds {seeds}; {cpu_model()}; load {load_average()}", "",
             "### Accuracy (generated occluded data; the demo's queries are all occluded)", "",
             "| model | Rank-1 | mAP | mINP | minutes/run |", "|---|---|---|---|---|"]
    for r in runs:
        rs = [results[r][s]["result"] for s in seeds]
        lines.append(f"| {RUNS[r][1]} | {mean_std([x['Rank-1'] for x in rs], '{:.1f}')} | "
                     f"{mean_std([x['mAP'] for x in rs], '{:.1f}')} | "
                     f"{mean_std([x['mINP'] for x in rs], '{:.1f}')} | "
                     f"{np.mean([x['minutes'] for x in rs]):.1f} |")
    rgm = [r for r in runs if results[r][seeds[0]].get("mechanism", {}).get("stage2")]
    lines += ["", "### Region masks (part mIoU on body pixels; query + gallery images)", "",
              "| model | masks | part mIoU | " + " | ".join(PARTS) + " | foreground IoU |",
              "|---|---|---|" + "---|" * len(PARTS) + "---|"]
    ref_done = False
    for r in rgm:
        ms = [results[r][s]["mechanism"] for s in seeds]
        if not ref_done:
            refs = [m["stripes_reference"] for m in ms]
            lines.append("| fixed stripes (reference) | rows | "
                         f"{mean_std([x['part_miou'] for x in refs])} | "
                         + " | ".join(mean_std([x['part_iou'][j] for x in refs]) for j in range(4))
                         + " | n/a |")
            ref_done = True
        for stage in ("stage1", "stage2"):
            xs = [m.get(stage) for m in ms]
            if any(x is None for x in xs):
                continue
            lines.append(f"| {RUNS[r][1]} | {'after stage 1' if stage == 'stage1' else 'after stage 2'} | "
                         f"{mean_std([x['part_miou'] for x in xs])} | "
                         + " | ".join(mean_std([x['part_iou'][j] for x in xs]) for j in range(4))
                         + f" | {mean_std([x['foreground_iou'] for x in xs])} |")
    lines += ["", "### Confidence: AUROC for visible against covered regions (after stage 2)", "",
              "| model | AUROC w | AUROC alpha | AUROC beta | mean w visible / covered | regions covered |",
              "|---|---|---|---|---|---|"]
    for r in [r for r in runs if results[r][seeds[0]].get("mechanism", {}).get("stage2")]:
        xs = [results[r][s]["mechanism"]["stage2"] for s in seeds]
        lines.append(f"| {RUNS[r][1]} | {mean_std([x['auroc_weights'] for x in xs])} | "
                     f"{mean_std([x['auroc_alpha'] for x in xs])} | "
                     f"{mean_std([x['auroc_beta'] for x in xs])} | "
                     f"{mean_std([x['mean_weights_visible'] for x in xs])} / "
                     f"{mean_std([x['mean_weights_covered'] for x in xs])} | "
                     f"{xs[0]['regions_covered']} of {xs[0]['regions_covered'] + xs[0]['regions_visible']} |")
    lines += ["", "### Memory bank (alpha > threshold filter; cosine of each centre at the end)", "",
              "| model | class | regions passing the filter (all epochs) | epochs with updates | "
              "cos(C_j, mean part feature) | cos(C_j, mean F_j^r) | cos(C_j, mean stripe feature) |",
              "|---|---|---|---|---|---|---|"]
    for r in [r for r in runs if results[r][seeds[0]].get("mechanism", {}).get("bank_log")]:
        ms = [results[r][s]["mechanism"] for s in seeds]
        for j, name in enumerate(PARTS):
            tot = [m["bank_log"]["total"][j] for m in ms]
            ep = [sum(1 for e in m["bank_log"]["selected"] if e[j] > 0) for m in ms]
            n_ep = len(ms[0]["bank_log"]["selected"])
            lines.append(f"| {RUNS[r][1]} | {name} | {mean_std(tot, '{:.0f}')} | "
                         f"{mean_std(ep, '{:.0f}')} of {n_ep} | "
                         f"{mean_std([m['bank']['cos_centre_part_mean'][j] for m in ms])} | "
                         f"{mean_std([m['bank']['cos_centre_region_mean'][j] for m in ms])} | "
                         f"{mean_std([m['bank']['cos_centre_stripe_mean'][j] for m in ms])} |")
    return "\n".join(lines)


def paired(results, a, b, seeds, get):
    """``mean ± SE`` over seeds of ``get(run a) - get(run b)`` seed by seed, and whether it is
    more than twice its standard error."""
    return paired_cell([(get(results[a][s]), get(results[b][s])) for s in seeds
                        if get(results[a][s]) is not None and get(results[b][s]) is not None])


def paired_cell(pairs):
    """``mean ± SE`` of ``x - y`` over the ``(x, y)`` pairs, marked beyond 2 SE; "n/a" below 2."""
    if len(pairs) < 2:
        return "n/a"
    mean, se = paired_difference(*zip(*pairs))
    return f"{mean:+.2f} ± {se:.2f}" + (" (> 2 SE)" if abs(mean) > 2 * se else "")


def by_view_tables(results, runs, seeds):
    """Accuracy of aligned and misaligned queries apart, masks per view, paired differences."""
    first = results[runs[0]][seeds[0]]["mechanism"]
    if "retrieval" not in first:
        return ""
    views = [v for v in ("all", "aligned", "misaligned") if v in first["retrieval"]]
    lines = ["", "", "### Accuracy by query view (eq. 10 on the final model)", "",
             "| model | " + " | ".join(f"{v} R1 | {v} mAP" for v in views) + " |",
             "|---|" + "---|---|" * len(views)]
    for r in runs:
        rs = [results[r][s]["mechanism"]["retrieval"] for s in seeds]
        lines.append(f"| {RUNS[r][1]} | " + " | ".join(
            f"{mean_std([x[v]['Rank-1'] for x in rs], '{:.1f}')} | "
            f"{mean_std([x[v]['mAP'] for x in rs], '{:.1f}')}" for v in views) + " |")
    lines.append("")
    lines.append("queries: " + ", ".join(f"{v} {first['retrieval'][v]['queries']}" for v in views))
    glob = [r for r in runs if all("global mAP" in results[r][s]["mechanism"]["retrieval"]["all"]
                                   for s in seeds)]
    if glob:
        lines += ["", "### The same models ranked by their global feature alone (mAP)", "",
                  "| model | " + " | ".join(f"{v}: eq. 10 | {v}: global alone | {v}: eq. 10 - global"
                                            for v in views) + " |",
                  "|---|" + "---|---|---|" * len(views)]
        for r in glob:
            cells = []
            for v in views:
                get = [results[r][s]["mechanism"]["retrieval"][v] for s in seeds]
                cells += [mean_std([x["mAP"] for x in get], "{:.1f}"),
                          mean_std([x["global mAP"] for x in get], "{:.1f}")]
                cells.append(paired_cell([(x["mAP"], x["global mAP"]) for x in get]))
            lines.append(f"| {RUNS[r][1]} | " + " | ".join(cells) + " |")
    rgm = [r for r in runs if results[r][seeds[0]]["mechanism"].get("stage2_by")]
    if rgm:
        groups = list(results[rgm[0]][seeds[0]]["mechanism"]["stage2_by"])
        lines += ["", "### Part mIoU by view (query + gallery images)", "",
                  "| model | masks | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
        ms = [results[rgm[0]][s]["mechanism"] for s in seeds]
        lines.append("| fixed stripes (reference) | rows | " + " | ".join(
            mean_std([m["stripes_by"][g]["part_miou"] for m in ms]) for g in groups) + " |")
        for r in rgm:
            ms = [results[r][s]["mechanism"] for s in seeds]
            for stage in ("stage1_by", "stage2_by"):
                if all(m.get(stage) for m in ms):
                    lines.append(f"| {RUNS[r][1]} | after stage {stage[5]} | " + " | ".join(
                        mean_std([m[stage][g]["part_miou"] for m in ms]) for g in groups) + " |")
    pairs = [(a, b) for a, b in (("stripes", "baseline"), ("rganet", "baseline"),
                                 ("rganet", "stripes"), ("rganet_keep", "rganet"),
                                 ("rganet_keep", "baseline"), ("rganet_keep", "stripes"),
                                 ("rganet_distill", "rganet"), ("rganet_lr", "rganet"),
                                 ("rganet_csc", "baseline"), ("rganet_csc", "stripes"),
                                 ("rganet_csc", "rganet"),
                                 ("rganet_csc_distill", "rganet_csc"),
                                 ("rganet_csc_distill", "baseline"), ("rganet_csc_distill", "stripes"),
                                 ("rganet_value_csc_distill", "rganet_csc_distill"),
                                 ("rganet_value_csc_distill", "baseline"),
                                 ("rganet_value_csc_distill", "stripes"),
                                 ("rganet_region_quarter", "rganet"),
                                 ("rganet_region_quarter", "baseline"),
                                 ("rganet_csc_distill_quarter", "rganet_csc_distill"),
                                 ("rganet_csc_distill_quarter", "baseline"),
                                 ("rganet_csc_distill_quarter", "stripes"))
             if a in runs and b in runs]
    if pairs and len(seeds) > 1:
        lines += ["", "### Paired differences (seed by seed, mean ± standard error)", "",
                  "| difference | " + " | ".join(f"{v} mAP" for v in views) + " | "
                  + " | ".join(f"{v} R1" for v in views) + " |",
                  "|---|" + "---|" * (2 * len(views))]
        for a, b in pairs:
            cells = [paired(results, a, b, seeds,
                            lambda x, v=v, k=k: x["mechanism"]["retrieval"][v][k])
                     for k in ("mAP", "Rank-1") for v in views]
            lines.append(f"| {a} - {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=os.path.join(ROOT, "logs", "mechanism"))
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--docs", default="", help="write the pictures into <docs>/images")
    ap.add_argument("--world", choices=("default", "benchmark"), default="default",
                    help="benchmark: the misaligned world (aligned and misaligned queries apart)")
    ap.add_argument("opts", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    args.opts = world_opts(args.world) + list(args.opts)
    import logging
    logging.basicConfig(level=logging.WARNING)
    results = {r: {} for r in args.runs}
    for seed in args.seeds:
        for run in args.runs:
            out = os.path.join(args.out, f"{run}_seed{seed}")
            cache = os.path.join(out, "mechanism.json")
            if os.path.isfile(cache):
                with open(cache) as f:
                    results[run][seed] = rec = json.load(f)
                if "retrieval" not in rec["mechanism"]:  # measured before the by-view figures
                    rec["mechanism"] = measure(run, seed, out, args.opts)
                    with open(cache, "w") as f:
                        json.dump(rec, f, indent=1)
                continue
            res = train(run, seed, out, args.opts)
            rec = {"result": res, "mechanism": measure(run, seed, out, args.opts)}
            with open(cache, "w") as f:
                json.dump(rec, f, indent=1)
            results[run][seed] = rec
            print(f"[{run} seed {seed}] R1 {res['Rank-1']:.1f} mAP {res['mAP']:.1f} "
                  f"({res['minutes']:.1f} min)", flush=True)
    text = tables(results, args.runs, args.seeds) + by_view_tables(results, args.runs, args.seeds)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({r: {str(s): v for s, v in d.items()} for r, d in results.items()}, f, indent=1)
    with open(os.path.join(args.out, "tables.md"), "w") as f:
        f.write(text + "\n")
    if args.docs:
        from mechanism_figures import bank_figure, mask_picture
        img_dir = os.path.join(args.docs, "images")
        os.makedirs(img_dir, exist_ok=True)
        s0, world = args.seeds[0], "" if args.world == "default" else "_misaligned"
        for r in [r for r in ("rganet", "rganet_value_csc_distill") if r in args.runs]:
            name = f"mechanism_masks{world}{'' if r == 'rganet' else '_' + r}.png"
            mask_picture(os.path.join(args.out, f"{r}_seed{s0}"), RUNS[r][0],
                         os.path.join(img_dir, name), run_opts(r, args.opts) + ["SEED", str(s0)])
        bank_runs = [r for r in args.runs if results[r][args.seeds[0]].get("mechanism", {}).get("bank_log")]
        if bank_runs:
            bank_figure({RUNS[r][1]: [results[r][s]["mechanism"]["bank_log"] for s in args.seeds]
                         for r in bank_runs}, os.path.join(img_dir, f"mechanism_bank{world}.png"))
        print(f"pictures in {img_dir}")


if __name__ == "__main__":
    main()
