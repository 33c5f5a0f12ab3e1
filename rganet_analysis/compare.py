"""``python -m rganet_analysis.compare``: train and evaluate several configs on the same data
and seeds, and print one table (and draw one chart) of the results.

    python -m rganet_analysis.compare --configs A.yml B.yml C.yml --seeds 0 1 2 \\
        [--out logs/compare] [--names a b c] [--keep-going] [KEY VALUE ...]

Every (config, seed) run is ``python -m rganet_plugin.tools train --config-file A.yml OUTPUT_DIR
<out>/<name>/seed<k> SEED <k> KEY VALUE ...`` (what ``projects/RGANet/train_net.py`` runs) in its
own process, so a row is exactly what that command gives: fast-reid's ``DefaultTrainer`` loop and, through ``RGANetTrainer``, the plugin's
evaluator (on a model with one global feature it ranks that feature with ``TEST.METRIC``, which
is what fast-reid's ``ReidEvaluator`` computes: same R1 / mAP / mINP).

Sibling projects: ``--entry fire2.tools`` runs the configs with another project's entry point,
a module run with ``python -m`` (one for every config, or one per config, so FIRe² rows and
RGANet rows share a table); the module exposes ``main`` and the ``load_config`` its runs use.
compare imports entry points; it executes no repository file.
``--protocol cloth_changing`` fills the table from that protocol's results
(``cloth_changing/Rank-1`` ...), as FIRe²'s evaluator reports them; a run without them shows n/a.

Resuming: a run that finished leaves ``result.json`` next to its checkpoints, with the fingerprint
of its full config; running the same command again reuses it (a run whose config changed since is
trained again, the old folder moved aside), and a run that stopped half-way goes on from its last
checkpoint (``--resume``; a run that finished but has no ``result.json`` is evaluated again).
Every run is its own process group: stopping ``compare`` (Ctrl-C, SIGTERM) sends the runs SIGINT,
so each writes a checkpoint and stops (SIGKILL after a minute), and ``compare`` exits with 130.
The training time of a run is the sum over its processes (``attempts.json``).

Output in ``--out``: ``comparison.md`` (the markdown table, also printed), ``comparison.png`` (R1,
mAP and mINP per config, mean with the standard deviation over seeds as error bars; needs
matplotlib, the ``bench`` extra) and ``results.json`` (every run).

Columns: how the backbone starts (``from scratch`` or the weights file it loads), R1, mAP, mINP
(%, mean ± sample std over seeds), training time (wall minutes of the run's
process, evaluation included), parameters (millions, every parameter of the model as trained,
classifier and any text tower included) and inference speed (images per second of the final
evaluation pass, data loading and flip test included, as fast-reid times it).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

from rganet_plugin.tools.argv import CONFIG_KEY, parse_args_anywhere

logger = logging.getLogger(__name__)

#: RGANet's entry point (what ``projects/RGANet/train_net.py`` runs), as a module command
RGANET_ENTRY = ("-m", "rganet_plugin.tools", "train")
RESULT_FILE = "result.json"
METRICS = ("Rank-1", "mAP", "mINP")


class RunFailed(RuntimeError):
    """A training process that exited with an error or printed no result table."""


# the training processes running now; each leads its own process group
_LIVE: set = set()
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


def stop_runs(grace: float = 60.0) -> None:
    """SIGINT to the process group of every run in progress (each writes a checkpoint and
    stops), SIGKILL to those still there after ``grace`` seconds; no new run starts after it."""
    _STOPPING.set()
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        _signal_group(p, signal.SIGINT)
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait()


def _signal_group(proc, sig) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------- projects
_LOADERS: Dict[str, object] = {}


def entry_module(train_net: str):
    """The entry point ``train_net`` of a sibling project: a module (``fire2.tools``), imported,
    that exposes ``main(argv)`` (what ``python -m`` runs) and ``load_config(file, opts)``.
    Importing it also registers the project's components (FIRe²'s meta-architecture and
    datasets), which the fingerprint and the parameter count build. Files are not executed."""
    if train_net.endswith(".py") or os.sep in train_net:
        raise ValueError(f"--entry {train_net}: name the entry point as a module (e.g. "
                         "fire2.tools), not a file: compare imports it and runs `python -m` on it")
    try:
        mod = importlib.import_module(train_net)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"--entry: no module {train_net!r} ({e}); a sibling project's package must be "
            "importable (installed, or its folder on PYTHONPATH, e.g. projects/FIRe2)") from e
    for attr in ("main", "load_config"):
        if not callable(getattr(mod, attr, None)):
            raise ValueError(f"{train_net} exposes no {attr}(...): compare needs main to run the "
                             "configs and load_config to read them")
    return mod


def entry_env(train_net: Optional[str] = None) -> Dict[str, str]:
    """The environment of a run: this one, with the folders that hold ``rganet_plugin`` and the
    entry point's top-level package first on ``PYTHONPATH``, so the child process imports the
    code this process imported (found by import, not by the repository's layout)."""
    import rganet_plugin

    tops = [rganet_plugin]
    if train_net is not None:
        tops.append(importlib.import_module(train_net.split(".")[0]))
    roots = [os.path.dirname(os.path.dirname(os.path.abspath(m.__file__))) for m in tops]
    env = dict(os.environ)
    paths = list(dict.fromkeys(roots + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                         if p]))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def project_loader(train_net: Optional[str] = None):
    """The config loader of the project whose entry point ``train_net`` is: the plugin's
    ``load_config`` for ``None`` (RGANet's entry point, ``python -m rganet_plugin.tools
    train``), else the ``load_config`` of the entry module (:func:`entry_module`)."""
    if train_net is None:
        from rganet_plugin.config import load_config

        return load_config
    if train_net not in _LOADERS:
        _LOADERS[train_net] = entry_module(train_net).load_config
    return _LOADERS[train_net]


