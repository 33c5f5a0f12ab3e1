#!/usr/bin/env python
"""Train the baseline, fixed-stripe and RGANet demo configs on the generated occluded data and
print their accuracy side by side (issue: "RGANet should beat the baseline on occluded queries").

    .venv/bin/python benchmarks/demo_ablation.py [--seeds 0 1 2] [--out logs/demo_ablation]
        [KEY VALUE ...]   # extra config overrides for every run

Each run is ``projects/RGANet/train_net.py`` with its ``configs/Demo/*_demo.yml`` in a fresh
process, so the numbers are exactly what the README's demo command gives.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = [("baseline", "CLIP baseline (row 0)"), ("stripes", "fixed stripes + DAI + IAI (row 4)"),
        ("rganet", "RGANet: RGM + DAI + IAI (row 8)")]
CONFIGS = {"baseline": "clip_baseline_demo.yml", "stripes": "stripes_demo.yml",
           "rganet": "rganet_demo.yml"}

sys.path.insert(0, ROOT)
# one helper trains a config in its own process and reads its result (also used by mechanism.py
# and by `python -m rganet_analysis.compare`)
from rganet_analysis.compare import RunFailed, last_result, train_config  # noqa: E402,F401


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "logs", "demo_ablation"))
    ap.add_argument("--runs", nargs="+", default=[r for r, _ in RUNS])
    ap.add_argument("opts", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    results = {}
    for seed in args.seeds:
        for name in args.runs:
            out = os.path.join(args.out, f"{name}_seed{seed}")
            try:
                res = train_config(os.path.join(ROOT, "configs", "Demo", CONFIGS[name]),
                                   name, seed, out, args.opts)
            except RunFailed as e:
                raise SystemExit(str(e)) from None
            results.setdefault(name, []).append(res)
            print(f"[{name} seed {seed}] R1 {res['Rank-1']:.1f}  mAP {res['mAP']:.1f}  "
                  f"({res['minutes']:.1f} min)", flush=True)
    print("\n| model | Rank-1 | Rank-5 | mAP | mINP | minutes/run |\n|---|---|---|---|---|---|")
    for name, title in RUNS:
        if name not in results:
            continue
        rs = results[name]
        avg = {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]}
        print(f"| {title} | {avg['Rank-1']:.1f} | {avg['Rank-5']:.1f} | {avg['mAP']:.1f} | "
              f"{avg['mINP']:.1f} | {avg['minutes']:.1f} |")
    print(f"\nseeds {args.seeds}; generated SyntheticOccludedDuke (every query occluded)")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
