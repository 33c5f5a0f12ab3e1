"""``python -m rganet_plugin.tools regions``: the regions RGANet sees and how much it trusts them
(the paper's Fig. 4).

::

    python -m rganet_plugin.tools regions --config-file configs/Demo/rganet_demo.yml \\
        --weights logs/demo/rganet/model_final.pth --images a.jpg b.jpg --out regions/
    # or images of the config's test set (DATASETS.TESTS[0]), e.g. the generated data:
    python -m rganet_plugin.tools regions ... --dataset-split query --num-images 4 --out regions/

For every image one PNG ``<out>/<name>_regions.png``: the image as the model saw it (resized to
``INPUT.SIZE_TEST``), then one panel per region with its soft mask ``S_j`` (eq. 1; fixed stripes
for ``REGION_MODE: stripes``) upsampled to the image and drawn as a heat map over it (blue 0 ->
red 1, the same absolute scale in every panel; ``--scale panel`` divides each panel by its own
maximum), then the background mask ``p_0`` (RGM only). Under each region panel: ``alpha_j`` (DAI,
eq. 4), ``beta_j`` (IAI, eq. 6), the confidence ``w_j`` and the mask's largest value ``max S``.
The same numbers are printed as a table on stdout and written to ``<out>/regions.json``;
``<out>/regions.png`` stacks all images in one picture.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .predictor import (add_model_arguments, predictor_from_args, prog_name, setup_cli_logging,
                        split_overrides)

__all__ = ["heatmap", "overlay", "to_pil", "font", "region_table", "format_table",
           "render_regions", "save_png", "main"]

# ---------------------------------------------------------------------- drawing helpers
_BG = (255, 255, 255)
_FG = (20, 20, 20)
_JET = np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0],
                 [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]])


def heatmap(values: np.ndarray) -> np.ndarray:
    """A jet-like colour map: values in [0, 1] (any shape) -> uint8 RGB (..., 3)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(_JET) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_JET) - 2)
    t = (v - lo)[..., None]
    rgb = _JET[lo] * (1.0 - t) + _JET[lo + 1] * t
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def overlay(image: np.ndarray, mask: np.ndarray, strength: float = 0.55) -> np.ndarray:
    """``image`` (H, W, 3) uint8 blended with the heat map of ``mask`` (H, W) in [0, 1]."""
    heat = heatmap(mask).astype(np.float32)
    out = image.astype(np.float32) * (1.0 - strength) + heat * strength
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def to_pil(t: torch.Tensor) -> Image.Image:
    """A (3, H, W) 0..255 tensor (fast-reid's ToTensor output) -> RGB PIL image."""
    arr = t.detach().float().clamp(0, 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


_FONTS: Dict[int, ImageFont.ImageFont] = {}


def font(size: int = 11):
    """Pillow's built-in font (FreeType when Pillow has it, else the bitmap font)."""
    if size not in _FONTS:
        try:
            _FONTS[size] = ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1
            _FONTS[size] = ImageFont.load_default()
    return _FONTS[size]


def text_height(f) -> int:
    box = f.getbbox("Ag|")
    return int(box[3]) + 2


def text_width(f, s: str) -> int:
    return int(np.ceil(f.getlength(s))) if hasattr(f, "getlength") else f.getsize(s)[0]


def fit_text(f, s: str, width: int) -> str:
    """``s`` shortened with '..' until it fits in ``width`` pixels."""
    if text_width(f, s) <= width:
        return s
    while len(s) > 1 and text_width(f, s + "..") > width:
        s = s[:-1]
    return s + ".."


def draw_pair(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, label: str, value: str,
              f, fill=_FG) -> None:
    """``label`` left-aligned and ``value`` right-aligned in a ``width``-pixel column."""
    vw = text_width(f, value)
    draw.text((x, y), fit_text(f, label, max(1, width - vw - 4)), fill=fill, font=f)
    draw.text((x + width - vw, y), value, fill=fill, font=f)


def display_size(input_size: Sequence[int], height: int) -> Tuple[int, int]:
    """(width, height) of a tile ``height`` pixels high with the input's aspect ratio."""
    h, w = int(input_size[0]), int(input_size[1])
    return max(1, int(round(height * w / h))), int(height)


# ---------------------------------------------------------------------- region values
def region_table(details: Dict[str, torch.Tensor], i: int, names: Sequence[str]) -> List[Dict]:
    """``[{"region", "alpha", "beta", "w"}, ...]`` of image ``i`` (alpha/beta None when off)."""
    rows = []
    for j, name in enumerate(names):
        def val(key):
            v = details.get(key)
            return None if v is None else float(v[i, j])
        rows.append({"region": name, "alpha": val("alpha"), "beta": val("beta"),
                     "w": val("weights")})
    return rows


def format_table(path: str, rows: Sequence[Dict]) -> str:
    def f(v):
        return f"{v:8.4f}" if v is not None else f"{'-':>8}"

    width = max([len("region")] + [len(r["region"]) for r in rows])
    lines = [f"image: {path}", f"  {'region':<{width}}  {'alpha':>8}  {'beta':>8}  {'w':>8}"]
    for r in rows:
        lines.append(f"  {r['region']:<{width}}  {f(r['alpha'])}  {f(r['beta'])}  {f(r['w'])}")
    total = sum(r["w"] for r in rows if r["w"] is not None)
    lines.append(f"  {'sum w':<{width}}  {'':>8}  {'':>8}  {total:8.4f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- rendering
_LINES = 4  # text lines under a region panel: alpha, beta, w, max S


def panel_layout(num_panels: int, tile: Tuple[int, int], f) -> Dict[str, int]:
    th = text_height(f)
    pad = 6
    below = _LINES * th + 4
    return {"pad": pad, "title": th + 2, "below": below,
            "width": pad + num_panels * (tile[0] + pad),
            "height": pad + th + 2 + tile[1] + below + pad}


def render_regions(image: Image.Image, masks: torch.Tensor, names: Sequence[str],
                   rows: Sequence[Dict], background: Optional[torch.Tensor] = None,
                   height: int = 256, title: str = "", strength: float = 0.55,
                   scale: str = "absolute") -> Image.Image:
    """One picture: the image, one heat-map panel per region mask (``masks`` (N, h, w) in
    [0, 1], upsampled to the image), the background mask if given, values under each panel.

    ``scale="absolute"``: colours show mask values 0..1 (comparable across panels);
    ``"panel"``: each panel is divided by its own maximum (shows where a weak mask sits)."""
    if scale not in ("absolute", "panel"):
        raise ValueError(f"scale must be 'absolute' or 'panel', got {scale!r}")

    def shown(m: np.ndarray) -> np.ndarray:
        return m / max(float(m.max()), 1e-6) if scale == "panel" else m

    tile = display_size((image.height, image.width), height)
    base = image.resize(tile, Image.BICUBIC)
    base_arr = np.asarray(base)
    f = font(11)
    th = text_height(f)
    panels = [("image", base, [])]
    up = F.interpolate(masks[None].float(), size=(tile[1], tile[0]), mode="bilinear",
                       align_corners=False)[0].clamp(0, 1).numpy()
    for j, name in enumerate(names):
        r = rows[j]
        lines = [("alpha", r["alpha"]), ("beta", r["beta"]), ("w", r["w"]),
                 ("max S", float(masks[j].max()))]
        panels.append((name, Image.fromarray(overlay(base_arr, shown(up[j]), strength)),
                       [(k, "-" if v is None else f"{v:.3f}") for k, v in lines]))
    if background is not None:
        bg = F.interpolate(background[None, None].float(), size=(tile[1], tile[0]),
                           mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()
        panels.append(("background", Image.fromarray(overlay(base_arr, shown(bg), strength)),
                       [("max S", f"{float(background.max()):.3f}")]))
    lay = panel_layout(len(panels), tile, f)
    canvas = Image.new("RGB", (lay["width"], lay["height"]), _BG)
    draw = ImageDraw.Draw(canvas)
    x, y0 = lay["pad"], lay["pad"]
    for k, (name, img, lines) in enumerate(panels):
        label = title if (k == 0 and title) else name
        draw.text((x, y0), fit_text(f, label, tile[0]), fill=_FG, font=f)
        canvas.paste(img, (x, y0 + lay["title"]))
        y = y0 + lay["title"] + tile[1] + 2
        for label, value in lines:
            draw_pair(draw, x, y, tile[0], label, value, f)
            y += th
        x += tile[0] + lay["pad"]
    return canvas


def save_png(img: Image.Image, path: str, colors: int = 0) -> str:
    """Save ``img`` as PNG; ``colors`` in 2..256 stores it with a palette of that many colours
    (several times smaller, e.g. for documentation), 0 keeps full colour."""
    if colors:
        if not 2 <= colors <= 256:
            raise ValueError(f"--png-colors must be 0 or in 2..256, got {colors}")
        img = img.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT,
                                          dither=Image.Dither.NONE)
    img.save(path, optimize=bool(colors))
    return path


def stack_vertically(images: Sequence[Image.Image], gap: int = 4) -> Image.Image:
    w = max(im.width for im in images)
    h = sum(im.height for im in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (w, h), _BG)
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height + gap
    return out


def _unique_name(stem: str, used: set) -> str:
    name, k = stem, 2
    while name in used:
        name, k = f"{stem}_{k}", k + 1
    used.add(name)
    return name


def dataset_images(cfg, split: str, num: int, seed: int = 0) -> List[str]:
    """``num`` image paths of a split of ``DATASETS.TESTS[0]`` (evenly spread over the split)."""
    from ..data.build import build_dataset

    name = cfg.DATASETS.TESTS[0]
    data = build_dataset(cfg, name)
    items = {"query": data.query, "gallery": data.gallery, "train": data.train}[split]
    if not items:
        raise ValueError(f"{name} has no {split} images")
    idx = np.linspace(0, len(items) - 1, num=min(num, len(items))).round().astype(int)
    return [items[i][0] for i in idx]


def build_parser(prog: str = prog_name("regions")) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Draw each region mask of RGANet over the image and report the "
        "region confidences alpha, beta and w (the paper's Fig. 4).")
    add_model_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", metavar="PATH", help="image files and/or folders")
    src.add_argument("--dataset-split", choices=["query", "gallery", "train"],
                     help="take images from this split of the config's DATASETS.TESTS[0]")
    p.add_argument("--num-images", type=int, default=None,
                   help="at most this many images (default: 4 with --dataset-split, all of "
                   "--images)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--height", type=int, default=256, help="panel height in pixels")
    p.add_argument("--no-background", action="store_true", help="no background-mask panel")
    p.add_argument("--scale", choices=["absolute", "panel"], default="absolute",
                   help="heat-map colours: mask values 0..1 (default), or each panel divided by "
                   "its maximum")
    p.add_argument("--png-colors", type=int, default=0,
                   help="store the PNGs with a palette of this many colours (2..256; smaller "
                   "files), 0: full colour (default)")
    p.add_argument("--verbose", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    split_overrides(args, "images")
    setup_cli_logging(args.verbose)
    from ..data.folder import collect_images

    predictor = predictor_from_args(args)
    if predictor.layout.num_regions == 0:
        print("error: this model has no region branch (MODEL.RGANET.REGION_MODE none): there "
              "are no regions to show", file=sys.stderr)
        return 2
    try:
        if args.images:
            paths = collect_images(args.images)[:args.num_images]
        else:
            paths = dataset_images(predictor.cfg, args.dataset_split, args.num_images or 4)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    names = predictor.class_names
    rgm = predictor.region_mode == "rgm"
    records, pictures, used = [], [], set()
    for start in range(0, len(paths), 16):
        batch_paths = paths[start:start + 16]
        x = predictor.preprocess(batch_paths)
        d = predictor.details(x)
        masks = d["masks"]
        for i, path in enumerate(batch_paths):
            rows = region_table(d, i, names)
            print(format_table(path, rows))
            region_masks = masks[i, 1:] if rgm else masks[i]
            bg = masks[i, 0] if (rgm and not args.no_background) else None
            pic = render_regions(to_pil(x[i]), region_masks, names, rows, bg, args.height,
                                 title=os.path.basename(path), scale=args.scale)
            stem = _unique_name(os.path.splitext(os.path.basename(path))[0] + "_regions", used)
            out_path = os.path.join(args.out, stem + ".png")
            save_png(pic, out_path, args.png_colors)
            pictures.append(pic)
            records.append({"image": os.path.abspath(path), "png": os.path.abspath(out_path),
                            "regions": rows})
    save_png(stack_vertically(pictures), os.path.join(args.out, "regions.png"), args.png_colors)
    with open(os.path.join(args.out, "regions.json"), "w") as fh:
        json.dump({"class_names": names, "region_mode": predictor.region_mode,
                   "images": records}, fh, indent=1)
    print(f"wrote {len(records)} picture(s) and regions.png / regions.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