# ---------------------------------------------------------------------------- one run
def last_result(log: str) -> Optional[Dict[str, float]]:
    """The last result table fast-reid's ``print_csv_format`` logged (columns read from its
    header), e.g. ``{'Rank-1': 50.0, 'mAP': 43.3, ...}``; ``None`` when there is none."""
    header, result = None, None
    for line in log.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if "|" in line else []
        if cells and cells[0] == "Dataset":
            header = cells
        elif header and len(cells) == len(header) and not cells[0].startswith(":"):
            try:
                result = {k: float(v) for k, v in zip(header[1:], cells[1:])}
            except ValueError:
                continue
    return result


_INFER_START = re.compile(r"Start inference on (\d+) images")
_INFER_TIME = re.compile(r"Total inference time: (?:(\d+) days?, )?(\d+):(\d+):(\d+(?:\.\d+)?)")


def inference_speed(log: str) -> Optional[float]:
    """Images per second of the last inference pass fast-reid's ``inference_on_dataset`` logged."""
    starts = _INFER_START.findall(log)
    times = _INFER_TIME.findall(log)
    if not starts or not times:
        return None
    days, h, m, s = times[-1]
    seconds = int(days or 0) * 86400 + int(h) * 3600 + int(m) * 60 + float(s)
    return int(starts[-1]) / seconds if seconds > 0 else None


def train_command(cfg_file: str, out: str, seed: int, opts: Sequence[str] = (),
                  resume: bool = False, train_net: Optional[str] = None) -> List[str]:
    entry = [sys.executable, *(("-m", train_net) if train_net is not None else RGANET_ENTRY)]
    return [*entry, *(["--resume"] if resume else []), "--config-file", cfg_file,
            "OUTPUT_DIR", out, "SEED", str(seed), *opts]


