#!/usr/bin/env python
"""Fig. 3 of the paper as one command: Rank-1 and mAP against the region number N, the
amplification factor gamma, the prompt length K and the memory momentum m_u, on the embedded
default (configs/Demo/rganet_demo.yml: generated occluded data, the person CLIP made here).

    .venv/bin/python benchmarks/fig3.py                      # full: 2 seeds, the demo schedule
    .venv/bin/python benchmarks/fig3.py --quick              # smoke run: 1 seed, 1/6 schedule
    .venv/bin/python benchmarks/fig3.py --epochs 12 --seeds 0 1 --jobs 2   # reduced schedule
        [--sweeps N gamma K m_u] [--out logs/fig3] [--bags-percent 40]
        [--mu-opts KEY VALUE ...]    # extra overrides for the m_u points only
        [KEY VALUE ...]              # extra overrides for every run

Each point is a config override of the demo config, trained by ``projects/RGANet/train_net.py``
in its own process (the helper of benchmarks/demo_ablation.py). As in the paper (§IV-D), the
N, gamma and K sweeps are RGM only (``MODEL.RGANET.RAM.DAI False``, ``IAI False``) and the m_u
sweep is the full RGANet (RGM + RAM). The N sweep uses the paper's class names per N
(rganet_plugin/data/part_labels.py) and trains every N on the same generated data with bags
(``DATASETS.SYNTHETIC.BAGS_PERCENT``), so N = 5 has its fifth class and N = 2..4 read the bag
pixels as background.

Resumable: each run writes ``result.json`` into its folder ``<out>/<sweep>_<value>/seed<s>``;
a rerun reuses every result whose overrides are unchanged. A run whose loss turns NaN / inf
(fast-reid's trainer raises ``FloatingPointError``) is recorded as "diverged (loss NaN at iter X)"
and left out of the mean; it never stops the sweep and never enters a mean as NaN.

Writes ``<out>/fig3.md`` (tables) and ``<out>/fig3.png`` (the plot); ``--doc docs/fig3.md
--plot docs/images/fig3.png`` also updates the docs (the part of docs/fig3.md between the
``fig3:begin`` / ``fig3:end`` markers).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import glob
import json
import math
import os
import re
import shutil
import statistics
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rganet_plugin.data.part_labels import paper_class_names  # noqa: E402

try:  # the train-a-config-in-its-own-process helper, wherever it lives now
    from rganet_analysis.compare import last_result, train_config  # noqa: E402
except ImportError:
    from demo_ablation import last_result, train_config  # noqa: E402,F401

CONFIG = os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml")

#: the paper's Fig. 3 grids and its defaults (§IV-B: N = 4, gamma = 20, K = 8, m_u = 0.3)
SWEEPS: Dict[str, List] = {
    "N": [2, 3, 4, 5],
    "gamma": [1, 5, 10, 20, 50, 100],
    "K": [2, 4, 8, 16],
    "m_u": [0.1, 0.3, 0.5, 0.7, 0.9],
}
TITLES = {"N": "(a) region number N", "gamma": "(b) amplification factor γ",
          "K": "(c) prompt length K", "m_u": "(d) momentum m_u"}
RGM_ONLY = ["MODEL.RGANET.RAM.DAI", "False", "MODEL.RGANET.RAM.IAI", "False"]
NAN_RE = re.compile(r"Loss became infinite or NaN at iteration=(\d+)")


def point_overrides(sweep: str, value, bags_percent: int = 40,
                    mu_opts: Sequence[str] = ()) -> List[str]:
    """The config overrides of one Fig. 3 point (on top of the demo config)."""
    if sweep == "N":
        names = paper_class_names(int(value))
        return RGM_ONLY + ["MODEL.RGANET.CLASS_NAMES", repr(names),
                           "DATASETS.SYNTHETIC.BAGS_PERCENT", str(int(bags_percent))]
    if sweep == "gamma":
        return RGM_ONLY + ["MODEL.RGANET.GAMMA", str(float(value))]
    if sweep == "K":
        return RGM_ONLY + ["MODEL.RGANET.PROMPT.N_CTX", str(int(value))]
    if sweep == "m_u":
        return ["MODEL.RGANET.MEMORY.MOMENTUM", str(float(value)), *mu_opts]
    raise ValueError(f"unknown sweep {sweep!r}; known: {', '.join(SWEEPS)}")


def schedule_overrides(epochs: Optional[int], base) -> List[str]:
    """Scale the demo schedule (stage 2 epochs, LR steps, warm-up, stage 1 epochs) to ``epochs``
    stage-2 epochs; ``base`` is the demo config. None = the demo's own schedule."""
    if not epochs:
        return []
    full = base.SOLVER.MAX_EPOCH
    f = epochs / full
    steps = sorted({max(1, min(epochs - 1, round(s * f))) for s in base.SOLVER.STEPS}) or [epochs]
    stage1 = max(1, round(base.PROMPT_STAGE.MAX_EPOCH * f))
    return ["SOLVER.MAX_EPOCH", str(epochs), "SOLVER.STEPS", repr(steps),
            "SOLVER.WARMUP_ITERS", str(max(1, round(base.SOLVER.WARMUP_ITERS * f))),
            "SOLVER.CHECKPOINT_PERIOD", str(epochs), "TEST.EVAL_PERIOD", str(epochs),
            "PROMPT_STAGE.MAX_EPOCH", str(stage1)]


