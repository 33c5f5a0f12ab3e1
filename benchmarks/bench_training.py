"""Training-step throughput of RGANet against the baseline on the same backbone, and where the
time goes.

    .venv/bin/python benchmarks/bench_training.py [--arch RGANet-Tiny-ViT|ViT-B-16]
        [--models baseline,rganet] [--batch-size 32] [--iters 10] [--warmup 2]
        [--device auto|cpu|cuda] [--dtype fp32|bf16] [--profile-iters 2] [--threads T]

One training iteration, as fast-reid's ``SimpleTrainer.run_step`` and the plugin's hooks do it:
``model(batch)`` (forward and losses), ``optimizer.zero_grad()``, ``losses.backward()``,
``optimizer.step()`` (the optimizer from ``fastreid.solver.build_optimizer``: Adam with
contiguous parameters, as the trainer builds it), fast-reid's metric logging
(``SimpleTrainer._write_metrics``); the memory-bank update (eq. 5, plus its drift logging) runs
inside the region head's forward, as in training, and is timed on its own (it is part of the
region head's forward time); all inside a
``fastreid.utils.events.EventStorage``. The batch is random images with
fast-reid's P x K identity structure (``--batch-size`` / 4 identities x 4 images), already on the
device: data loading is not timed (fast-reid loads in worker processes). The memory bank is
initialised from fixed-stripe features first, as the hook's ``before_train`` does.

Models: ``baseline`` (``configs/Base-RGANet.yml`` with ``MODEL.RGANET.REGION_MODE none``) and
``rganet`` (RGM + DAI + IAI + memory bank), with the same backbone, batch and optimizer, random
weights. Default on the CPU: the tiny CLIP ``RGANet-Tiny-ViT`` at 256x128, batch 32 (a ViT-B/16
step is tens of seconds on 2 CPU cores); ``--arch ViT-B-16`` for the paper's backbone.

Where the time goes, per iteration (median over the timed iterations, wall clock; CUDA is
synchronised at every boundary when timing phases):

* forward: backbone (``RGANet.extract``), global head (fast-reid's ``EmbeddingHead``), region
  head (RGM + RAM + BNNeck + classifiers), losses (eq. 7, 8 and fast-reid's CE / triplet);
* backward, split where the gradient reaches the backbone's outputs: heads + losses, backbone;
* optimizer step; metric logging; memory-bank update.

The phases also appear as ``torch.profiler.record_function`` ranges, and ``--profile-iters``
iterations run under ``torch.profiler`` to list the top operators by self CPU time.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from types import SimpleNamespace
from typing import Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_inference import load_average, machine_info, rganet_cfg, sync  # noqa: E402

MODELS = ("baseline", "rganet")
PHASES = ("forward: backbone", "forward: global head", "forward: region head", "forward: losses",
          "forward: other", "backward: heads + losses", "backward: backbone", "optimizer step",
          "metrics", "memory bank update")


class PhaseTimer:
    """Accumulates wall time per named phase for the current iteration."""

    def __init__(self, device: torch.device, enabled: bool = True):
        self.device = device
        self.enabled = enabled
        self.current: Dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str):
        with torch.profiler.record_function(name):
            if self.enabled:
                sync(self.device)
            t0 = time.perf_counter()
            try:
                yield
            finally:
                if self.enabled:
                    sync(self.device)
                self.current[name] += time.perf_counter() - t0

    def reset(self) -> Dict[str, float]:
        out = dict(self.current)
        self.current = defaultdict(float)
        return out


def instrument(model, timer: PhaseTimer, marks: List[float]) -> None:
    """Wrap the model's parts in timed phases (instance attributes, the classes are untouched)."""
    orig_extract = model.extract

    def extract(*a, **k):
        with timer("forward: backbone"):
            fmap, glob = orig_extract(*a, **k)
        if torch.is_grad_enabled():
            for t in (fmap, glob):
                if t.requires_grad:  # the gradient arriving here ends the heads' backward
                    t.register_hook(lambda g: marks.append(time.perf_counter()))
        return fmap, glob

    model.extract = extract
    for attr, name in (("heads", "forward: global head"), ("region_head", "forward: region head")):
        mod = getattr(model, attr, None)
        if mod is None:
            continue
        orig = mod.forward

        def fwd(*a, _orig=orig, _name=name, **k):
            with timer(_name):
                return _orig(*a, **k)

        mod.forward = fwd
    orig_losses = model.losses

    def losses(*a, **k):
        with timer("forward: losses"):
            return orig_losses(*a, **k)

    model.losses = losses