def train_config(cfg_file: str, name: str, seed: int, out: str, opts: Sequence[str] = (),
                 resume: bool = False, cwd: Optional[str] = None,
                 train_net: Optional[str] = None) -> Dict[str, float]:
    """RGANet's entry point (or the module ``train_net``) on one config and seed in its own process:
    its last result table plus ``minutes`` (wall time of the process) and ``images_per_s`` (its
    last inference pass). Raises :class:`RunFailed` with the run's output tail when it fails."""
    cmd = train_command(cfg_file, out, seed, opts, resume, train_net)
    t0 = time.time()
    print(f"[{name} seed {seed}] {' '.join(cmd)}", flush=True)
    with _LIVE_LOCK:
        if _STOPPING.is_set():
            raise RunFailed(f"{name} seed {seed} not started: compare is stopping")
        # its own process group (session): stop_runs reaches its data-loader workers too, and
        # a Ctrl-C in the terminal reaches compare, which stops the runs with a checkpoint
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=cwd, start_new_session=True,
                                env=dict(entry_env(train_net), RGANET_VERBOSE="1"))  # the full log
        _LIVE.add(proc)
    try:
        stdout, stderr = proc.communicate()
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    log = stdout + stderr
    res = last_result(log)
    if proc.returncode != 0 or res is None:
        raise RunFailed(f"{name} seed {seed} failed (exit {proc.returncode}); the end of its "
                        f"output:\n{log[-4000:]}")
    res["minutes"] = (time.time() - t0) / 60
    speed = inference_speed(log)
    if speed is not None:
        res["images_per_s"] = speed
    return res


# ---------------------------------------------------------------------------- the sweep
def run_fingerprint(cfg_file: str, seed: int, opts: Sequence[str],
                    train_net: Optional[str] = None) -> Dict[str, str]:
    """What a run's result depends on: its full config (output folder and device left out), as
    the project of ``train_net`` reads it."""
    cfg = project_loader(train_net)(cfg_file, [*opts, "SEED", str(seed)])
    cfg.OUTPUT_DIR = ""
    cfg.MODEL.DEVICE = ""
    text = cfg.dump()
    return {"sha1": hashlib.sha1(text.encode()).hexdigest(), "config": text}


def count_parameters(cfg_file: str, opts: Sequence[str], checkpoint: str,
                     train_net: Optional[str] = None) -> Optional[float]:
    """Millions of parameters of the model ``cfg_file`` builds, with the class count of the
    trained ``checkpoint`` (built without loading pre-trained weights)."""
    import torch
    from fastreid.modeling.meta_arch import build_model

    cfg = project_loader(train_net)(cfg_file, opts)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.PRETRAIN = False
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = state.get("model", state)
    if cfg.MODEL.HEADS.NUM_CLASSES == 0:  # training derives it: read the classifier's rows
        rows = [v.shape[0] for k, v in state.items()
                if re.search(r"(^|\.)\w*head\.weight$", k) and getattr(v, "dim", lambda: 0)() == 2]
        cfg.MODEL.HEADS.NUM_CLASSES = int(rows[0]) if rows else 1
    try:
        from rganet_plugin.engine.checkpoint import complete_cfg_from_checkpoint

        complete_cfg_from_checkpoint(cfg, state)
    except Exception:  # noqa: BLE001  (only fills plugin-specific counts)
        pass
    model = build_model(cfg)
    return sum(p.numel() for p in model.parameters()) / 1e6


def backbone_init(cfg_file: str, opts: Sequence[str] = (), train_net: Optional[str] = None) -> str:
    """How the config's backbone starts: ``from scratch`` or the weights file it loads."""
    b = project_loader(train_net)(cfg_file, opts).MODEL.BACKBONE
    if not b.PRETRAIN:
        return "from scratch"
    if b.PRETRAIN_PATH:
        return os.path.basename(b.PRETRAIN_PATH)
    return f"tag {b.CLIP.PRETRAINED_TAG}" if b.NAME == "build_clip_vit_backbone" else "download"


def run_name(cfg_file: str) -> str:
    return os.path.splitext(os.path.basename(cfg_file))[0]


