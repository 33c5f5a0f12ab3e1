"""``python -m rganet_plugin.tools ranking``: ranking lists of chosen queries (the paper's Fig. 5).

::

    # queries of the config's test set (DATASETS.TESTS[0]), e.g. the generated data
    python -m rganet_plugin.tools ranking --config-file configs/Demo/rganet_demo.yml \\
        --weights logs/demo/rganet/model_final.pth --num-queries 4 --topk 8 --out ranking/
    # or folders of crops
    python -m rganet_plugin.tools ranking ... --query q/ --gallery g/ --out ranking/

Every query gets one row: the query, then its ``top-k`` gallery images ranked by the weighted
region distance of eq. (10), framed **green** when the gallery image shows the query's identity
and **red** when not. Under each gallery image: its rank and identity, the combined distance
``d`` (eq. 10), the global distance ``d_g`` and every region distance ``d_j`` (cosine distances;
eq. 9). Under the query: its region confidences ``w_j``.

Protocol: as in evaluation, gallery images with the query's identity *and* camera are left out
(``--keep-junk`` keeps them), and an image never retrieves itself.

Identities: from the dataset in dataset mode; for folders from Market-1501 / DukeMTMC file names
(``0002_c1s1_000451_03.jpg``: person 2, camera 1), else the parent folder's name
(``gallery/<person>/x.jpg``), see :func:`rganet_plugin.data.folder.identity_of`.

Writes ``<out>/ranking.png``, ``<out>/ranking.html`` (static; images embedded as base64 by
default, or linked by relative path with ``--html-images relative``) and ``<out>/ranking.json``.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..modeling.outputs import Features
from .predictor import (add_extraction_arguments, add_model_arguments, prog_name,
                        predictor_from_args, setup_cli_logging, split_overrides)
from .search import region_distances
from .visualize_regions import display_size, draw_pair, fit_text, font, save_png, text_height

__all__ = ["rank_queries", "render_ranking", "write_html", "main"]

GREEN = (0, 170, 60)
RED = (220, 30, 30)
BLUE = (30, 90, 220)
_FG = (20, 20, 20)


def rank_queries(query: Features, q_ids: Sequence, q_cams: Sequence, gallery: Features,
                 g_ids: Sequence, g_cams: Sequence, topk: int = 10,
                 keep_junk: bool = False) -> List[Dict]:
    """Top-k of every query with eq. (10), plus ``d_g`` and ``d_j`` of every retrieved image."""
    from ..evaluation.distance import weighted_region_distance

    dist = weighted_region_distance(query, gallery, device="cpu")
    g_ids = np.asarray([str(x) for x in g_ids])
    g_cams = np.asarray(g_cams)
    g_abs = np.asarray([os.path.abspath(p) for p in gallery.paths])
    results = []
    for qi in range(len(query)):
        d = dist[qi].astype(np.float64).copy()
        qid, qcam = str(q_ids[qi]), q_cams[qi]
        excluded = g_abs == os.path.abspath(query.paths[qi])  # never the query itself
        if not keep_junk and qcam is not None and int(qcam) >= 0:
            excluded |= (g_ids == qid) & (g_cams == qcam)
        d[excluded] = np.inf
        order = np.argsort(d, kind="stable")
        order = order[np.isfinite(d[order])][:topk]
        dg, dj = region_distances(query, qi, gallery, order)
        num_pos = int(((g_ids == qid) & ~excluded).sum())
        results.append({
            "query": query.paths[qi], "query_id": qid, "query_cam": int(qcam),
            "query_w": [float(v) for v in query.weights[qi]], "num_true_matches": num_pos,
            "results": [{"rank": r + 1, "path": gallery.paths[g], "id": str(g_ids[g]),
                         "cam": int(g_cams[g]), "match": bool(g_ids[g] == qid),
                         "d": float(dist[qi, g]), "d_g": float(dg[r]),
                         "d_regions": [float(v) for v in dj[r]]}
                        for r, g in enumerate(order.tolist())]})
    return results


def _tile(path: str, size) -> Image.Image:
    from ..data.image_io import read_image

    return read_image(path).resize(size, Image.BICUBIC)


def _framed(img: Image.Image, colour, border: int) -> Image.Image:
    out = Image.new("RGB", (img.width + 2 * border, img.height + 2 * border), colour)
    out.paste(img, (border, border))
    return out


def render_ranking(results: Sequence[Dict], class_names: Sequence[str], input_size,
                   height: int = 192, border: int = 4) -> Image.Image:
    """One row per query: query (blue frame), top-k (green: same identity, red: not)."""
    tile = display_size(input_size, height)
    f = font(10)
    th = text_height(f)
    n_lines = 3 + len(class_names)
    # a column is at least 88 px wide so that "upper body 0.123" fits under a small image
    cell_w, pad = max(tile[0] + 2 * border, 88), 6
    row_h = th + 2 + tile[1] + 2 * border + 2 + n_lines * th + pad
    k_max = max([len(r["results"]) for r in results] + [1])
    width = pad + (k_max + 1) * (cell_w + pad) + pad
    canvas = Image.new("RGB", (width, pad + len(results) * row_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for qi, res in enumerate(results):
        y0 = pad + qi * row_h
        x = pad
        draw.text((x, y0), fit_text(f, "query", cell_w), fill=BLUE, font=f)
        canvas.paste(_framed(_tile(res["query"], tile), BLUE, border), (x, y0 + th + 2))
        y = y0 + th + 2 + tile[1] + 2 * border + 2
        cam = f"c{res['query_cam'] + 1}" if res["query_cam"] >= 0 else ""
        lines = [(f"id {res['query_id']}", cam)]
        lines += [(f"w {name}", f"{w:.3f}") for name, w in zip(class_names, res["query_w"])]
        for label, value in lines:
            draw_pair(draw, x, y, cell_w, label, value, f)
            y += th
        x += cell_w + pad + pad  # a little more room after the query
        for item in res["results"]:
            colour = GREEN if item["match"] else RED
            draw.text((x, y0), fit_text(f, f"#{item['rank']}  id {item['id']}", cell_w),
                      fill=colour, font=f)
            canvas.paste(_framed(_tile(item["path"], tile), colour, border), (x, y0 + th + 2))
            y = y0 + th + 2 + tile[1] + 2 * border + 2
            lines = [("d", item["d"]), ("d_g", item["d_g"])]
            lines += list(zip(class_names, item["d_regions"]))
            for label, value in lines:
                draw_pair(draw, x, y, cell_w, label, f"{max(value, 0.0):.3f}", f)
                y += th
            x += cell_w + pad
    return canvas


def _img_src(path: str, out_dir: str, mode: str, size) -> str:
    if mode == "relative":
        return html.escape(os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir)))
    buf = io.BytesIO()
    _tile(path, size).save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def write_html(path: str, results: Sequence[Dict], class_names: Sequence[str], input_size,
               images: str = "base64", title: str = "RGANet ranking") -> str:
    """A static page with the same content as the PNG (no scripts, no external files with
    ``images='base64'``)."""
    out_dir = os.path.dirname(os.path.abspath(path))
    size = display_size(input_size, 192)
    e = html.escape
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;font-size:13px}"
        ".row{display:flex;gap:8px;margin:14px 0;align-items:flex-start}"
        ".cell{text-align:left;width:" + str(size[0] + 8) + "px}"
        ".cell img{border:4px solid;display:block}"
        ".q img{border-color:#1e5adc}.ok img{border-color:#00aa3c}.bad img{border-color:#dc1e1e}"
        "table{border-collapse:collapse;font-size:11px}td{padding:0 3px}"
        ".ok .lab{color:#00aa3c}.bad .lab{color:#dc1e1e}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<p>Gallery images ranked by the weighted region distance d of eq. (10); green frame: "
        "same identity as the query, red: another identity. d_g: global cosine distance; "
        "region rows: cosine distance d_j of that region. Under the query: its confidences "
        "w_j.</p>"]
    for res in results:
        parts.append("<div class='row'>")
        q_rows = "".join(f"<tr><td>w {e(n)}</td><td>{w:.3f}</td></tr>"
                         for n, w in zip(class_names, res["query_w"]))
        parts.append(
            f"<div class='cell q'><div class='lab'>query, id {e(res['query_id'])}</div>"
            f"<img src='{_img_src(res['query'], out_dir, images, size)}' width='{size[0]}' "
            f"height='{size[1]}' title='{e(res['query'])}'><table>{q_rows}</table></div>")
        for item in res["results"]:
            rows = [("d", item["d"]), ("d_g", item["d_g"])]
            rows += list(zip(class_names, item["d_regions"]))
            table = "".join(f"<tr><td>{e(n)}</td><td>{v:.3f}</td></tr>" for n, v in rows)
            cls = "ok" if item["match"] else "bad"
            parts.append(
                f"<div class='cell {cls}'><div class='lab'>#{item['rank']} id "
                f"{e(item['id'])}</div><img src='{_img_src(item['path'], out_dir, images, size)}' "
                f"width='{size[0]}' height='{size[1]}' title='{e(item['path'])}'>"
                f"<table>{table}</table></div>")
        parts.append("</div>")
    parts.append("</body></html>")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path


# ---------------------------------------------------------------------- inputs
def _dataset_inputs(cfg, args):
    from ..data.build import build_dataset

    name = args.dataset or cfg.DATASETS.TESTS[0]
    data = build_dataset(cfg, name)
    if not data.query or not data.gallery:
        raise ValueError(f"{name} has an empty query or gallery set")
    if args.query_index:
        bad = [i for i in args.query_index if not 0 <= i < len(data.query)]
        if bad:
            raise ValueError(f"--query-index {bad} out of range: {name} has {len(data.query)} "
                             "queries")
        idx = list(args.query_index)
    else:
        idx = np.linspace(0, len(data.query) - 1, num=min(args.num_queries, len(data.query)))
        idx = sorted(set(idx.round().astype(int).tolist()))
    queries = [data.query[i] for i in idx]
    return ([q[0] for q in queries], [str(q[1]) for q in queries], [int(q[2]) for q in queries],
            [g[0] for g in data.gallery], [str(g[1]) for g in data.gallery],
            [int(g[2]) for g in data.gallery])


def _folder_inputs(args):
    from ..data.folder import collect_images, identity_of

    q_paths = collect_images(args.query)
    if args.query_index:
        q_paths = [q_paths[i] for i in args.query_index if 0 <= i < len(q_paths)]
    else:
        q_paths = q_paths[:args.num_queries]
    g_paths = collect_images(args.gallery)
    q = [identity_of(p) for p in q_paths]
    g = [identity_of(p) for p in g_paths]
    return (q_paths, [a for a, _ in q], [c for _, c in q],
            g_paths, [a for a, _ in g], [c for _, c in g])


def build_parser(prog: str = prog_name("ranking")) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Top-k ranking lists with eq. (10), green/red frames and the "
        "per-region distances (the paper's Fig. 5), as PNG and static HTML.")
    add_model_arguments(p)
    p.add_argument("--dataset", default="", help="test set name (default: DATASETS.TESTS[0])")
    p.add_argument("--query", nargs="+", metavar="PATH",
                   help="query images/folders instead of a dataset (needs --gallery)")
    p.add_argument("--gallery", nargs="+", metavar="PATH", help="gallery images/folders")
    p.add_argument("--query-index", type=int, nargs="+", metavar="I",
                   help="which queries (positions in the query list)")
    p.add_argument("--num-queries", type=int, default=4,
                   help="without --query-index: this many queries spread over the query list")
    p.add_argument("--topk", type=int, default=8)
    p.add_argument("--keep-junk", action="store_true",
                   help="keep gallery images with the query's identity and camera")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--height", type=int, default=192, help="image height in the PNG")
    p.add_argument("--html-images", choices=["base64", "relative"], default="base64",
                   help="embed the images in the HTML page, or link them by relative path")
    p.add_argument("--png-colors", type=int, default=0,
                   help="store the PNG with a palette of this many colours (2..256), 0: full colour")
    p.add_argument("--verbose", action="store_true")
    add_extraction_arguments(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    split_overrides(args, "query", "gallery")
    setup_cli_logging(args.verbose)
    if bool(args.query) != bool(args.gallery):
        print("error: --query and --gallery go together", file=sys.stderr)
        return 2
    predictor = predictor_from_args(args)
    try:
        if args.query:
            q_paths, q_ids, q_cams, g_paths, g_ids, g_cams = _folder_inputs(args)
        else:
            q_paths, q_ids, q_cams, g_paths, g_ids, g_cams = _dataset_inputs(predictor.cfg, args)
    except (FileNotFoundError, ValueError, RuntimeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    progress = not args.no_progress
    gallery = predictor.extract(g_paths, args.batch_size, args.num_workers, progress,
                                desc="Gallery features")
    query = predictor.extract(q_paths, args.batch_size, 0, progress, desc="Query features")
    results = rank_queries(query, q_ids, q_cams, gallery, g_ids, g_cams, args.topk,
                           args.keep_junk)
    names = predictor.class_names
    os.makedirs(args.out, exist_ok=True)
    png = os.path.join(args.out, "ranking.png")
    save_png(render_ranking(results, names, predictor.input_size, args.height), png,
             args.png_colors)
    page = write_html(os.path.join(args.out, "ranking.html"), results, names,
                      predictor.input_size, args.html_images)
    with open(os.path.join(args.out, "ranking.json"), "w") as fh:
        json.dump({"class_names": names, "queries": results}, fh, indent=1)
    for res in results:
        marks = "".join("+" if it["match"] else "-" for it in res["results"])
        print(f"{res['query']}  id {res['query_id']}  top-{len(res['results'])}: {marks}")
    print(f"wrote {png}, {page} and ranking.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
