#!/usr/bin/env python
"""How far fixed stripes are from the parts in the generated worlds (issue 19).

Generates the misaligned world of the mechanism benchmark (or any world the options give) and
scores fixed horizontal stripes (stripe ``j`` = part ``j``, 16x8 patch grid) against the part masks
of its query and gallery images, per framing (``full``, ``shifted``, ``top``, ``bottom``) and for
aligned against misaligned views: the room that regions which find parts by their look have.

    python benchmarks/misaligned_world.py                    # the benchmark's world (~1 min)
    python benchmarks/misaligned_world.py --misaligned-percent 0 --partial-percent 0 \\
        --garment-pool 0                                     # the default world's geometry
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rganet_analysis.mechanism import load_ground_truth, stripe_part_iou  # noqa: E402
from rganet_plugin.synthetic import generate_occluded_duke  # noqa: E402
from rganet_plugin.synthetic.framing import FRAMINGS  # noqa: E402

#: The mechanism benchmark's world (docs/datasets.md, "The misaligned world").
WORLD = dict(num_train_ids=128, num_test_ids=280, images_per_id=8, misaligned_percent=30,
             partial_percent=50, garment_pool=24)


def world_overrides():
    """The world as config overrides (``DATASETS.SYNTHETIC.<KEY> value`` pairs)."""
    return [x for k, v in WORLD.items() for x in (f"DATASETS.SYNTHETIC.{k.upper()}", str(v))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="datasets/misaligned_world", help="where the world is generated")
    for key, value in WORLD.items():
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=value)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=128)
    args = ap.parse_args(argv)
    world = {k: getattr(args, k) for k in WORLD}
    d = generate_occluded_duke(args.out, seed=args.seed, height=args.height, width=args.width,
                               progress=False, **world)
    gt = load_ground_truth(d)
    framing = np.array(gt.framings())
    splits = collections.Counter((r["split"], f) for r, f in zip(gt.records, framing))
    print(f"{d}: " + ", ".join(f"{n} {s} {f}" for (s, f), n in sorted(splits.items())))
    print("\n| views | images | part mIoU | head | upper body | lower body | foot |")
    print("|---|---|---|---|---|---|---|")
    rows = [(f, gt.subset(framing == f)) for f in FRAMINGS]
    rows += [(f"all {k}", v) for k, v in gt.by_alignment().items()]
    for name, sub in rows:
        if not len(sub):
            continue
        r = stripe_part_iou(sub, 4)
        print(f"| {name} | {len(sub)} | {r['part_miou']:.3f} | "
              + " | ".join(f"{x:.3f}" for x in r["part_iou"]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