def sweep(configs: Sequence[str], seeds: Sequence[int], out: str, opts: Sequence[str] = (),
          names: Optional[Sequence[str]] = None, keep_going: bool = False,
          cwd: Optional[str] = None, jobs: int = 1, train: bool = True,
          train_nets: Optional[Sequence[Optional[str]]] = None) -> Dict[str, dict]:
    """Train every config with every seed (reusing finished runs), ``jobs`` runs at a time;
    ``train=False`` only reads the finished runs (a missing one is listed under ``missing``).
    ``train_nets``: the entry point of every config (one for all, or one per config; default
    RGANet's). Return
    ``{name: {"config": path, "runs": {seed: result}, "failed": {seed: message},
    "params_m": float}}``."""
    names = list(names) if names else [run_name(c) for c in configs]
    if len(names) != len(configs):
        raise ValueError(f"--names gives {len(names)} names for {len(configs)} configs")
    nets = list(train_nets) if train_nets else [None]
    if len(nets) == 1:
        nets = nets * len(configs)
    if len(nets) != len(configs):
        raise ValueError(f"--train-net gives {len(nets)} entry points for {len(configs)} configs "
                         "(one for all, or one per config)")
    net_of = dict(zip(names, nets))
    if len(set(names)) != len(names):
        raise ValueError(f"two configs share a row name: {names}; pass --names")
    for c in configs:
        if not os.path.isfile(c):
            raise FileNotFoundError(f"config file not found: {c}")
    results: Dict[str, dict] = {}
    for name, cfg_file in zip(names, configs):
        results[name] = {"config": cfg_file, "runs": {}, "failed": {}, "missing": [],
                         "params_m": None, "init": backbone_init(cfg_file, opts, net_of[name])}
        if net_of[name] is not None:
            results[name]["train_net"] = net_of[name]
    todo = [(seed, name, cfg_file) for seed in seeds for name, cfg_file in zip(names, configs)]

    def one(job):
        seed, name, cfg_file = job
        if not train:
            return finished_result(cfg_file, seed, os.path.join(out, name, f"seed{seed}"),
                                   opts, net_of[name]), "missing"
        try:
            return _run_once(cfg_file, name, seed, os.path.join(out, name, f"seed{seed}"), opts,
                             cwd, net_of[name]), None
        except RunFailed as e:
            if not keep_going:
                raise
            print(str(e), file=sys.stderr, flush=True)
            return None, str(e).splitlines()[0]

    with ThreadPoolExecutor(max(1, jobs)) as pool:  # each run is its own process
        futures = [pool.submit(one, job) for job in todo]
        try:
            outcomes = [f.result() for f in futures]
        except RunFailed:
            for f in futures:
                f.cancel()
            raise
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (main): stop the runs, then leave
            for f in futures:
                f.cancel()
            stop_runs()
            raise
    for (seed, name, cfg_file), (res, failure) in zip(todo, outcomes):
        entry = results[name]
        if res is not None:
            entry["runs"][seed] = res
        elif failure == "missing":
            entry["missing"].append(seed)
        else:
            entry["failed"][seed] = failure
        final = os.path.join(out, name, f"seed{seed}", "model_final.pth")
        if entry["params_m"] is None and os.path.isfile(final):
            try:
                entry["params_m"] = count_parameters(cfg_file, opts, final, net_of[name])
            except Exception as e:  # noqa: BLE001  (the table says n/a)
                logger.warning("cannot count the parameters of %s: %s", name, e)
    return results


def _stored_result(run_dir: str, sha1: str) -> Optional[Dict[str, float]]:
    """The result stored in ``run_dir`` if it was made with the fingerprint ``sha1``, else None."""
    done = os.path.join(run_dir, RESULT_FILE)
    if not os.path.isfile(done):
        return None
    with open(done) as f:
        have = json.load(f)
    return have["result"] if have.get("sha1") == sha1 else None


def finished_result(cfg_file, seed, run_dir, opts, train_net=None) -> Optional[Dict[str, float]]:
    """The result of the run in ``run_dir`` if it finished with these settings, else None."""
    return _stored_result(run_dir, run_fingerprint(cfg_file, seed, opts, train_net)["sha1"])


