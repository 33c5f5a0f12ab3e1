#!/usr/bin/env python
"""AG-ReID ablation on the embedded occluded default (SyntheticOccludedDuke, the person CLIP):
global only, + attribute classification, + contrastive guidance, full AG-ReID, next to the
plugin's CLIP baseline (RGANet's ablation row 0), over paired seeds; prints R1 / mAP / mINP
(mean ± std) and the **paired differences** from the global-only arm (mean ± standard error over
seeds; ``*`` where the difference exceeds twice its standard error).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/agreid_ablation.py --diagnose  # 5 arms x 3 seeds
    .venv/bin/python benchmarks/agreid_ablation.py --arms global full --seeds 0 1 2

Each run is ``projects/AGReID/train_net.py --config-file configs/Demo/agreid_<arm>_demo.yml`` (the
baseline: the plugin's ``configs/Demo/clip_baseline_demo.yml``) in its own process, one at a time
by default, in ``logs/agreid_ablation/<arm>/seed<k>``, through ``rganet_analysis.compare.sweep``
(AG-ReID's entry point ``agreid.tools``): finished runs are read back, half-done ones resume.
A second table gives the pseudo-labels the arms trained on (``agreid_labels_report.json``).
The test split is the demo's training set with 280 test identities (414 queries, 2,240 gallery
images), which resolves the arms' differences; ``--demo-split`` tests on the demo's 47 queries.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from rganet_analysis.compare import markdown_table, paired_difference, sweep  # noqa: E402
from rganet_analysis.machine import cpu_model, load_average  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "projects", "AGReID"))  # the agreid package
AGREID_NET = "agreid.tools"
OUT = os.path.join(ROOT, "logs", "agreid_ablation")

ARMS = {"baseline": ("configs/Demo/clip_baseline_demo.yml", None),
        "global": ("configs/Demo/agreid_global_demo.yml", AGREID_NET),
        "attr": ("configs/Demo/agreid_attr_demo.yml", AGREID_NET),
        "contrast": ("configs/Demo/agreid_contrast_demo.yml", AGREID_NET),
        "full": ("configs/Demo/agreid_demo.yml", AGREID_NET)}
NAMES = {"baseline": "CLIP baseline (RGANet row 0)", "global": "AG-ReID global only",
         "attr": "+ attribute classification", "contrast": "+ contrastive guidance",
         "full": "AG-ReID (attribute CE + contrast)"}
METRICS = ("Rank-1", "mAP", "mINP")
#: The demo's training set, a test split that resolves the arms: 280 identities, 414 queries, 2,240
#: gallery images (the demo's 32 give 47 queries, one query = 2.1 Rank-1 points).
TEST_SPLIT = ("DATASETS.SYNTHETIC.NUM_TEST_IDS", "280")


def _diff(a, b):
    m, se = paired_difference(a, b)
    if np.isnan(se):
        return f"{m:+.1f}"
    return f"{m:+.1f} ± {se:.1f}" + (" *" if abs(m) > 2 * se else "")


def labels_report(run_dir: str):
    path = os.path.join(run_dir, "agreid_labels_report.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)["report"]


def _global_cosines(model, cfg):
    """Mean cosine of the global (BN) test features between images of the same identity and of
    different identities: how spread out the identities are."""
    import torch
    import torch.nn.functional as F

    from agreid.engine import AGReIDTrainer

    loader, _ = AGReIDTrainer.build_test_loader(cfg, cfg.DATASETS.TESTS[0])
    model.eval()
    with torch.no_grad():
        f = F.normalize(torch.cat([model.heads(model.extract(model.preprocess_image(b))[1])
                                   for b in loader]), dim=1)
    pids = np.array([it[1] for it in loader.dataset.img_items])
    sim = (f @ f.t()).numpy()
    same = pids[:, None] == pids[None, :]
    off = ~np.eye(len(pids), dtype=bool)
    return float(sim[same & off].mean()), float(sim[~same].mean())


def diagnose(run_dir: str) -> dict:
    """What a trained AG-ReID run gives on the test set, from its ``model_final.pth``: the mean
    cosine of its global features within and between identities, and (a run that trained the
    attribute branch) R1 / mAP of the same model ranked by the global feature alone
    (``TEST.AGREID.FEATURE global``), by the default concatenation and by the attribute features
    alone (lambda -> infinity), and the accuracy of its attribute classifiers on the test images
    against the generator's truth (``-`` where the run trained no classifier)."""
    import torch
    from fastreid.utils.checkpoint import Checkpointer

    from agreid.config import load_agreid_config
    from agreid.engine import AGReIDTrainer
    from agreid.labels import truth_of
    from agreid.vocabulary import group_values

    out = {}
    variants = (("global", "global", 0.5), ("concat", "concat", None), ("attributes", "concat", 1e6))
    cfg = load_agreid_config(os.path.join(run_dir, "config.yaml"))
    if not any(w > 0 for w in (cfg.MODEL.AGREID.ATTR_CE.WEIGHT, cfg.MODEL.AGREID.CONTRAST.
                                IMAGE_TEXT_WEIGHT, cfg.MODEL.AGREID.CONTRAST.GLOBAL_TEXT_WEIGHT)):
        variants = variants[:1]  # global only: no attribute branch was trained
    for name, feature, lam in variants:
        cfg = load_agreid_config(os.path.join(run_dir, "config.yaml"))
        cfg.MODEL.BACKBONE.PRETRAIN = False
        cfg.TEST.AGREID.FEATURE = feature
        if lam is not None:
            cfg.TEST.AGREID.ATTR_WEIGHT = lam
        model = AGReIDTrainer.build_model(cfg)
        Checkpointer(model).load(os.path.join(run_dir, "model_final.pth"))
        res = AGReIDTrainer.test(cfg, model)
        out[name] = (res["Rank-1"], res["mAP"])
        if name == "global":
            out["cos"] = _global_cosines(model, cfg)
    if model.weights["attr"] > 0:
        loader, _ = AGReIDTrainer.build_test_loader(cfg, cfg.DATASETS.TESTS[0])
        truth = truth_of([it[0] for it in loader.dataset.img_items])
        preds = {g: [] for g in model.groups}
        model.eval()
        with torch.no_grad():
            for batch in loader:
                fmap, _ = model.extract(model.preprocess_image(batch))
                attr = model.attribute_features(fmap)
                for g, name in enumerate(model.groups):
                    logits = model.attr_cls[g](model.attr_bn[g](attr[:, g]))
                    preds[name] += logits.argmax(1).tolist()
        out["attr_acc"] = {g: float(np.mean([group_values(g)[p] == t[g] for p, t in zip(v, truth)]))
                           for g, v in preds.items()}
    return out