def plan(sweeps: Sequence[str], seeds: Sequence[int], out: str, common: Sequence[str],
         bags_percent: int = 40, mu_opts: Sequence[str] = ()) -> List[dict]:
    """One entry per (point, seed): its folder and full override list."""
    runs = []
    for sweep in sweeps:
        if sweep not in SWEEPS:
            raise SystemExit(f"unknown sweep {sweep!r}; known: {', '.join(SWEEPS)}")
        for value in SWEEPS[sweep]:
            opts = point_overrides(sweep, value, bags_percent, mu_opts) + list(common)
            for seed in seeds:
                runs.append({"sweep": sweep, "value": value, "seed": seed,
                             "dir": os.path.join(out, f"{sweep}_{value}", f"seed{seed}"),
                             "opts": opts})
    return runs


def cached(run: dict) -> Optional[dict]:
    """The run's stored result when it was made with the same overrides and seed."""
    p = os.path.join(run["dir"], "result.json")
    if not os.path.isfile(p):
        return None
    try:
        with open(p) as f:
            res = json.load(f)
    except (OSError, ValueError):
        return None
    if res.get("opts") != run["opts"] or res.get("seed") != run["seed"]:
        return None
    return res


def divergence(run_dir: str) -> Optional[dict]:
    """``{"iter": X, "stage": ...}`` when a log under ``run_dir`` records fast-reid's NaN / inf
    loss error (stage 1 logs into ``prompt_stage/``)."""
    for log in sorted(glob.glob(os.path.join(run_dir, "**", "log.txt"), recursive=True)):
        with open(log, errors="replace") as f:
            m = NAN_RE.search(f.read())
        if m:
            stage = "stage 1" if os.sep + "prompt_stage" + os.sep in log else "stage 2"
            return {"iter": int(m.group(1)), "stage": stage}
    return None


def last_error(run_dir: str) -> str:
    """The last line naming an error in the run's logs ("" when there is none)."""
    found = ""
    for log in sorted(glob.glob(os.path.join(run_dir, "**", "log.txt"), recursive=True)):
        with open(log, errors="replace") as f:
            for line in f:
                if re.match(r"^\w*(Error|Exception)\b", line.strip()):
                    found = line.strip()
    return found


def bank_updates(run_dir: str) -> Optional[int]:
    """Region features that updated the memory bank over the run (the ``selected`` counts of
    ``memory_bank.jsonl``, one line per epoch); None when the run wrote no such log."""
    path = os.path.join(run_dir, "memory_bank.jsonl")
    if not os.path.isfile(path):
        return None
    total = 0
    with open(path) as f:
        for line in f:
            try:
                total += int(sum(json.loads(line).get("selected", [])))
            except (ValueError, TypeError):
                continue
    return total


def bags_available() -> Optional[str]:
    """None when the generator draws bags (label 5) for BAGS_PERCENT > 0, else why not."""
    try:
        from rganet_plugin.synthetic import BAG_LABEL
    except ImportError:
        return ("the generator draws no bags yet (rganet_plugin.synthetic has no BAG_LABEL): "
                "N = 5 has no 'bags' pixels to learn")
    if BAG_LABEL != 5:
        return f"the generator labels bags {BAG_LABEL}, the masks' canonical value is 5"
    return None


