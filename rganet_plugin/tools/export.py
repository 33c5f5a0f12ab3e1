"""``python -m rganet_plugin.tools export``: an inference-only RGANet as TorchScript (and ONNX).

::

    python -m rganet_plugin.tools export --config-file configs/Demo/rganet_demo.yml \\
        --weights logs/demo/rganet/model_final.pth --out rganet.ts [--onnx rganet.onnx]

:class:`InferenceRGANet` keeps what inference runs and nothing else: the image backbone, the
global head's pooling + BNNeck (not its ID classifier), and of the region head the projection,
the region generator with the **cached** text prototypes and ``p_0`` (buffers), RAM with the
memory-bank centres, and the region BNNeck. No text tower, no prompt context, no token
embeddings, no region classifiers. It is traced with ``torch.jit.trace`` at the test input size
``INPUT.SIZE_TEST`` (the batch size stays free).

Input: ``(B, 3, H, W)`` float RGB pixels in 0..255 (fast-reid's ``ToTensor``; the model
normalises with ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD``), ``(H, W) = INPUT.SIZE_TEST``.
Output: the packed row ``[global (G) | region 1 (R) | ... | region N (R) | w_1 .. w_N]`` of
``modeling/outputs.py``. The layout (``G, N, R``), the region names and the input size are stored
in the TorchScript file (``extra_files``: ``rganet.json``) and in ``<out>.json``.

ONNX (``--onnx``) needs the ``onnx`` package (``pip install onnx onnxruntime``, or the
``[export]`` extra); the batch axis is dynamic.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..modeling.heads.region_generation import masked_average_pool
from .predictor import add_model_arguments, build_predictor, prog_name, setup_cli_logging

__all__ = ["InferenceRGANet", "export_torchscript", "export_onnx", "load_torchscript",
           "export_info", "main"]

TEXT_TOWER_MARKERS = ("token_embedding", "text_projection", "text_tower", "prompts.",
                      "token_prefix", "token_suffix", ".ctx")


class _GlobalHead(nn.Module):
    """The eval path of fast-reid's EmbeddingHead: pooling, BNNeck, ``[..., 0, 0]`` (without the
    BNNeck for ``TEST.RGANET.FEATURES pre_bn``)."""

    def __init__(self, heads: nn.Module, pre_bn: bool = False):
        super().__init__()
        self.pool_layer = heads.pool_layer
        self.bottleneck = nn.Identity() if pre_bn else heads.bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.pool_layer(x))[..., 0, 0]


class InferenceRGANet(nn.Module):
    """Images (0..255) -> packed rows; see the module docstring. Built from a trained ``RGANet``
    (shares its parameters; ``copy.deepcopy`` the model first to keep them apart)."""

    def __init__(self, model: nn.Module, input_size: Optional[Sequence[int]] = None):
        super().__init__()
        self.backbone = model.backbone
        heads = model.heads
        pre_bn = bool(getattr(model, "pre_bn_output", False))
        self.heads = _GlobalHead(heads, pre_bn) if hasattr(heads, "pool_layer") and \
            hasattr(heads, "bottleneck") else heads
        self.global_from_backbone = bool(model.global_from_backbone)
        self.register_buffer("pixel_mean", model.pixel_mean.detach().clone(), False)
        self.register_buffer("pixel_std", model.pixel_std.detach().clone(), False)
        self.layout = model.layout
        head = model.region_head
        self.with_regions = head is not None and not model.global_only_output
        self.rgm = False
        if self.with_regions:
            self.class_names = list(head.class_names)
            self.projection = head.projection
            self.rgm = head.mode == "rgm"
            self.generator = head.generator
            self.ram = head.ram
            self.bnneck = nn.Identity() if pre_bn else head.bnneck
            self.register_buffer("centers", head.memory.centers.detach().clone())
            if self.rgm:
                self.register_buffer("prototypes", head.prototypes.detach().clone())
                self.register_buffer("background", head.background.detach().clone())
            else:
                # Fixed stripes depend on the feature-map size only: computed once here and kept
                # as a buffer, so the traced graph holds no tensor created on a fixed device.
                if input_size is None:
                    raise ValueError("stripe regions need the input size (INPUT.SIZE_TEST)")
                with torch.no_grad():
                    x = self.pixel_mean.new_zeros(1, 3, *[int(v) for v in input_size])
                    fmap = self.projection(self.features(x)[0])
                self.register_buffer("stripes", self.generator(fmap)[0].detach().clone())
        else:
            self.class_names = []

    def features(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.global_from_backbone:
            out = self.backbone.forward_features(x)
            return out["feature_map"], out["global"][..., None, None]
        fmap = self.backbone(x)
        return fmap, fmap

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.pixel_mean) / self.pixel_std
        fmap, glob = self.features(x)
        g = self.heads(glob)
        if not self.with_regions:
            return g
        f = self.projection(fmap)
        if self.rgm:
            masks = self.generator(f, self.prototypes, self.background)[:, 1:]
        else:
            masks = self.stripes.unsqueeze(0).expand(f.shape[0], -1, -1, -1)
        regions = masked_average_pool(masks, f)
        w = self.ram(regions, self.centers)["weights"]  # RAM as in training (eqs. 4, 6)
        bn = self.bnneck(regions)
        return torch.cat([g, bn.reshape(bn.shape[0], -1), w], dim=1)


def export_info(predictor) -> Dict:
    lay = predictor.layout
    return {"format": "rganet-packed-row", "input": "float RGB 0..255, (B, 3, H, W)",
            "input_size": list(predictor.input_size),
            "layout": {"global_dim": lay.global_dim, "num_regions": lay.num_regions,
                       "region_dim": lay.region_dim, "total_dim": lay.total_dim},
            "class_names": list(predictor.class_names), "region_mode": predictor.region_mode,
            "weights": os.path.abspath(predictor.cfg.MODEL.WEIGHTS)}


def text_tower_keys(names) -> list:
    """Parameter / buffer names that belong to the text side (must be none in an export)."""
    return [k for k in names if any(m in k for m in TEXT_TOWER_MARKERS)]


def _example(input_size, batch: int, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(batch, 3, *input_size, generator=g) * 255).to(device)


@torch.no_grad()
def export_torchscript(module: InferenceRGANet, path: str, input_size, info: Dict,
                       batch: int = 2) -> torch.jit.ScriptModule:
    module = module.eval()
    dev = module.pixel_mean.device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.9 points to torch.export
        traced = torch.jit.trace(module, _example(input_size, batch, dev), check_trace=False)
    leaked = text_tower_keys(k for k, _ in traced.named_parameters())
    leaked += text_tower_keys(k for k, _ in traced.named_buffers())
    if leaked:
        raise RuntimeError(f"the exported model holds text-side weights: {leaked[:5]}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(traced, path, _extra_files={"rganet.json": json.dumps(info)})
    return traced


def load_torchscript(path: str, device="cpu") -> Tuple[torch.jit.ScriptModule, Dict]:
    extra = {"rganet.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        m = torch.jit.load(path, map_location=device, _extra_files=extra)
    return m.eval(), json.loads(extra["rganet.json"] or "{}")


@torch.no_grad()
def export_onnx(module: InferenceRGANet, path: str, input_size, batch: int = 2,
                opset: int = 17) -> str:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise RuntimeError("ONNX export needs the 'onnx' package: pip install onnx onnxruntime "
                           "(or the '[export]' extra)") from None
    module = module.eval()
    dev = module.pixel_mean.device
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    kw = dict(input_names=["images"], output_names=["features"], opset_version=opset,
              dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}})
    # nn.MultiheadAttention's fused eval fast path (aten::_native_multi_head_attention) has no
    # ONNX symbolic: export the plain attention ops instead.
    mha = getattr(torch.backends, "mha", None)
    fast = mha.get_fastpath_enabled() if mha is not None else None
    if mha is not None:
        mha.set_fastpath_enabled(False)
    try:
        args = (_example(input_size, batch, dev),)
        with warnings.catch_warnings():  # tracer notes on shape checks inside nn.functional
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                torch.onnx.export(module, args, path, dynamo=False, **kw)
            except TypeError:  # torch without the 'dynamo' argument
                torch.onnx.export(module, args, path, **kw)
    finally:
        if mha is not None:
            mha.set_fastpath_enabled(fast)
    return path


def build_parser(prog: str = prog_name("export")) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Export an inference-only RGANet (no text tower) to TorchScript "
        "and optionally ONNX; it returns the packed feature row.")
    add_model_arguments(p)
    p.add_argument("--out", required=True, metavar="FILE.ts",
                   help="TorchScript output (a name ending in .onnx writes ONNX only)")
    p.add_argument("--onnx", default="", metavar="FILE.onnx", help="also write an ONNX model")
    p.add_argument("--no-check", action="store_true",
                   help="skip comparing the exported model with the eager one")
    p.add_argument("--verbose", action="store_true")
    return p


@torch.no_grad()
def max_abs_diff(a: nn.Module, b, input_size, device, batch: int = 3) -> float:
    x = _example(input_size, batch, device) * 0.5 + 40.0  # other values than the trace's
    return float((a(x) - b(x)).abs().max())


def unwritable(path: str) -> str:
    """Why ``path`` cannot be written ("" when it can); creates its folder if missing."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        return f"its folder {folder} cannot be made ({e.strerror or e})"
    if os.path.isdir(path):
        return "it is a folder"
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return "no write permission"
    return ""


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_cli_logging(args.verbose)
    if args.device == "auto":
        args.device = "cpu"  # a portable file; pass --device cuda to trace on a GPU
    for path in {args.out, args.onnx} - {""}:  # before the model is loaded and traced
        problem = unwritable(path)
        if problem:
            print(f"error: cannot write {path}: {problem}", file=sys.stderr)
            return 2
    predictor = build_predictor(args.config_file, args.weights, args.opts, device=args.device)
    module = InferenceRGANet(predictor.model, predictor.input_size).eval()
    info = export_info(predictor)
    size = predictor.input_size
    onnx_path = args.onnx or (args.out if args.out.endswith(".onnx") else "")
    if not args.out.endswith(".onnx"):
        traced = export_torchscript(module, args.out, size, info)
        with open(args.out + ".json", "w") as fh:
            json.dump(info, fh, indent=1)
        msg = f"wrote {args.out} (TorchScript, input {size[0]}x{size[1]}, " \
              f"{info['layout']['total_dim']} outputs per image)"
        if not args.no_check:
            diff = max_abs_diff(predictor.model, traced, size, predictor.device)
            msg += f"; max |exported - eager| = {diff:.2e}"
        print(msg)
    if onnx_path:
        try:
            export_onnx(module, onnx_path, size)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"wrote {onnx_path} (ONNX, dynamic batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