def make_batch(batch: int, num_instance: int, num_classes: int, device, size=(256, 128), seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randperm(num_classes, generator=g)[: batch // num_instance]
    targets = ids.repeat_interleave(num_instance)
    return {"images": (torch.rand((len(targets), 3) + tuple(size), generator=g) * 255).to(device),
            "targets": targets.to(device),
            "camids": torch.randint(0, 8, (len(targets),), generator=g).to(device)}


def build_training(name: str, args, device):
    from fastreid.modeling.meta_arch import build_model
    from fastreid.solver import build_optimizer

    cfg = rganet_cfg("none" if name == "baseline" else "rgm", args.arch, str(device),
                     args.num_classes, extra=["SOLVER.IMS_PER_BATCH", str(args.batch_size)])
    model = build_model(cfg).to(device)
    model.train()
    optimizer, param_wrapper = build_optimizer(cfg, model)
    return cfg, model, optimizer, param_wrapper


@torch.no_grad()
def init_bank(model, batch) -> None:
    head = getattr(model, "region_head", None)
    if head is None:
        return
    was = model.training
    model.eval()
    fmap, _ = model.extract(model.preprocess_image(batch))
    feats = head.stripe_features(fmap)
    head.memory.initialize(feats.double().sum(0),
                           torch.full((feats.shape[1],), float(feats.shape[0])))
    model.train(was)


class TrainRunner:
    """One model's training step (see the module docstring), with its own EventStorage."""

    def __init__(self, name: str, args, device, dtype):
        from fastreid.utils.events import EventStorage

        torch.manual_seed(0)
        self.name, self.device = name, device
        cfg, self.model, self.optimizer, self.param_wrapper = build_training(name, args, device)
        self.batch = make_batch(args.batch_size, cfg.DATALOADER.NUM_INSTANCE, args.num_classes,
                                device)
        init_bank(self.model, self.batch)
        self.timer = PhaseTimer(device, enabled=not args.no_phases)
        self.marks: List[float] = []
        instrument(self.model, self.timer, self.marks)
        self.has_bank = getattr(self.model, "region_head", None) is not None
        if self.has_bank:  # the head updates its bank in the forward pass: time that part
            head, timer = self.model.region_head, self.timer
            update = head._update_memory

            def timed_update(*a, **kw):
                with timer("memory bank update"):
                    return update(*a, **kw)

            head._update_memory = timed_update
        self.fake_trainer = SimpleNamespace(iter=0)  # what SimpleTrainer._write_metrics reads
        self.dtype = dtype
        self.storage = EventStorage(0)
        self.per_iter: List[Dict[str, float]] = []
        self.iter = 0

    def step(self) -> Dict[str, float]:
        from fastreid.engine.train_loop import SimpleTrainer

        model, timer, device = self.model, self.timer, self.device
        self.fake_trainer.iter = self.iter
        self.marks.clear()
        amp = (torch.autocast(device.type, dtype=self.dtype) if self.dtype is not None
               else nullcontext())
        with self.storage:
            sync(device)
            t0 = time.perf_counter()
            with amp:
                loss_dict = model(self.batch)
            losses = sum(loss_dict.values())
            t_fwd = time.perf_counter()
            self.optimizer.zero_grad()
            with timer("backward"):
                sync(device)
                tb0 = time.perf_counter()
                losses.backward()
                sync(device)
                tb1 = time.perf_counter()
            with timer("metrics"):
                SimpleTrainer._write_metrics(self.fake_trainer, loss_dict, 0.0)
            with timer("optimizer step"):
                self.optimizer.step()
                self.param_wrapper.assert_buffer_is_valid()
            sync(device)
            t1 = time.perf_counter()
            self.storage.step()
        self.iter += 1
        ph = timer.reset()
        ph["forward: other"] = max(0.0, (t_fwd - t0) - sum(ph.get(p, 0.0) for p in PHASES[:4]))
        ph.pop("backward", None)
        split = max(self.marks) if self.marks else tb0
        ph["backward: heads + losses"] = split - tb0
        ph["backward: backbone"] = tb1 - split
        ph["total"] = t1 - t0
        return ph

    def profile(self, iters: int, rows: int) -> Dict[str, str]:
        """Top operators of ``iters`` steps under torch.profiler: by self CPU time, and on CUDA
        also by self device (GPU) time."""
        acts = [torch.profiler.ProfilerActivity.CPU]
        if self.device.type == "cuda":
            acts.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=acts) as prof:
            for _ in range(iters):
                self.step()
        ka = prof.key_averages()
        out = {"self CPU time": ka.table(sort_by="self_cpu_time_total", row_limit=rows,
                                         max_name_column_width=60)}
        if self.device.type == "cuda":
            from torch.autograd.profiler_util import FunctionEventAvg

            key = ("self_device_time_total" if hasattr(FunctionEventAvg, "self_device_time_total")
                   else "self_cuda_time_total")
            out["self GPU time"] = ka.table(sort_by=key, row_limit=rows, max_name_column_width=60)
        return out

    def result(self, batch_size: int) -> dict:
        med = {p: statistics.median(d.get(p, 0.0) for d in self.per_iter)
               for p in PHASES + ("total",)}
        params = list(self.model.parameters())
        return {"model": self.name, "iter_s": med["total"], "it_per_s": 1.0 / med["total"],
                "img_per_s": batch_size / med["total"], "phases_s": med,
                "runs_s": [d["total"] for d in self.per_iter],
                "losses": sorted(k for k in self.storage.latest() if k.startswith("loss")),
                "params_m": sum(p.numel() for p in params) / 1e6,
                "trainable_m": sum(p.numel() for p in params if p.requires_grad) / 1e6}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--arch", default="RGANet-Tiny-ViT", help="CLIP model (ViT-B-16: the paper)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch-size", type=int, default=32, help="images per step (P x 4)")
    ap.add_argument("--num-classes", type=int, default=702, help="identities (702 = Occluded-Duke)")
    ap.add_argument("--iters", type=int, default=10, help="timed iterations (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"),
                    help="bf16: torch.autocast around the forward pass")
    ap.add_argument("--profile-iters", type=int, default=2, help="iterations under torch.profiler")
    ap.add_argument("--profile-rows", type=int, default=15)
    ap.add_argument("--no-phases", action="store_true",
                    help="no CUDA synchronisation at phase boundaries (throughput only)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--json", default="")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.batch_size % 4:
        raise SystemExit("--batch-size must be a multiple of 4 (fast-reid's P x K sampler, K = 4)")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else None
    info = machine_info(device)
    print("# bench_training: " + " ".join(sys.argv[1:] if argv is None else argv))
    for k, v in info.items():
        print(f"#   {k}: {v}")
    print(f"#   arch {args.arch} at 256x128, batch {args.batch_size}, {args.dtype}, median of "
          f"{args.iters} iterations after {args.warmup} warm-up")
    sys.stdout.flush()
    # Build every model and warm it up, then time the models in turn, one iteration each per
    # round, so a load change on a shared machine hits all of them alike.
    results, runners = [], []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        try:
            runner = TrainRunner(name, args, device, dtype)
            for _ in range(args.warmup):
                runner.step()
            runners.append(runner)
        except Exception as e:  # noqa: BLE001 - report and go on
            traceback.print_exc()
            results.append({"model": name, "error": f"{type(e).__name__}: {e}"})
    failed = set()
    for i in range(args.iters):
        for runner in runners:
            if runner.name in failed:
                continue
            try:
                runner.per_iter.append(runner.step())
                print(f"[{runner.name}] iteration {i + 1}/{args.iters}: "
                      f"{1e3 * runner.per_iter[-1]['total']:.1f} ms")
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                failed.add(runner.name)
                results.append({"model": runner.name, "error": f"{type(e).__name__}: {e}"})
            sys.stdout.flush()
    for runner in runners:
        if runner.name in failed or not runner.per_iter:
            continue
        r = runner.result(args.batch_size)
        r["profile"] = (runner.profile(args.profile_iters, args.profile_rows)
                        if args.profile_iters > 0 else {})
        results.append(r)
        print(f"[{r['model']}] {r['it_per_s']:.3f} it/s, {r['img_per_s']:.1f} img/s, "
              f"losses {r['losses']}")
    order = {n: k for k, n in enumerate(m.strip() for m in args.models.split(","))}
    results.sort(key=lambda r: order.get(r["model"], 99))
    info["load_average_end"] = load_average()

    print()
    print(f"Machine: {info['cpu']}, {info['torch_threads']} torch threads, torch {info['torch']}"
          + (f", GPU {info['gpu']}" if device.type == "cuda" else ", no GPU")
          + f"; load average {info['load_average']} at start, {info['load_average_end']} at end")
    print(f"{args.arch} at 256x128, batch {args.batch_size}, {args.dtype}, Adam (fast-reid's "
          f"build_optimizer), median of {args.iters} iterations")
    print()
    ok = [r for r in results if "error" not in r]
    base = next((r for r in ok if r["model"] == "baseline"), None)
    print("| model | params (M) | trainable (M) | it/s | img/s | ms/iter | vs baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['model']} | error: {r['error']} |||||")
            continue
        rel = f"{r['iter_s'] / base['iter_s']:.3f}x time" if base else "-"
        print(f"| {r['model']} | {r['params_m']:.2f} | {r['trainable_m']:.2f} | "
              f"{r['it_per_s']:.3f} | {r['img_per_s']:.1f} | {1e3 * r['iter_s']:.1f} | {rel} |")
    if ok:
        print()
        print("Where the time goes (ms per iteration, median; % of the step):")
        print()
        print("| phase | " + " | ".join(r["model"] for r in ok) + " |")
        print("|---|" + "---:|" * len(ok))
        for p in PHASES + ("total",):
            cells = []
            for r in ok:
                v = r["phases_s"][p]
                cells.append(f"{1e3 * v:.1f} ({100 * v / r['iter_s']:.1f} %)")
            print(f"| {p} | " + " | ".join(cells) + " |")
        for r in ok:
            for title, table in (r["profile"] or {}).items():
                print(f"\nTop operators by {title}, {r['model']} ({args.profile_iters} "
                      f"iterations under torch.profiler):\n")
                print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "args": vars(args), "results": results}, f, indent=1)
    return 1 if len(ok) < len(results) else 0


if __name__ == "__main__":
    sys.exit(main())