def _run_once(cfg_file, name, seed, run_dir, opts, cwd, train_net=None) -> Dict[str, float]:
    want = run_fingerprint(cfg_file, seed, opts, train_net)
    done = os.path.join(run_dir, RESULT_FILE)
    have = _stored_result(run_dir, want["sha1"])
    if have is not None:
        print(f"[{name} seed {seed}] done before: {done}", flush=True)
        return have
    resume = False
    if os.path.isdir(run_dir):
        stamp = os.path.join(run_dir, "fingerprint.json")
        same = False
        if os.path.isfile(stamp):
            with open(stamp) as f:
                same = json.load(f).get("sha1") == want["sha1"]
        if same:  # a half-done run with these settings: go on from its last checkpoint
            resume = os.path.isfile(os.path.join(run_dir, "last_checkpoint"))
        else:
            stale = f"{run_dir}.stale-{datetime.datetime.now():%Y%m%d-%H%M%S}"
            shutil.move(run_dir, stale)
            print(f"[{name} seed {seed}] {run_dir} was made with other settings: moved to "
                  f"{stale}", flush=True)
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "fingerprint.json"), "w") as f:
        json.dump(want, f)
    t0 = time.time()
    try:
        res = train_config(os.path.abspath(cfg_file), name, seed, os.path.abspath(run_dir), opts,
                           resume=resume, cwd=cwd, train_net=train_net)
    finally:  # every process of the run counts, also one that was stopped or failed
        minutes = _add_attempt(run_dir, (time.time() - t0) / 60)
    res["minutes"] = minutes
    with open(done, "w") as f:
        json.dump({"sha1": want["sha1"], "result": res}, f, indent=1)
    return res


def _add_attempt(run_dir: str, minutes: float) -> float:
    """Record one process of the run in ``attempts.json``; the minutes of all of them."""
    path = os.path.join(run_dir, "attempts.json")
    attempts = []
    if os.path.isfile(path):
        with open(path) as f:
            attempts = json.load(f)
    attempts.append(minutes)
    with open(path, "w") as f:
        json.dump(attempts, f)
    return sum(attempts)


