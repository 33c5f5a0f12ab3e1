#!/usr/bin/env python
"""FIRe² ablation on the embedded cloth-changing default (SyntheticLTCC): baseline, + FFM, + FAR,
FIRe² (both), over seeds; prints a markdown table (mean ± std) of the standard and the
clothes-changing protocol.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fire2_ablation.py            # 4 arms x 3 seeds
    .venv/bin/python benchmarks/fire2_ablation.py --arms baseline fire2 --seeds 0 --jobs 1

Each run is ``projects/FIRe2/train_net.py --config-file configs/Demo/fire2_<arm>_demo.yml`` in its
own process (``--jobs`` at a time, 2 by default), in ``logs/fire2_ablation/<arm>/seed<k>``;
finished runs (their ``log.txt`` holds the final evaluation) are read back, not trained again.
A second table says what FFM's last clustering found in the arms with FFM
(``<run>/fire2_ffm.json``: fine-grained classes per identity against the true outfits, adjusted
Rand index and purities against the generator's clothes ids).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.machine import cpu_model, load_average  # noqa: E402

ARMS = {"baseline": "configs/Demo/fire2_baseline_demo.yml", "ffm": "configs/Demo/fire2_ffm_demo.yml",
        "far": "configs/Demo/fire2_far_demo.yml", "fire2": "configs/Demo/fire2_demo.yml"}
NAMES = {"baseline": "baseline (max+avg pool, BNNeck, CE + triplet)", "ffm": "+ FFM", "far": "+ FAR",
         "fire2": "FIRe² (+ FFM + FAR)"}
KEYS = [("standard", "Rank-1"), ("standard", "mAP"), ("cloth_changing", "Rank-1"),
        ("cloth_changing", "mAP")]


def final_metrics(out_dir: str, dataset: str = "SyntheticLTCC"):
    """The last evaluation table fast-reid printed into ``<out_dir>/log.txt`` (None if none)."""
    path = os.path.join(out_dir, "log.txt")
    if not os.path.isfile(path):
        return None
    header, row = None, None
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells and cells[0] == "Dataset":
                header = cells
            elif header and cells and cells[0] == dataset and len(cells) == len(header):
                row = dict(zip(header, cells))
    if row is None or "cloth_changing/mAP" not in row:
        return None
    return {f"{p}/{m}": float(row[f"{p}/{m}"]) for p, m in KEYS}


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


def run(arm: str, seed: int, extra) -> dict:
    out = os.path.join(ROOT, "logs", "fire2_ablation", arm, f"seed{seed}")
    got = final_metrics(out)
    if got is None:
        cmd = [sys.executable, os.path.join(ROOT, "projects", "FIRe2", "train_net.py"),
               "--config-file", os.path.join(ROOT, ARMS[arm]), "SEED", str(seed),
               "OUTPUT_DIR", out, *extra]
        print("+", " ".join(cmd), flush=True)
        with open(os.path.join(ROOT, "logs", f"fire2_ablation_{arm}_{seed}.log"), "w") as log:
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
        got = final_metrics(out)
        if got is None:
            raise RuntimeError(f"{out}: no final evaluation in log.txt")
    got["ffm"] = ffm_found(out)
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    args = ap.parse_args()
    os.makedirs(os.path.join(ROOT, "logs"), exist_ok=True)
    jobs = [(arm, s) for s in args.seeds for arm in args.arms]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        done = dict(zip(jobs, pool.map(lambda j: run(j[0], j[1], args.opts), jobs)))
    rows = {arm: [done[(arm, s)] for s in args.seeds] for arm in args.arms}
    print(f"\nFIRe² ablation on SyntheticLTCC (configs/Demo/fire2_*_demo.yml), seeds {args.seeds}; "
          f"{os.cpu_count()} x {cpu_model()}, load {load_average()}\n")
    head = "| arm | " + " | ".join(f"{p} {m}" for p, m in KEYS) + " |"
    print(head)
    print("|" + "---|" * (len(KEYS) + 1))
    for arm, runs in rows.items():
        cells = [_cell([r[f"{p}/{m}"] for r in runs]) for p, m in KEYS]
        print(f"| {NAMES[arm]} | " + " | ".join(cells) + " |")
    found = {arm: [r["ffm"] for r in runs] for arm, runs in rows.items()
             if runs and all(r["ffm"] for r in runs)}
    if found:
        print("\nWhat FFM's last clustering found (training set, against the generator's clothes ids)\n")
        print("| arm | epoch | " + " | ".join(name for _, name, _ in FFM_KEYS) + " |")
        print("|" + "---|" * (len(FFM_KEYS) + 2))
        for arm, reports in found.items():
            cells = [_cell([r[k] for r in reports], fmt) for k, _, fmt in FFM_KEYS]
            print(f"| {NAMES[arm]} | {reports[0]['epoch']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
