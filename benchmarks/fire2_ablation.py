#!/usr/bin/env python
"""FIRe² ablation on the generated cloth-changing set (SyntheticLTCC): baseline, + FFM, + FAR,
FIRe² (both), over paired seeds; prints a markdown table (mean ± std) of the standard and the
clothes-changing protocol with the chance level (random ranking), and the paired differences
against the baseline (mean ± standard error). ``--world ccworld``: the world whose identities keep
cues across outfits (``DATASETS.SYNTHETIC.IDENTITY_CUES 1``, 360 clothes-changing queries).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fire2_ablation.py            # 4 arms x 3 seeds
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fire2_ablation.py --world ccworld --jobs 1 --features
    .venv/bin/python benchmarks/fire2_ablation.py --arms baseline fire2 --seeds 0 --jobs 1

Each run is ``projects/FIRe2/train_net.py --config-file configs/Demo/fire2_<arm>_demo.yml`` in its
own process (``--jobs`` at a time, 2 by default), in ``logs/fire2_ablation/<arm>/seed<k>``, through
``rganet_analysis.compare.sweep`` (FIRe²'s entry point, ``fire2.tools``): finished runs are read back, not
trained again, half-done ones resume.
A second table says what FFM's last clustering found in the arms with FFM
(``<run>/fire2_ffm.json``: fine-grained classes per identity against the true outfits, adjusted
Rand index and purities against the generator's clothes ids). With ``--features`` a third table
reads each run's ``model_final.pth`` back and measures, on the test set, how much its features
depend on clothes (:func:`clothes_dependence`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from rganet_analysis.machine import cpu_model, load_average  # noqa: E402
from rganet_analysis.compare import paired_difference, sweep  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "projects", "FIRe2"))  # the fire2 package
FIRE2_NET = "fire2.tools"  # FIRe²'s entry point, run by compare as `python -m fire2.tools`
OUT = os.path.join(ROOT, "logs", "fire2_ablation")

ARMS = {"baseline": "configs/Demo/fire2_baseline_demo.yml", "ffm": "configs/Demo/fire2_ffm_demo.yml",
        "far": "configs/Demo/fire2_far_demo.yml", "fire2": "configs/Demo/fire2_demo.yml"}
#: ``--world``: the configs of each arm (``demo``: the default generated world; ``ccworld``: the
#: world whose identities keep cues across outfits, configs/Demo/fire2_*ccworld.yml)
WORLDS = {"demo": ARMS,
          "ccworld": {"baseline": "configs/Demo/fire2_baseline_ccworld.yml",
                      "ffm": "configs/Demo/fire2_ffm_ccworld.yml",
                      "far": "configs/Demo/fire2_far_ccworld.yml",
                      "fire2": "configs/Demo/fire2_ccworld.yml"}}
NAMES = {"baseline": "baseline (max+avg pool, BNNeck, CE + triplet)", "ffm": "+ FFM", "far": "+ FAR",
         "fire2": "FIRe² (+ FFM + FAR)"}
KEYS = [("standard", "Rank-1"), ("standard", "mAP"), ("cloth_changing", "Rank-1"),
        ("cloth_changing", "mAP")]


FFM_KEYS = [("clusters_per_id", "clusters / id", "{:.2f}"), ("outfits_per_id", "outfits / id", "{:.2f}"),
            ("ari", "ARI vs clothes", "{:.2f}"), ("purity", "purity", "{:.2f}"),
            ("inverse_purity", "inverse purity", "{:.2f}")]


def ffm_found(out_dir: str):
    """The last line of ``<out_dir>/fire2_ffm.json`` (FFM's last clustering), or None."""
    path = os.path.join(out_dir, "fire2_ffm.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return lines[-1] if lines else None


def _cell(values, fmt="{:.1f}"):
    v = np.asarray(values, float)
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}" if len(v) > 1 else fmt.format(v.mean())


def clothes_dependence(out_dir: str) -> dict:
    """Cosine similarities of the run's final test features (flip-averaged BN features, as the
    evaluator uses): mean over pairs of images of the **same identity in the same outfit**, the
    **same identity in another outfit**, and **other identities**; ``gap`` = same outfit - other
    outfit (what changing clothes costs) and ``margin`` = other outfit - other identity (what is
    left to recognise the person by). Also FFM's clustering (the run's K1, K2, EPS) of the test
    features of each identity against the outfits (``ari``): do the features still split a
    person by outfit?"""
    import torch
    import torch.nn.functional as F
    from fastreid.utils.checkpoint import Checkpointer

    from fire2.config import load_fire2_config
    from fire2.engine import FIRe2Trainer
    from fire2.engine.ffm_report import ffm_report
    from fire2.modeling import cluster_identities
    from fire2.data.clothes import clothes_of

    cfg = load_fire2_config(os.path.join(out_dir, "config.yaml"))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    model = FIRe2Trainer.build_model(cfg)
    Checkpointer(model).load(os.path.join(out_dir, "model_final.pth"))
    model.eval()
    loader, _ = FIRe2Trainer.build_test_loader(cfg, cfg.DATASETS.TESTS[0])
    feats = []
    with torch.no_grad():
        for batch in loader:
            f = model(batch)
            if cfg.TEST.FLIP.ENABLED:
                f = (f + model({"images": batch["images"].flip(3)})) / 2
            feats.append(f)
    feats = F.normalize(torch.cat(feats), dim=1)
    items = loader.dataset.img_items
    pids = np.array([it[1] for it in items])
    clothes = np.array([clothes_of(it) for it in items], dtype=object)
    sim = (feats @ feats.t()).numpy()
    same_id = pids[:, None] == pids[None, :]
    same_cl = clothes[:, None] == clothes[None, :]
    off = ~np.eye(len(items), dtype=bool)
    s_outfit = sim[same_id & same_cl & off].mean()
    s_other = sim[same_id & ~same_cl].mean()
    s_id = sim[~same_id].mean()
    _, ids = np.unique(pids, return_inverse=True)
    f = cfg.MODEL.FIRE2.FFM
    labels, _, _ = cluster_identities(feats, ids, f.K1, f.K2, f.EPS, f.MIN_SAMPLES)
    rep = ffm_report(labels, ids, clothes.tolist())
    return {"same_outfit": s_outfit, "other_outfit": s_other, "other_id": s_id,
            "gap": s_outfit - s_other, "margin": s_other - s_id, "test_ari": rep["ari"],
            "test_clusters_per_id": rep["clusters_per_id"]}


FEATURE_KEYS = [("same_outfit", "cos same id, same outfit"), ("other_outfit", "cos same id, other outfit"),
                ("other_id", "cos other ids"), ("gap", "clothes gap"), ("margin", "id margin across clothes"),
                ("test_ari", "test ARI (outfits)")]


def paired_differences(rows: dict, key: str, base: str = "baseline") -> dict:
    """``{arm: (mean, standard error)}`` of ``arm - base`` in ``key`` over the seeds both ran
    (the same seed: the same data, initialisation and batches up to the arm's own losses):
    compare's ``paired_difference`` (standard error std(ddof=1) / sqrt(seeds), NaN with one)."""
    if base not in rows:
        return {}
    return {arm: paired_difference(*zip(*[(a[key], b[key]) for a, b in zip(runs, rows[base])]))
            for arm, runs in rows.items() if arm != base}


def run_all(arms, seeds, opts, jobs: int, out: str = OUT, world: str = "demo") -> dict:
    """``{arm: [metrics of seed s, ...]}``: every arm x seed trained (or read back) by compare's
    sweep with FIRe²'s entry point; each run's metrics with what FFM's last clustering found."""
    res = sweep([os.path.join(ROOT, WORLDS[world][a]) for a in arms], seeds, out, opts, names=arms,
                jobs=jobs, train_nets=[FIRE2_NET])
    rows = {}
    for arm in arms:
        runs = res[arm]["runs"]
        missing = [s for s in seeds if s not in runs or f"{KEYS[-1][0]}/{KEYS[-1][1]}" not in runs[s]]
        if missing:
            raise RuntimeError(f"{arm}: seeds {missing} gave no clothes-changing result")
        rows[arm] = [dict(runs[s], ffm=ffm_found(os.path.join(out, arm, f"seed{s}"))) for s in seeds]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--features", action="store_true",
                    help="also measure the clothes dependence of each run's test features")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("--world", default="demo", choices=list(WORLDS),
                    help="demo: the default generated world; ccworld: identities keep cues "
                         "across outfits (configs/Demo/fire2_*ccworld.yml)")
    ap.add_argument("--out", default=None, help="where the runs are (and are reused from); "
                    "default logs/fire2_ablation (demo) or logs/fire2_ablation_ccworld")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    args = ap.parse_args()
    if args.out is None:
        args.out = OUT if args.world == "demo" else f"{OUT}_{args.world}"
    rows = run_all(args.arms, args.seeds, args.opts, args.jobs, args.out, args.world)
    print(f"\nFIRe² ablation on SyntheticLTCC ({', '.join(WORLDS[args.world][a] for a in args.arms)}), "
          f"seeds {args.seeds}; {os.cpu_count()} x {cpu_model()}, load {load_average()}\n")
    head = "| arm | " + " | ".join(f"{p} {m}" for p, m in KEYS) + " |"
    print(head)
    print("|" + "---|" * (len(KEYS) + 1))
    for arm, runs in rows.items():
        cells = [_cell([r[f"{p}/{m}"] for r in runs]) for p, m in KEYS]
        print(f"| {NAMES[arm]} | " + " | ".join(cells) + " |")
    first = next(iter(rows.values()))[0]
    chance = [f"{p} {m} {first[f'{p}/chance {m}']:.2f}" for p, m in KEYS if f"{p}/chance {m}" in first]
    if chance:
        print(f"| chance (random ranking) | " + " | ".join(
            f"{first[f'{p}/chance {m}']:.1f}" if f"{p}/chance {m}" in first else "" for p, m in KEYS)
              + " |")
        print(f"\n{int(first.get('cloth_changing/num_queries', 0))} clothes-changing queries; "
              f"chance level: {', '.join(chance)}")
    if "baseline" in rows and len(rows) > 1:
        print(f"\nPaired differences against the baseline (same seed), mean ± standard error over "
              f"{len(args.seeds)} seeds\n")
        print("| arm - baseline | " + " | ".join(f"{p} {m}" for p, m in KEYS) + " |")
        print("|" + "---|" * (len(KEYS) + 1))
        diffs = {k: paired_differences(rows, f"{k[0]}/{k[1]}") for k in KEYS}
        for arm in rows:
            if arm != "baseline":
                print(f"| {arm} - baseline | " + " | ".join(
                    "{:+.1f} ± {:.1f}".format(*diffs[k][arm]) for k in KEYS) + " |")
    found = {arm: [r["ffm"] for r in runs] for arm, runs in rows.items()
             if runs and all(r["ffm"] for r in runs)}
    if found:
        print("\nWhat FFM's last clustering found (training set, against the generator's clothes ids)\n")
        print("| arm | epoch | " + " | ".join(name for _, name, _ in FFM_KEYS) + " |")
        print("|" + "---|" * (len(FFM_KEYS) + 2))
        for arm, reports in found.items():
            cells = [_cell([r[k] for r in reports], fmt) for k, _, fmt in FFM_KEYS]
            print(f"| {NAMES[arm]} | {reports[0]['epoch']} | " + " | ".join(cells) + " |")
    if args.features:
        print("\nClothes dependence of the test features (cosine similarity, mean over pairs)\n")
        print("| arm | " + " | ".join(name for _, name in FEATURE_KEYS) + " |")
        print("|" + "---|" * (len(FEATURE_KEYS) + 1))
        for arm in rows:
            deps = [clothes_dependence(os.path.join(args.out, arm, f"seed{s}"))
                    for s in args.seeds]
            cells = [_cell([d[k] for d in deps], "{:.3f}") for k, _ in FEATURE_KEYS]
            print(f"| {NAMES[arm]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
