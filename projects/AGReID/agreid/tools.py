"""AG-ReID's entry point, ``python -m agreid.tools`` (what ``projects/AGReID/train_net.py`` runs).

    python -m agreid.tools --config-file configs/Demo/agreid_demo.yml        # train (stage 1 + 2)
    python -m agreid.tools --config-file ... --eval-only MODEL.WEIGHTS model_final.pth
    python -m agreid.tools label --config-file configs/Demo/agreid_demo.yml [--out labels.json] \\
        [KEY VALUE ...]                                                   # stage 1 alone

Training is the plugin's flow (fast-reid's argument parser, launcher, ``default_setup``, one
writer per ``OUTPUT_DIR``, one-line errors) with AG-ReID's config and trainer. ``label`` labels the
config's training set zero-shot, writes the labels file (next to the dataset unless ``--out``)
and, for a generated set, prints the accuracy table against the generator's truth. A user error
(unknown group, no CLIP weights, an empty training set) prints one ``error: ...`` line, exit 2.
``load_config`` is the loader its runs use (``rganet_analysis.compare --entry agreid.tools``).
"""
from __future__ import annotations

import argparse
import sys

from rganet_plugin.tools import train as plugin_train

from .config import load_agreid_config
from .config import load_agreid_config as load_config  # noqa: F401  (the entry point's loader)
from .engine import AGReIDTrainer

LOGGERS = (("rganet_plugin", "rganet"), ("agreid", None))


def setup(args):
    return plugin_train.setup(args, load=load_agreid_config, loggers=LOGGERS)


def run(args):
    """The plugin's run (stages, checked checkpoint for ``--eval-only``) with AG-ReID's trainer."""
    return plugin_train.run(args, trainer=AGReIDTrainer, configure=setup)


def label_main(argv) -> int:
    """``label``: stage 1 alone; see the module's description."""
    ap = argparse.ArgumentParser(prog="python -m agreid.tools label",
                                 description="AG-ReID stage 1: zero-shot attribute pseudo-labels")
    ap.add_argument("--config-file", required=True)
    ap.add_argument("--out", default="", help="labels file (default: next to the dataset)")
    ap.add_argument("--sweep", action="store_true",
                    help="also print the measurement behind the labelling defaults (generated sets)")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = ap.parse_args(argv)
    from rganet_plugin.data import build as data_build

    from .labels import (default_labels_path, format_report, label_items, label_report,
                         sweep, truth_of, write_labels)
    try:
        cfg = load_agreid_config(args.config_file, args.opts)
        plugin_train.resolve_device(cfg)
        items = data_build.train_items(cfg)
        content = label_items(cfg, items)
        truth = truth_of([it[0] for it in items])
        if truth is not None:
            content["report"] = label_report(content, truth)
        path = write_labels(content, args.out or default_labels_path(cfg, items))
        swept = sweep(cfg, items, truth) if args.sweep and truth is not None else ""
    except plugin_train.USER_ERRORS + (ValueError, KeyError) as e:
        return plugin_train._error(e, 2)
    s = content["settings"]
    print(f"{len(items)} images, {len(content['groups'])} groups; ensemble {s['ensemble']}, voting "
          f"{s['voting']}, view {s['view']}, threshold {s['threshold']}")
    if truth is not None:
        print(format_report(content["report"]))
    else:
        print("(no generator truth for these images: accuracy not measured)")
    if swept:
        print("\nSettings (every group, threshold 0):\n\n" + swept)
    print(f"labels written to {path}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["label"]:
        return label_main(argv[1:])
    return plugin_train.main(argv, run=run, load=load_agreid_config)


if __name__ == "__main__":
    sys.exit(main())
