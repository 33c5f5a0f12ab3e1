"""Inference speed, parameters and FLOPs of RGANet and the baselines (the paper's Table VII).

    .venv/bin/python benchmarks/bench_inference.py [--device auto|cpu|cuda] [--arch ViT-B-16]
        [--models baseline,rganet,fastreid-vit] [--dtypes fp32,bf16] [--compile]
        [--num-images N] [--batch-size B] [--repeat 3] [--threads T] [--json out.json]

What is timed, per (model, dtype) row, as the paper does ("the inference time contains both the
feature extraction of images and the distance calculation between query and gallery images",
batch 128 on one RTX TITAN: 213.9 FPS, 93.5M parameters):

* feature extraction: ``model(images)`` in eval mode under ``torch.inference_mode`` for
  ``--num-images`` images in batches of ``--batch-size`` (random 0..255 images already on the
  device, 256x128; data loading and JPEG decoding are *not* timed), the model's own
  normalisation included;
* query-gallery distances of those features: the first ``--query-fraction`` (Occluded-Duke's
  2,210 / 19,871 = 11.1 %) are queries, the rest the gallery; eq. (10)
  (``weighted_region_distance``) for RGANet, the global cosine distance (``global_distance``) for
  the baselines, on the same device, ending in the float32 numpy matrix the evaluator ranks.

Models (all with random weights, ``MODEL.BACKBONE.PRETRAIN False``; speed does not depend on
the weights):

* ``baseline``: ``configs/Base-RGANet.yml`` with ``MODEL.RGANET.REGION_MODE none`` (CLIP ViT +
  fast-reid's EmbeddingHead, Table V row 0);
* ``rganet``: the same with RGM + RAM (``REGION_MODE rgm``, DAI + IAI, cached prototypes);
* ``fastreid-vit``: fast-reid's own ViT-B/16 path (``Baseline`` meta-arch,
  ``build_vit_backbone`` depth ``base``, 768-d CLS feature, ``EmbeddingHead`` with
  ``POOL_LAYER Identity``), only with ``--arch ViT-B-16`` (fast-reid has no tiny ViT).

Parameters: every parameter of the model module (CLIP's text tower is kept outside the module
tree and never runs at inference, so it is not counted; its size is printed separately), and the
parameters inference actually uses (found by autograd: the ID classifiers and the prompt context
are training-only). For the ``rganet`` row it also prints the count per component and both
counts with their rules: ours, and the paper's 93.5M with the closest reading
(``rganet_analysis/parameters.py``). FLOPs: fvcore's ``FlopCountAnalysis`` on one image, reported as fvcore counts
them (one multiply-add = 1 "flop", i.e. MACs), with handles added for the fused attention ops
fvcore does not know (``aten::_native_multi_head_attention``, which PyTorch's
``nn.MultiheadAttention`` runs at inference, and ``aten::scaled_dot_product_attention``):
without them fvcore silently skips the attention blocks' projections.

Defaults: on CUDA batch 128 and 2,048 images; on the CPU batch 16 and 32 images (a ViT-B/16
forward takes about half a second per image on 2 CPU cores). Every row is warmed up first, then
the rows are timed in turn, ``--repeat`` rounds (so a load change on a shared machine hits all
rows alike), and the median run is reported. bf16 rows use ``torch.autocast(device, dtype=torch.bfloat16)``. A row that
fails prints its error in the table instead of stopping the run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from collections import Counter
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import rganet_plugin  # noqa: E402,F401  (fast-reid compat patches, registrations)
from rganet_analysis.machine import cpu_model, load_average  # noqa: E402
from rganet_analysis.parameters import component_counts  # noqa: E402
from rganet_analysis.parameters import ours as param_counts  # noqa: E402
from rganet_analysis.parameters import report as param_report  # noqa: E402

BASE_CONFIG = os.path.join(ROOT, "configs", "Base-RGANet.yml")
MODELS = ("baseline", "rganet", "fastreid-vit")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PAPER = {"fps": 213.9, "params_m": 93.5, "gpu": "RTX TITAN", "batch": 128}
OCCLUDED_DUKE_QUERY_FRACTION = 2210 / (2210 + 17661)


# ----------------------------------------------------------------------------- machine
def machine_info(device: torch.device) -> Dict[str, str]:
    info = {
        "cpu": cpu_model(),
        "logical_cpus": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "load_average": load_average(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
        info["tf32_matmul"] = str(torch.backends.cuda.matmul.allow_tf32)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- models
def rganet_cfg(region_mode: str, arch: str, device: str, num_classes: int,
               size=(256, 128), extra: Optional[List[str]] = None):
    """``configs/Base-RGANet.yml`` with random weights, for the baseline (``none``) or RGANet."""
    from rganet_plugin.config import load_config

    opts = ["MODEL.DEVICE", device, "MODEL.BACKBONE.PRETRAIN", "False",
            "MODEL.BACKBONE.CLIP.NAME", arch, "MODEL.RGANET.REGION_MODE", region_mode,
            "MODEL.HEADS.NUM_CLASSES", str(num_classes),
            "INPUT.SIZE_TRAIN", str(list(size)), "INPUT.SIZE_TEST", str(list(size))]
    if region_mode == "none":
        opts += ["MODEL.RGANET.RAM.DAI", "False", "MODEL.RGANET.RAM.IAI", "False"]
    return load_config(BASE_CONFIG, opts + list(extra or []))


def fastreid_vit_cfg(device: str, num_classes: int, size=(256, 128)):
    """fast-reid's own ViT-B/16 ReID model: ``Baseline`` + ``build_vit_backbone`` + EmbeddingHead."""
    from rganet_plugin.config import get_rganet_cfg

    cfg = get_rganet_cfg()
    cfg.MODEL.META_ARCHITECTURE = "Baseline"
    cfg.MODEL.DEVICE = device
    b = cfg.MODEL.BACKBONE
    b.NAME = "build_vit_backbone"
    b.DEPTH = "base"
    b.FEAT_DIM = 768
    b.STRIDE_SIZE = (16, 16)
    b.PRETRAIN = False
    b.PRETRAIN_PATH = ""
    h = cfg.MODEL.HEADS
    h.NAME = "EmbeddingHead"
    h.NORM = "BN"
    h.WITH_BNNECK = True
    h.POOL_LAYER = "Identity"
    h.NECK_FEAT = "before"
    h.CLS_LAYER = "Linear"
    h.EMBEDDING_DIM = 0
    h.NUM_CLASSES = num_classes
    cfg.MODEL.LOSSES.NAME = ("CrossEntropyLoss", "TripletLoss")
    cfg.INPUT.SIZE_TRAIN = list(size)
    cfg.INPUT.SIZE_TEST = list(size)
    return cfg


