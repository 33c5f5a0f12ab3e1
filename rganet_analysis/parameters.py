"""Parameter counts per component, and the two counts a Table VII comparison needs.

The paper's Table VII gives RGANet **93.5M** parameters and does not say what it counted. The
CLIP ViT-B/16 visual tower at 256x128 (16x8 grid) is 86.14M; :func:`component_counts` splits a
built model (``named_parameters`` / ``named_buffers``) into the parts the paper describes, and
:func:`text_tower_counts` the CLIP text tower, which the model keeps outside its module tree
(frozen, never run at inference). Two counts are printed with their rule:

* **ours** (``RULE_OURS``): every parameter of the model module, i.e. the visual tower with its
  projection, both BNNecks, the ID classifiers of the training identities, the region
  classifiers, the RAM FC and ``p_0``; not the text tower, not buffers (cached prototypes,
  memory bank, BN statistics). The inference-only share is printed next to it.
* **the paper's** (``PAPER_PARAMS_M``) with the reading that comes closest
  (:func:`paper_readings`): no subset of the parts the paper describes reaches 93.5M. Without
  the text tower the most is the whole module plus its buffers (87.96M for Occluded-Duke's 702
  identities, 88.08M for Market-1501's 751); any text-tower part but the small ones overshoots
  (token embedding +25.3M, transformer +37.8M). The 5.5M gap is about one ViT-B block (7.09M):
  a TransReID-style duplicated last layer would land at 93.2-93.6M, but the paper mentions
  none. docs/benchmarks.md (Table VII) has the numbers.

    python -m rganet_analysis.parameters --config-file configs/OccludedDuke/rganet.yml \\
        [--num-classes 702] [KEY VALUE ...]      # random weights, nothing downloaded
"""
from __future__ import annotations

import argparse
import itertools
import sys
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from rganet_plugin.config.regions import num_regions

PAPER_PARAMS_M = 93.5
RULE_OURS = ("every parameter of the model module (visual tower incl. projection, BNNecks, ID and "
             "region classifiers, RAM FC, p_0); not the text tower (outside the module, frozen, "
             "unused at inference), not buffers")

# (component, name prefixes) in order; the first match wins. Names follow the meta-arch
# (backbone / heads / region_head); anything else is reported under its own first two name parts.
COMPONENTS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("visual projection", ("backbone.proj",)),
    ("visual tower", ("backbone.",)),
    ("global BNNeck", ("heads.bottleneck",)),
    ("global classifier", ("heads.weight", "heads.classifier", "heads.cls_layer")),
    ("region BNNecks", ("region_head.bnneck",)),
    ("region classifiers", ("region_head.classifier",)),
    ("RAM FC (DAI)", ("region_head.ram",)),
    ("background embedding p_0", ("region_head.background",)),
    ("prompt context", ("region_head.prompts", "prompts.", "prompt_learner.")),
    ("cached prototypes", ("region_head.prototypes",)),
    ("memory bank", ("region_head.memory.",)),  # centres C_j and their update counters
    ("BN statistics", ()),  # running_mean / running_var buffers, matched by suffix
)
TRAINING_ONLY = ("global classifier", "region classifiers", "prompt context")
TEXT_PARTS = (("token embedding", ("token_embedding.",)), ("text transformer", ("transformer.",)),
              ("text projection", ("text_projection",)),
              ("text positional + ln_final", ("positional_embedding", "ln_final.")),
              ("logit scale", ("logit_scale",)))


def component_of(name: str, table=COMPONENTS) -> str:
    if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
        return "BN statistics"
    for comp, prefixes in table:
        if any(name.startswith(p) for p in prefixes):
            return comp
    return "other: " + ".".join(name.split(".")[:2])


def _group(named: Iterable[Tuple[str, "object"]], table=COMPONENTS) -> "OrderedDict[str, int]":
    out: "OrderedDict[str, int]" = OrderedDict()
    for comp, _ in table:
        out[comp] = 0
    for name, t in named:
        comp = component_of(name, table)
        out[comp] = out.get(comp, 0) + int(t.numel())
    return OrderedDict((k, v) for k, v in out.items() if v)


def component_counts(model) -> Dict[str, "OrderedDict[str, int]"]:
    """``{"parameters": {component: count}, "buffers": {component: count}}`` of a built model;
    each dict's values add up to ``sum(p.numel())`` over ``named_parameters`` / ``named_buffers``."""
    return {"parameters": _group(model.named_parameters()),
            "buffers": _group((n, b) for n, b in model.named_buffers()
                              if not n.startswith(("pixel_mean", "pixel_std")))}