def execute(run: dict, trainer=None) -> dict:
    """Train one run (or reuse its cached result); always returns a result dict with
    ``status`` ok / diverged / failed / nan-metrics. Only ok and diverged are cached."""
    res = cached(run)
    if res is not None:
        return res
    if os.path.isdir(run["dir"]):
        shutil.rmtree(run["dir"])  # a half-finished or differently-configured run
    os.makedirs(run["dir"])
    name = f"{run['sweep']}={run['value']}"
    trainer = trainer or train_config
    t0 = time.time()
    try:
        metrics = trainer(CONFIG, name, run["seed"], run["dir"], run["opts"])
        status = "ok"
        if any(math.isnan(v) for v in metrics.values() if isinstance(v, float)):
            status = "nan-metrics"
        res = {"status": status, **metrics}
    except (SystemExit, RuntimeError) as e:  # the helper's failure (demo_ablation: SystemExit,
        # tools/compare: RunFailed), raised after the run's process ended
        div = divergence(run["dir"])
        if div is not None:
            res = {"status": "diverged", **div}
        else:
            res = {"status": "failed",
                   "error": last_error(run["dir"]) or str(e).strip().splitlines()[0]}
    res.update(seed=run["seed"], opts=run["opts"], minutes=(time.time() - t0) / 60)
    if res["status"] in ("ok", "diverged"):
        with open(os.path.join(run["dir"], "result.json"), "w") as f:
            json.dump(res, f, indent=1)
    return res


def describe(results: List[dict]) -> dict:
    """Mean ± std over the seeds that trained; a note for the others."""
    ok = [r for r in results if r["status"] == "ok"]
    cell = {"seeds": len(ok)}
    for k in ("Rank-1", "mAP"):
        xs = [r[k] for r in ok]
        cell[k] = (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0) if xs else None
    notes = []
    for r in results:
        if r["status"] == "diverged":
            notes.append(f"seed {r['seed']} diverged (loss NaN at iter {r['iter']}, {r['stage']})")
        elif r["status"] == "nan-metrics":
            notes.append(f"seed {r['seed']}: NaN metrics")
        elif r["status"] == "failed":
            notes.append(f"seed {r['seed']} failed: {r['error']}")
        elif r["status"] == "skipped":
            notes.append(r["reason"])
    cell["notes"] = notes
    return cell


def fmt(ms, seeds: int = 2) -> str:
    if ms is None:
        return "—"
    return f"{ms[0]:.1f}" if seeds == 1 else f"{ms[0]:.1f} ± {ms[1]:.1f}"


def tables(summary: Dict[str, Dict], seeds: Sequence[int]) -> str:
    lines = []
    for sweep, cells in summary.items():
        lines += [f"### {TITLES[sweep]}", "", f"| {sweep} | Rank-1 | mAP | seeds | note |",
                  "|---|---|---|---|---|"]
        for value, c in cells.items():
            if c["seeds"] == 0 and c["notes"]:
                lines.append(f"| {value} | {'; '.join(c['notes'])} | — | 0/{len(seeds)} | |")
                continue
            lines.append(f"| {value} | {fmt(c['Rank-1'], c['seeds'])} | {fmt(c['mAP'], c['seeds'])} | "
                         f"{c['seeds']}/{len(seeds)} | {'; '.join(c['notes'])} |")
        lines.append("")
    return "\n".join(lines)