# ---------------------------------------------------------------------------- reporting
def mean_std(values: Sequence[float]):
    """Mean and sample standard deviation (``nan`` for one value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    m = sum(values) / n
    if n == 1:
        return m, math.nan
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def paired_difference(a: Sequence[float], b: Sequence[float]):
    """Mean and standard error of the per-seed differences ``a[i] - b[i]`` (runs paired by
    seed: same data, same seed, one setting changed); the standard error is the sample std of the
    differences over ``sqrt(n)`` (``nan`` for one pair)."""
    if len(a) != len(b):
        raise ValueError(f"paired runs need as many values on each side, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    m, s = mean_std(d)
    return m, s / math.sqrt(len(d)) if len(d) > 1 else math.nan


def _fmt(values: Sequence[float], digits: int = 1) -> str:
    m, s = mean_std(values)
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f}" if math.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}"


def metric_key(metric: str, protocol: str = "") -> str:
    """The result key of ``metric`` under ``protocol`` (``cloth_changing/Rank-1``); the plain
    key for the standard protocol."""
    return f"{protocol}/{metric}" if protocol and protocol != "standard" else metric


def markdown_table(results: Dict[str, dict], seeds: Sequence[int], protocol: str = "") -> str:
    p = f"{protocol} " if protocol else ""
    lines = [f"| model | backbone init | {p}R1 (%) | {p}mAP (%) | {p}mINP (%) | training (min) | "
             "parameters (M) | inference (img/s) | seeds |",
             "|---|---|---|---|---|---|---|---|---|"]
    k = lambda m: metric_key(m, protocol)  # noqa: E731
    for name, entry in results.items():
        runs = [entry["runs"][s] for s in seeds if s in entry["runs"]]
        col = lambda k, d=1: _fmt([r[k] for r in runs if k in r], d)  # noqa: E731
        params = "n/a" if entry.get("params_m") is None else f"{entry['params_m']:.2f}"
        done = f"{len(runs)}/{len(seeds)}" + (f" ({len(entry['failed'])} failed)"
                                                if entry.get("failed") else "")
        if entry.get("missing"):
            done += f" (seed {', '.join(map(str, sorted(entry['missing'])))} not run)"
        lines.append(f"| {name} | {entry.get('init', 'n/a')} | {col(k('Rank-1'))} | "
                     f"{col(k('mAP'))} | {col(k('mINP'))} | "
                     f"{col('minutes')} | {params} | {col('images_per_s', 0)} | {done} |")
    return "\n".join(lines)


def bar_chart(results: Dict[str, dict], seeds: Sequence[int], path: str, title: str = "",
              protocol: str = "") -> str:
    """R1 / mAP / mINP per config, mean over seeds with the sample std as error bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError("the bar chart needs matplotlib: pip install -e '.[bench]' (or pass "
                           "--no-plot)") from e
    names = list(results)
    width = 0.8 / len(METRICS)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) + 2), 4.2))
    for i, metric in enumerate(METRICS):
        means, errs = [], []
        key = metric_key(metric, protocol)
        for name in names:
            runs = [results[name]["runs"][s] for s in seeds if s in results[name]["runs"]]
            m, s = mean_std([r[key] for r in runs if key in r])
            means.append(0.0 if math.isnan(m) else m)
            errs.append(0.0 if math.isnan(s) else s)
        xs = [j + (i - (len(METRICS) - 1) / 2) * width for j in range(len(names))]
        ax.bar(xs, means, width, yerr=errs, capsize=3, label=key)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(title or f"mean ± std over seeds {list(seeds)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def machine_line() -> str:
    """The machine, as :mod:`rganet_analysis.machine` names it (CPU model, cores, load average)."""
    from .machine import cpu_model, load_average

    return f"{cpu_model()}, {os.cpu_count()} CPUs, load average {load_average()}"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rganet_analysis.compare",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", required=True, help="config files, one row each")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--names", nargs="+", help="row names (default: the config file names)")
    ap.add_argument("--out", default=os.path.join("logs", "compare"))
    ap.add_argument("--keep-going", action="store_true",
                    help="a failed run is reported in the table instead of stopping the sweep")
    ap.add_argument("--no-plot", action="store_true", help="no bar chart")
    ap.add_argument("--report-only", action="store_true",
                    help="no training: the table and chart of the runs that finished")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs at a time, each its own process (times then share the machine)")
    ap.add_argument("--entry", "--train-net", dest="train_net", nargs="+", metavar="MODULE",
                    help="entry point(s) of a sibling project as a module, e.g. fire2.tools: "
                         "one for every config or one per config (default RGANet's)")
    ap.add_argument("--protocol", default="",
                    help="the evaluation protocol the table reports, e.g. cloth_changing "
                         "(FIRe²'s evaluator); default: the standard one")
    ap.add_argument("opts", nargs=argparse.REMAINDER,
                    help="KEY VALUE config overrides for every run")
    args = parse_args_anywhere(ap, sys.argv[1:] if argv is None else argv)  # flags anywhere
    for field in ("configs", "train_net"):  # "--configs A.yml B.yml KEY VALUE": the keys are opts
        values = getattr(args, field) or []
        first = next((i for i, v in enumerate(values) if CONFIG_KEY.match(v)), None)
        if first is not None:
            setattr(args, field, values[:first] or None)
            args.opts = values[first:] + args.opts
    if not args.configs:
        ap.error("--configs needs at least one config file")
    if len(args.opts) % 2:
        ap.error(f"config overrides come in KEY VALUE pairs, got {args.opts}")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        results = sweep(args.configs, args.seeds, args.out, args.opts, args.names,
                        args.keep_going, jobs=args.jobs, train=not args.report_only,
                        train_nets=args.train_net)
    except KeyboardInterrupt:
        print("compare stopped: the runs in progress were stopped (each wrote a checkpoint); "
              "the same command goes on from them", file=sys.stderr, flush=True)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _STOPPING.clear()
    if args.report_only and not any(e["runs"] for e in results.values()):
        stored = os.path.join(args.out, "results.json")
        made = ""
        if os.path.isfile(stored):
            with open(stored) as f:
                made = f" (the table there was made with overrides {json.load(f).get('opts')})"
        print(f"error: --report-only: no finished run in {args.out} matches these configs, "
              f"seeds and overrides {args.opts or '(none)'}{made}; nothing written",
              file=sys.stderr)
        return 2
    table = markdown_table(results, args.seeds, args.protocol)
    footer = (f"\nseeds {args.seeds}; overrides {args.opts or 'none'}; "
              f"{'protocol ' + args.protocol + '; ' if args.protocol else ''}machine: "
              f"{machine_line()}")
    print("\n" + table + footer)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "comparison.md"), "w") as f:
        f.write(table + "\n" + footer + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"seeds": args.seeds, "opts": args.opts, "results": results}, f, indent=1)
    if not args.no_plot:
        png = bar_chart(results, args.seeds, os.path.join(args.out, "comparison.png"),
                        protocol=args.protocol)
        print(f"chart: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