def build(model_name: str, arch: str, device: torch.device, num_classes: int):
    from fastreid.modeling.meta_arch import build_model

    if model_name == "fastreid-vit":
        if arch != "ViT-B-16":
            raise ValueError("fast-reid's ViT has only 'small' and 'base' (ViT-B/16) depths")
        cfg = fastreid_vit_cfg(str(device), num_classes)
    elif model_name in ("baseline", "rganet"):
        cfg = rganet_cfg("none" if model_name == "baseline" else "rgm", arch, str(device),
                         num_classes)
    else:
        raise ValueError(f"unknown model {model_name!r}; choose from {MODELS}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg)
    return model.to(device).eval(), cfg


def text_tower_counts_for(cfg) -> dict:
    """The text tower of the model's CLIP by part (the model keeps it outside its module tree);
    {} for backbones that are not a CLIP ViT."""
    from rganet_analysis.parameters import text_tower_counts
    from rganet_plugin.modeling.backbones.clip_weights import build_clip_model

    if cfg.MODEL.BACKBONE.NAME != "build_clip_vit_backbone" or cfg.MODEL.RGANET.REGION_MODE != "rgm":
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = build_clip_model(cfg.MODEL.BACKBONE.CLIP.NAME, cfg.INPUT.SIZE_TEST, pretrain=False)
    return dict(text_tower_counts(clip))


def inference_param_count(model, image: torch.Tensor) -> int:
    """Parameters the inference output depends on (autograd reachability from the eval output)."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            out = model(image.clone())
            grads = torch.autograd.grad(out.float().sum(), params, allow_unused=True)
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
    return sum(p.numel() for p, g in zip(params, grads) if g is not None)


def _shape(v) -> List[int]:
    from fvcore.nn.jit_handles import get_shape

    return get_shape(v)


def native_mha_macs(inputs, outputs) -> int:
    """``aten::_native_multi_head_attention(q, k, v, E, heads, qkv_w, qkv_b, proj_w, proj_b, ...)``
    with batch-first ``(B, L, E)`` inputs: q/k/v projections, QK^T, AV, output projection."""
    q, k = _shape(inputs[0]), _shape(inputs[1])
    b, lq, e = q[0], q[1], q[2]
    lk = k[1]
    proj_in = b * lq * e * e + 2 * b * lk * e * e
    attn = 2 * b * lq * lk * e
    proj_out = b * lq * e * e
    return Counter({"attention_proj": proj_in + proj_out, "attention_matmul": attn})


def sdpa_macs(inputs, outputs) -> int:
    """``aten::scaled_dot_product_attention(q, k, v, ...)``: QK^T and AV."""
    q, k, v = _shape(inputs[0]), _shape(inputs[1]), _shape(inputs[2])
    batch = math.prod(q[:-2])
    return Counter({"attention_matmul": batch * q[-2] * k[-2] * (q[-1] + v[-1])})


def count_macs(model, image: torch.Tensor):
    """fvcore's count for one image (fvcore's "flops" are multiply-adds), by operator."""
    from fvcore.nn import FlopCountAnalysis

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fa = FlopCountAnalysis(model, (image.clone(),))
        fa.set_op_handle("aten::_native_multi_head_attention", native_mha_macs,
                         "aten::scaled_dot_product_attention", sdpa_macs)
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        total = fa.total()
        by_op = dict(fa.by_operator())
    return total, by_op


# ----------------------------------------------------------------------------- timing
def distance_fn(model, device: torch.device) -> Callable:
    from rganet_plugin.evaluation import global_distance, weighted_region_distance

    layout = getattr(model, "layout", None)
    if layout is not None and layout.num_regions > 0:
        def dist(q, g):
            return weighted_region_distance(layout.unpack(q), layout.unpack(g), device=device)
        return dist

    def gdist(q, g):
        return global_distance(q, g, metric="cosine", device=device)
    return gdist


def autocast_ctx(device: torch.device, dtype):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class RowRunner:
    """One (model, dtype) row: ``run()`` extracts ``num_images`` features and computes their
    query-gallery distances once, returning (extraction seconds, distance seconds)."""

    def __init__(self, model, device, dtype, num_images, batch, query_fraction, size=(256, 128)):
        self.model, self.device, self.dtype = model, device, dtype
        self.compiled = hasattr(model, "_orig_mod")
        self.dist = distance_fn(getattr(model, "_orig_mod", model), device)
        self.n_batches = max(1, math.ceil(num_images / batch))
        self.n = self.n_batches * batch
        self.nq = min(max(1, round(self.n * query_fraction)), self.n - 1)
        gen = torch.Generator(device="cpu").manual_seed(0)
        self.images = (torch.rand((batch, 3) + tuple(size), generator=gen) * 255).to(device)

    def _extract(self, k: int):
        # A fresh copy per batch: fast-reid's Baseline normalises its input in place. A compiled
        # model's outputs are cloned: with CUDA graphs (--compile-mode reduce-overhead) the next
        # replay would overwrite them.
        if not self.compiled:
            return [self.model(self.images.clone()) for _ in range(k)]
        mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
        out = []
        for _ in range(k):
            if mark is not None:
                mark()
            out.append(self.model(self.images.clone()).clone())
        return out

    def warmup(self, batches: int) -> None:
        with torch.inference_mode(), autocast_ctx(self.device, self.dtype):
            self._extract(batches)
            f = torch.cat(self._extract(1)).float()
            self.dist(f[:1], f[1:])
        sync(self.device)

    def run(self):
        with torch.inference_mode(), autocast_ctx(self.device, self.dtype):
            sync(self.device)
            t0 = time.perf_counter()
            feats = self._extract(self.n_batches)
            sync(self.device)
            t1 = time.perf_counter()
            f = torch.cat(feats).float()
            d = self.dist(f[:self.nq], f[self.nq:])
            t2 = time.perf_counter()
        if d.shape != (self.nq, self.n - self.nq):
            raise RuntimeError(f"distance matrix of shape {d.shape}")
        return t1 - t0, t2 - t1


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1")
    ap.add_argument("--arch", default="ViT-B-16",
                    help="CLIP model name: ViT-B-16 (the paper), RGANet-Tiny-ViT (quick run), ...")
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma list of {MODELS}")
    ap.add_argument("--dtypes", default="fp32,bf16", help=f"comma list of {tuple(DTYPES)}")
    ap.add_argument("--compile", action="store_true", help="torch.compile every model")
    ap.add_argument("--compile-mode", default="default",
                    help="torch.compile mode (default, reduce-overhead, max-autotune)")
    ap.add_argument("--num-images", type=int, default=0, help="0 = 2048 on CUDA, 32 on the CPU")
    ap.add_argument("--batch-size", type=int, default=0, help="0 = 128 on CUDA, 16 on the CPU")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (median reported)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="warm-up batches (0 = 1, or 3 with --compile)")
    ap.add_argument("--query-fraction", type=float, default=OCCLUDED_DUKE_QUERY_FRACTION,
                    help="share of the images used as queries for the distance matrix")
    ap.add_argument("--num-classes", type=int, default=702,
                    help="training identities for the (training-only) ID classifiers; 702 = "
                         "Occluded-Duke")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA (fp32 rows)")
    ap.add_argument("--no-flops", action="store_true", help="skip parameter / FLOP counting")
    ap.add_argument("--json", default="", help="also write the results to this JSON file")
    return ap.parse_args(argv)


def resolve(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return d


def _fail(row, e, on_gpu) -> None:
    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    traceback.print_exc()
    if on_gpu:
        torch.cuda.empty_cache()


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve(args.device)
    on_gpu = device.type == "cuda"
    if on_gpu and args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    num_images = args.num_images or (2048 if on_gpu else 32)
    batch = args.batch_size or (128 if on_gpu else 16)
    warmup = args.warmup or (3 if args.compile else 1)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for d in dtypes:
        if d not in DTYPES:
            raise SystemExit(f"unknown dtype {d!r}; choose from {tuple(DTYPES)}")
    torch.manual_seed(0)

    info = machine_info(device)
    print("# bench_inference: " + " ".join(sys.argv[1:] if argv is None else argv))
    for k, v in info.items():
        print(f"#   {k}: {v}")
    print(f"#   arch {args.arch} at 256x128, batch {batch}, {num_images} images per run "
          f"(rounded up to whole batches), median of {args.repeat} runs, {warmup} warm-up "
          f"batch(es), compile={args.compile}")
    if not on_gpu:
        print("#   CPU run: small image count (the paper's figure is batch 128 on a GPU)")
    sys.stdout.flush()

    # Build every model and count it, warm every row up, then time the rows in turn
    # (round-robin over the repeats, so drifting load on a shared machine hits all rows alike).
    rows, runners, param_reports = [], [], []
    for name in models:
        if name == "fastreid-vit" and args.arch != "ViT-B-16":
            print(f"[{name}] skipped: fast-reid's ViT has only 'small' and 'base' depths, it is "
                  "compared with --arch ViT-B-16 only")
            continue
        try:
            model, model_cfg = build(name, args.arch, device, args.num_classes)
        except Exception as e:  # noqa: BLE001 - report per row
            for d in dtypes:
                rows.append({"model": name, "dtype": d, "error": f"build: {type(e).__name__}: {e}"})
            print(f"[{name}] build failed: {e}", file=sys.stderr)
            continue
        # parameter counts per component and by both rules (rganet_analysis/parameters.py)
        counts = component_counts(model)
        text = text_tower_counts_for(model_cfg)
        stats = {"params_m": param_counts(counts)[0] / 1e6,
                 "text_tower_m": sum(text.values()) / 1e6,
                 "components": {"parameters": dict(counts["parameters"]),
                                "buffers": dict(counts["buffers"]), "text tower": text}}
        if name == "rganet":
            param_reports.append(param_report(counts, text, title=f"{name} ({args.arch})"))
        if not args.no_flops:
            one = (torch.rand(1, 3, 256, 128, generator=torch.Generator().manual_seed(1)) * 255
                   ).to(device)
            try:
                stats["inference_params_m"] = inference_param_count(model, one) / 1e6
                macs, by_op = count_macs(model, one)
                stats["gmacs"] = macs / 1e9
                stats["gmacs_by_op"] = {k: v / 1e9 for k, v in sorted(by_op.items())}
            except Exception as e:  # noqa: BLE001
                stats["count_error"] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
        print(f"[{name}] " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in stats.items() if k != "gmacs_by_op"))
        if "gmacs_by_op" in stats:
            print(f"[{name}] GMACs by operator: " + ", ".join(
                f"{k} {v:.3f}" for k, v in stats["gmacs_by_op"].items()))
        for d in dtypes:
            row = {"model": name, "dtype": d, "compile": args.compile, **stats,
                   "extract_runs_s": [], "distance_runs_s": []}
            rows.append(row)
            try:
                run_model = torch.compile(model, mode=args.compile_mode) if args.compile else model
                runner = RowRunner(run_model, device, DTYPES[d], num_images, batch,
                                   args.query_fraction)
                runner.warmup(warmup)
                row.update(images=runner.n, batches=runner.n_batches, queries=runner.nq,
                           gallery=runner.n - runner.nq)
                runners.append((row, runner))
            except Exception as e:  # noqa: BLE001
                _fail(row, e, on_gpu)
        sys.stdout.flush()

    for rep in range(args.repeat):
        for row, runner in runners:
            if "error" in row:
                continue
            try:
                t_ext, t_dist = runner.run()
                row["extract_runs_s"].append(t_ext)
                row["distance_runs_s"].append(t_dist)
                print(f"[{row['model']} {row['dtype']}] run {rep + 1}/{args.repeat}: "
                      f"{row['images'] / t_ext:.2f} img/s extraction, distances "
                      f"{1e3 * t_dist:.1f} ms")
            except Exception as e:  # noqa: BLE001
                _fail(row, e, on_gpu)
            sys.stdout.flush()
    for row in rows:
        if row.get("extract_runs_s") and "error" not in row:
            ext, dist = row["extract_runs_s"], row["distance_runs_s"]
            row["extract_s"] = statistics.median(ext)
            row["distance_s"] = statistics.median(dist)
            row["total_s"] = statistics.median([a + b for a, b in zip(ext, dist)])
            row["img_s_extract"] = row["images"] / row["extract_s"]
            row["img_s_total"] = row["images"] / row["total_s"]
            row["ms_per_batch"] = 1e3 * row["extract_s"] / row["batches"]

    info["load_average_end"] = load_average()
    print()
    print(f"Machine: {info['cpu']}, {info['torch_threads']} torch threads, torch {info['torch']}"
          + (f", GPU {info['gpu']} (CUDA {info['cuda']})" if on_gpu else ", no GPU")
          + f"; load average {info['load_average']} at start, {info['load_average_end']} at end")
    sized = next((r for r in rows if "images" in r), {})
    print(f"{args.arch} at 256x128, batch {batch}, {sized.get('images', num_images)} images "
          f"({sized.get('queries', '?')} queries x {sized.get('gallery', '?')} gallery for the "
          f"distances), median of {args.repeat} runs, compile={args.compile}")
    print()
    print("| model | dtype | params (M) | used at inference (M) | GMACs/img | img/s (features) "
          "| img/s (features + distances) | ms/batch | distances (ms) | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        note = r.get("error", "")
        if not note and r.get("text_tower_m"):
            note = f"text tower ({r['text_tower_m']:.1f}M) not in the model"
        if r.get("count_error"):
            note = (note + "; " if note else "") + "count failed: " + r["count_error"]
        print(f"| {r['model']} | {r['dtype']}{' +compile' if r.get('compile') else ''} "
              f"| {fmt(r.get('params_m'), '.2f')} | {fmt(r.get('inference_params_m'), '.2f')} "
              f"| {fmt(r.get('gmacs'), '.2f' if r.get('gmacs', 0) >= 1 else '.4f')} | {fmt(r.get('img_s_extract'), '.1f')} "
              f"| {fmt(r.get('img_s_total'), '.1f')} | {fmt(r.get('ms_per_batch'), '.0f')} "
              f"| {fmt(None if r.get('distance_s') is None else 1e3 * r['distance_s'], '.1f')} "
              f"| {note} |")
    print(f"\nPaper (Table VII): RGANet {PAPER['fps']} FPS (features + distances, batch "
          f"{PAPER['batch']}, one {PAPER['gpu']}), {PAPER['params_m']}M parameters.")
    for rep in param_reports:  # both counts with their rules, per component
        print(f"\nParameters, {args.num_classes} training identities:\n{rep}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "args": vars(args), "rows": rows}, f, indent=1)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
