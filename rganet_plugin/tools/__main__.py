"""``python -m rganet_plugin.tools <command> [options]``: the plugin's tools in one entry point.

Commands (``python -m rganet_plugin.tools <command> --help`` for each; docs/tools.md):

    train     train / evaluate (same as projects/RGANet/train_net.py)
    regions   region masks over the image, alpha / beta / w per region (paper Fig. 4)
    ranking   top-k ranking lists with green/red frames and d, d_g, d_j (paper Fig. 5)
    extract   features of a folder of crops into an .npz file
    index     a faiss index over extracted gallery features
    search    rank an indexed gallery for query images (eq. 10)
    export    an inference-only model (no text tower) as TorchScript / ONNX
    pretrain-clip  pre-train a small CLIP on generated image-caption pairs (zero-shot checks)
    convert-parsing  human-parser label maps -> pseudo part masks (docs/part_labels.md)
"""
from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

# command -> (module, function, one-line help); a bare module name is one of rganet_plugin.tools,
# pretrain-clip is the generated world's command (imported only when it runs)
COMMANDS = {
    "train": ("train", "main", "train / evaluate a config (= projects/RGANet/train_net.py)"),
    "regions": ("visualize_regions", "main",
                "region masks over the image, alpha / beta / w per region (Fig. 4)"),
    "ranking": ("visualize_ranking", "main",
                "top-k ranking lists, green/red frames, d, d_g, d_j (Fig. 5); PNG + HTML"),
    "extract": ("extract", "main", "features of a folder of person crops -> .npz"),
    "index": ("search", "main_index", "faiss index over extracted gallery features"),
    "search": ("search", "main_search", "rank an indexed gallery for query images (eq. 10)"),
    "export": ("export", "main", "inference-only model (no text tower) -> TorchScript / ONNX"),
    "pretrain-clip": ("rganet_plugin.synthetic.command", "main",
                      "pre-train a small CLIP on generated image-caption pairs (zero-shot checks)"),
    "convert-parsing": ("convert_parsing", "main",
                        "human-parser label maps (LIP, ATR, CIHP, Pascal-Person-Part) -> part masks"),
}

# commands that left the installed package: where they are now
MOVED = {"compare": "python -m rganet_analysis.compare (the analysis package of a repository "
                    "checkout, docs/baselines.md)"}


def usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: python -m rganet_plugin.tools <command> [options]", "", "commands:"]
    lines += [f"  {c:<{width}}  {h}" for c, (_, _, h) in COMMANDS.items()]
    lines += ["", "'python -m rganet_plugin.tools <command> --help' describes a command; "
              "docs/tools.md has examples."]
    return "\n".join(lines)


def _known_errors():
    from ..config.setup import ConfigError
    from ..data.image_io import CorruptImageError
    from ..engine.checkpoint import CheckpointMismatchError

    return (ConfigError, CheckpointMismatchError, CorruptImageError, FileNotFoundError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd in MOVED:
        print(f"error: {cmd!r} is not a command of the installed plugin: {MOVED[cmd]}",
              file=sys.stderr)
        return 2
    if cmd not in COMMANDS:
        print(f"error: unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[cmd]
    if "." not in module:
        module = f"rganet_plugin.tools.{module}"
    fn = getattr(importlib.import_module(module), func)
    try:
        rc = fn(rest)
    except _known_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