def plot(summary: Dict[str, Dict], path: str, subtitle: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = list(summary)
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4.2 * len(sweeps), 3.6), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        cells = summary[sweep]
        xs = list(range(len(cells)))
        for key, colour, marker in (("Rank-1", "tab:blue", "o"), ("mAP", "tab:orange", "s")):
            pts = [(x, c[key]) for x, c in zip(xs, cells.values()) if c[key] is not None]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1][0] for p in pts],
                            yerr=[p[1][1] for p in pts], color=colour, marker=marker,
                            capsize=3, label=key)
        for x, (value, c) in zip(xs, cells.items()):
            if c["seeds"] == 0:
                ax.annotate("diverged" if any("diverged" in n for n in c["notes"]) else "n/a",
                            (x, 0.02), xycoords=("data", "axes fraction"), ha="center",
                            color="tab:red", fontsize=8)
        if cells and all(any("never updated" in n for n in c["notes"]) for c in cells.values()):
            ax.text(0.5, 0.5, "memory bank never updated\n(alpha filter never fired)",
                    transform=ax.transAxes, ha="center", color="tab:red", fontsize=8)
        ax.set_xticks(xs)
        ax.set_xticklabels([str(v) for v in cells])
        ax.set_title(TITLES[sweep])
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if subtitle:
        fig.suptitle(subtitle, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_doc(doc: str, body: str) -> None:
    begin, end = "<!-- fig3:begin -->", "<!-- fig3:end -->"
    text = open(doc).read() if os.path.isfile(doc) else f"# Fig. 3 reproduced\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text = text.rstrip() + f"\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(doc, "w") as f:
        f.write(f"{head}{begin}\n{body.strip()}\n{end}{tail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sweeps", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=None,
                    help="stage-2 epochs (the schedule and stage 1 scale with it); "
                         "default: the demo's own")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 1/6 of the schedule")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    ap.add_argument("--bags-percent", type=int, default=40,
                    help="DATASETS.SYNTHETIC.BAGS_PERCENT of the N sweep's data")
    ap.add_argument("--mu-opts", nargs="+", default=[], metavar="KEY_OR_VALUE",
                    help="extra overrides for the m_u points (e.g. a momentum-reading key)")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: tables and plot from the cached runs (others: 'not run')")
    ap.add_argument("--out", default=os.path.join(ROOT, "logs", "fig3"))
    ap.add_argument("--doc", default="", help="markdown file whose fig3 section is rewritten")
    ap.add_argument("--plot", default="", help="also write the plot here")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every run")
    args = ap.parse_args(argv)

    from rganet_analysis.machine import cpu_model, load_average

    from rganet_plugin.config.setup import load_config

    base = load_config(CONFIG)
    if args.quick:
        args.seeds = args.seeds[:1]
        args.epochs = args.epochs or max(1, base.SOLVER.MAX_EPOCH // 6)
    if len(args.mu_opts) % 2:
        raise SystemExit(f"--mu-opts come in KEY VALUE pairs, got {args.mu_opts}")
    common = schedule_overrides(args.epochs, base) + list(args.opts)
    runs = plan(args.sweeps, args.seeds, args.out, common, args.bags_percent, args.mu_opts)
    for opts in {tuple(r["opts"]) for r in runs}:  # a bad override fails here, before training
        load_config(CONFIG, list(opts))

    no_bags = bags_available()
    todo, results = [], {}
    # seed-major: a sweep stopped half-way still has every point of the first seeds
    for run in sorted(runs, key=lambda r: args.seeds.index(r["seed"])):
        if run["sweep"] == "N" and run["value"] == 5 and no_bags:
            results[id(run)] = {"status": "skipped", "seed": run["seed"], "reason": no_bags}
        elif args.report_only and cached(run) is None:
            results[id(run)] = {"status": "skipped", "seed": run["seed"],
                                "reason": f"seed {run['seed']} not run"}
        else:
            todo.append(run)
    print(f"{len(runs)} runs ({len(todo)} to train or reuse) into {args.out}", flush=True)

    def one(run):
        res = execute(run)
        extra = (f"R1 {res['Rank-1']:.1f} mAP {res['mAP']:.1f}" if res["status"] == "ok"
                 else res["status"])
        print(f"[{run['sweep']}={run['value']} seed {run['seed']}] {extra} "
              f"({res['minutes']:.1f} min)", flush=True)
        return res

    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for run, res in zip(todo, pool.map(one, todo)):
            results[id(run)] = res

    summary: Dict[str, Dict] = {}
    for sweep in args.sweeps:
        summary[sweep] = {}
        for value in SWEEPS[sweep]:
            point = [r for r in runs if r["sweep"] == sweep and r["value"] == value]
            summary[sweep][value] = cell = describe([results[id(r)] for r in point])
            if sweep == "m_u":  # m_u only acts through bank updates: say when there were none
                ups = [bank_updates(r["dir"]) for r in point
                       if results[id(r)]["status"] == "ok"]
                if ups and all(u == 0 for u in ups):
                    cell["notes"].append("memory bank never updated: no region had alpha above "
                                         "MODEL.RGANET.MEMORY.ALPHA_THRESH, so m_u had no effect")
                elif ups and all(u is not None for u in ups):
                    cell["notes"].append(f"bank updates per run: {', '.join(map(str, ups))}")
    sched = (f"{args.epochs} stage-2 epochs (demo: {base.SOLVER.MAX_EPOCH}), schedule scaled"
             if args.epochs else f"the demo schedule ({base.SOLVER.MAX_EPOCH} stage-2 epochs)")
    cmd = "benchmarks/fig3.py " + " ".join(sys.argv[1:] if argv is None else argv)
    body = "\n".join([
        f"Command: `{cmd.strip()}`  ",
        f"Schedule: {sched}; seeds {args.seeds}; N, γ, K: RGM only; m_u: RGM + RAM; "
        f"N sweep on data with bags ({args.bags_percent}% of identities).  ",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, load {load_average()}.", "",
        tables(summary, args.seeds)])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fig3.md"), "w") as f:
        f.write(body + "\n")
    subtitle = f"embedded default, {sched}, seeds {args.seeds} (mean ± std)"
    plot(summary, os.path.join(args.out, "fig3.png"), subtitle)
    if args.plot:
        plot(summary, args.plot, subtitle)
    if args.doc:
        update_doc(args.doc, body)
    print("\n" + body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