def text_tower_counts(clip_model) -> "OrderedDict[str, int]":
    """The text tower of an open_clip ``CLIP`` model by part (every parameter not under
    ``visual.``)."""
    return _group(((n, p) for n, p in clip_model.named_parameters()
                   if not n.startswith("visual.")), TEXT_PARTS)


def ours(counts: Dict[str, Dict[str, int]]) -> Tuple[int, int]:
    """(all parameters of the module, the inference share: without the training-only parts)."""
    p = counts["parameters"]
    total = sum(p.values())
    return total, total - sum(p.get(c, 0) for c in TRAINING_ONLY)


def paper_readings(parts: Dict[str, int], base: Sequence[str] = ("visual tower",
                                                                 "visual projection"),
                   target_m: float = PAPER_PARAMS_M, tol_m: float = 0.05
                   ) -> Tuple[List[Tuple[float, Tuple[str, ...]]], Tuple[float, Tuple[str, ...]]]:
    """Every subset of ``parts`` (on top of ``base``) whose count rounds to ``target_m``, and the
    closest subset; counts in millions."""
    fixed = sum(parts[b] for b in base if b in parts)
    free = [k for k in parts if k not in base]
    hits, best = [], (float("inf"), ())
    for r in range(len(free) + 1):
        for combo in itertools.combinations(free, r):
            m = (fixed + sum(parts[c] for c in combo)) / 1e6
            if abs(m - target_m) < tol_m:
                hits.append((m, combo))
            if abs(m - target_m) < abs(best[0] - target_m):
                best = (m, combo)
    return hits, best


def report(counts: Dict[str, Dict[str, int]], text: Optional[Dict[str, int]] = None,
           title: str = "model") -> str:
    """A markdown table of the components and the two counts with their rules."""
    lines = [f"| {title}: component | parameters | buffers |", "|---|---:|---:|"]
    comps = list(OrderedDict.fromkeys([*counts["parameters"], *counts["buffers"]]))
    for c in comps:
        p, b = counts["parameters"].get(c, 0), counts["buffers"].get(c, 0)
        lines.append(f"| {c} | {p:,} | {b:,} |")
    for c, v in (text or {}).items():
        lines.append(f"| {c} (text tower, outside the module) | {v:,} | 0 |")
    total, infer = ours(counts)
    lines.append("")
    lines.append(f"ours: {total / 1e6:.2f}M = {RULE_OURS}; used at inference "
                 f"{infer / 1e6:.2f}M (without {', '.join(TRAINING_ONLY)}).")
    parts = dict(counts["parameters"])
    parts.update({f"{k} (buffer)": v for k, v in counts["buffers"].items()})
    parts.update(text or {})
    hits, (best_m, best) = paper_readings(parts)
    if hits:
        shown = "; ".join(f"{m:.2f}M = tower + {' + '.join(c) or 'nothing else'}"
                          for m, c in hits[:5])
        lines.append(f"paper (Table VII): {PAPER_PARAMS_M}M, reached by: {shown}.")
    else:
        lines.append(f"paper (Table VII): {PAPER_PARAMS_M}M, not reached by any subset of these "
                     f"parts; closest {best_m:.2f}M = visual tower + "
                     f"{' + '.join(best) or 'nothing else'}.")
    return "\n".join(lines)


def build_counts(config_file: str, opts: Sequence[str] = (), num_classes: int = 702):
    """Build the config's model with random weights on the CPU (nothing downloaded) and count
    it and its CLIP's text tower."""
    import warnings

    from fastreid.modeling.meta_arch import build_model

    from rganet_plugin.config import load_config
    from rganet_plugin.modeling.backbones.clip_weights import build_clip_model

    cfg = load_config(config_file, ["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.DEVICE", "cpu",
                                    "MODEL.HEADS.NUM_CLASSES", str(num_classes), *opts])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg)
        clip = build_clip_model(cfg.MODEL.BACKBONE.CLIP.NAME, cfg.INPUT.SIZE_TEST, pretrain=False)
    return component_counts(model), text_tower_counts(clip), cfg


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rganet_analysis.parameters",
                                 description="Parameter counts per component and the paper's "
                                             "Table VII count (random weights, no download).")
    ap.add_argument("--config-file", default="configs/OccludedDuke/rganet.yml")
    ap.add_argument("--num-classes", type=int, nargs="+", default=[702, 751],
                    help="training identities (Occluded-Duke 702, Market-1501 751)")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = ap.parse_args(argv)
    for n in args.num_classes:
        counts, text, cfg = build_counts(args.config_file, args.opts, n)
        print(f"\n{args.config_file}, {cfg.MODEL.BACKBONE.CLIP.NAME} at "
              f"{tuple(cfg.INPUT.SIZE_TEST)}, N = {num_regions(cfg)}, "
              f"{n} training identities\n")
        print(report(counts, text, title=f"{n} ids"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