def run_all(arms, seeds, opts, jobs: int, out: str = OUT):
    """``{arm: [result of seed s, ...]}`` for every arm and seed, trained or read back."""
    res = sweep([os.path.join(ROOT, ARMS[a][0]) for a in arms], seeds, out, opts, names=arms,
                jobs=jobs, train_nets=[ARMS[a][1] for a in arms])
    rows = {}
    for arm in arms:
        runs = res[arm]["runs"]
        missing = [s for s in seeds if s not in runs]
        if missing:
            raise RuntimeError(f"{arm}: seeds {missing} gave no result")
        rows[arm] = [runs[s] for s in seeds]
    return rows, res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--reference", default="global", choices=list(ARMS),
                    help="the arm the paired differences are taken from")
    ap.add_argument("--diagnose", action="store_true",
                    help="also evaluate each trained AG-ReID model by its global / attribute "
                         "features and score its attribute classifiers against the truth")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time")
    ap.add_argument("--demo-split", action="store_true",
                    help="test on the demo's own split (47 queries) instead of 280 test identities "
                         "(414 queries)")
    ap.add_argument("--out", default=OUT, help="where the runs are (and are reused from)")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    args = ap.parse_args()
    opts = ([] if args.demo_split else list(TEST_SPLIT)) + list(args.opts)  # later keys win
    rows, res = run_all(args.arms, args.seeds, opts, args.jobs, args.out)
    split = "the demo's test split" if args.demo_split else "280 test identities"
    print(f"\nAG-ReID ablation on SyntheticOccludedDuke (configs/Demo/agreid_*_demo.yml, {split}), "
          f"seeds {args.seeds}; {os.cpu_count()} x {cpu_model()}, load {load_average()}\n")
    print(markdown_table({NAMES[a]: res[a] for a in args.arms}, args.seeds))  # compare's table
    ref = args.reference
    if ref in rows:
        print(f"\nPaired differences from '{NAMES[ref]}' (mean ± standard error over the "
              f"{len(args.seeds)} seeds; * beyond 2 SE)\n")
        print("| arm | " + " | ".join(f"Δ {m}" for m in METRICS) + " | per-seed Δ Rank-1 |")
        print("|" + "---|" * (len(METRICS) + 2))
        for arm, runs in rows.items():
            if arm == ref:
                continue
            cells = [_diff([r[m] for r in runs], [r[m] for r in rows[ref]]) for m in METRICS]
            per_seed = ", ".join(f"{a[METRICS[0]] - b[METRICS[0]]:+.1f}" for a, b in zip(runs, rows[ref]))
            print(f"| {NAMES[arm]} | " + " | ".join(cells) + f" | {per_seed} |")
    if args.diagnose:
        print("\nThe trained models' test features and attribute classifiers (seed mean; R1 / mAP by "
              "the global feature alone, the concatenation, the attribute features alone; "
              "classifier accuracy on the test images against the generator's truth)\n")
        print("| arm | global R1 / mAP | concat R1 / mAP | attributes R1 / mAP | global cos same id / "
              "other ids | attribute accuracy |")
        print("|---|---|---|---|---|---|")
        for arm in rows:
            if arm == "baseline":
                continue
            ds = [diagnose(os.path.join(args.out, arm, f"seed{s}")) for s in args.seeds]
            cells = [" / ".join(f"{np.mean([d[k][i] for d in ds]):.1f}" for i in (0, 1))
                     if k in ds[0] else "-" for k in ("global", "concat", "attributes")]
            cells.append(" / ".join(f"{np.mean([d['cos'][i] for d in ds]):.3f}" for i in (0, 1)))
            acc = "-"
            if "attr_acc" in ds[0]:
                acc = ", ".join(f"{g} {np.mean([d['attr_acc'][g] for d in ds]):.2f}"
                                for g in ds[0]["attr_acc"])
            print(f"| {NAMES[arm]} | " + " | ".join(cells) + f" | {acc} |")
    reports = {arm: labels_report(os.path.join(args.out, arm, f"seed{args.seeds[0]}"))
               for arm in rows}
    reports = {a: r for a, r in reports.items() if r}
    if reports:
        arm, rep = next(iter(reports.items()))
        print(f"\nPseudo-labels the arms trained on (seed {args.seeds[0]}, against the generator's "
              "truth)\n")
        print("| group | accuracy (all) | coverage | accuracy (kept) | majority value |")
        print("|---|---|---|---|---|")
        for g, r in rep.items():
            print(f"| {g} | {r['accuracy']:.3f} | {r['coverage']:.3f} | "
                  f"{r['accepted_accuracy']:.3f} | {r['majority']:.3f} |")


if __name__ == "__main__":
    main()
