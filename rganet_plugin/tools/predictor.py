"""Loading a trained RGANet for inference, and batched feature extraction.

:func:`build_predictor` turns a config file and a checkpoint into a :class:`Predictor`:

1. ``load_config(config_file, opts)`` (unknown keys are refused);
2. ``MODEL.BACKBONE.PRETRAIN`` is switched off (the checkpoint holds every weight) and
   ``MODEL.HEADS.NUM_CLASSES`` is read from the checkpoint's ``heads.weight`` when it is 0;
3. fast-reid's ``build_model``, then the checkpoint (read once) is loaded by
   :class:`~rganet_plugin.engine.checkpoint.ModelCheckpointer` with ``strict=True`` (a checkpoint
   of another model is refused, naming the keys);
4. the model in eval mode on CUDA when available (``device="auto"``), else the CPU.

:meth:`Predictor.extract` reads images through fast-reid's test transform (resize to
``INPUT.SIZE_TEST``; the model normalises the 0..255 pixels itself) in batches, with a tqdm
progress bar, and returns numpy arrays: the global feature, the region features and the region
confidences ``w``, i.e. the packed row of ``modeling/outputs.py`` split into its parts.
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from typing import Dict, List, Optional, Sequence, Union

import torch
from PIL import Image

import rganet_plugin  # noqa: F401  (patches fast-reid, registers components)
from fastreid.data.transforms import build_transforms
from fastreid.modeling.meta_arch import build_model

from ..config import load_config
from ..data.folder import ImageListDataset, collate_images
from ..data.image_io import read_image
from ..engine.checkpoint import ModelCheckpointer, complete_cfg_from_checkpoint, read_checkpoint
from ..evaluation.distance import resolve_device
from ..modeling.outputs import FeatureLayout, Features

logger = logging.getLogger(__name__)

__all__ = ["Features", "Predictor", "build_predictor", "inference_config", "quiet_warnings"]

ImageLike = Union[str, os.PathLike, Image.Image]


def quiet_warnings() -> None:
    """Silence a deprecation warning fast-reid's ``ToTensor`` prints for every image."""
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated")


def inference_config(config_file: str, weights: str = "", opts: Optional[Sequence[str]] = None):
    """The config of a trained model (``config_file`` + ``opts``, no pre-training download,
    ``MODEL.WEIGHTS`` = ``weights`` or the file's own, NUM_CLASSES from the checkpoint) and the
    checkpoint dict it read."""
    cfg = load_config(config_file, list(opts or []))
    cfg.defrost()
    if weights:
        cfg.MODEL.WEIGHTS = os.fspath(weights)
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("no checkpoint given: pass --weights PATH (or MODEL.WEIGHTS PATH)")
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = ""
    checkpoint = read_checkpoint(cfg.MODEL.WEIGHTS)
    complete_cfg_from_checkpoint(cfg, checkpoint["model"])
    return cfg, checkpoint


class Predictor:
    """A loaded model, its test transform and its feature layout."""

    def __init__(self, cfg, model: torch.nn.Module, device: torch.device):
        self.cfg = cfg
        self.model = model
        self.device = device
        self.transform = build_transforms(cfg, is_train=False)
        self.layout: FeatureLayout = model.layout
        head = getattr(model, "region_head", None)
        self.region_mode = cfg.MODEL.RGANET.REGION_MODE
        self.class_names: List[str] = list(head.class_names) if head is not None else []
        self.input_size = tuple(int(s) for s in cfg.INPUT.SIZE_TEST)  # (H, W)

    # ------------------------------------------------------------------ inputs
    def load_image(self, image: ImageLike) -> Image.Image:
        if isinstance(image, Image.Image):
            return image.convert("RGB")
        return read_image(os.fspath(image))

    def preprocess(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """A (B, 3, H, W) float tensor of 0..255 pixels, as the model expects."""
        return torch.stack([self.transform(self.load_image(im)) for im in images])

    # ------------------------------------------------------------------ outputs
    @torch.no_grad()
    def packed(self, images: Union[torch.Tensor, Sequence[ImageLike]]) -> torch.Tensor:
        """The model's packed rows (see ``modeling/outputs.py``), on the CPU."""
        x = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        return self.model({"images": x.to(self.device)}).float().cpu()

    @torch.no_grad()
    def details(self, images: Union[torch.Tensor, Sequence[ImageLike]]) -> Dict[str, torch.Tensor]:
        """``model.inference_details`` on the CPU: global, region features, masks, alpha, beta,
        w (alpha / beta are None when that indicator is switched off)."""
        x = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        out = self.model.inference_details({"images": x.to(self.device)})
        return {k: (v.detach().float().cpu() if isinstance(v, torch.Tensor) else v)
                for k, v in out.items()}

    def split(self, packed: torch.Tensor, paths: Sequence[str] = ()) -> Features:
        return self.layout.unpack(packed.float(), paths).to_numpy()

    @torch.no_grad()
    def extract(self, paths: Sequence[str], batch_size: int = 64, num_workers: int = 0,
                progress: bool = True, desc: str = "Extracting features") -> Features:
        """Features of every image in ``paths`` (batched, tqdm progress bar on stderr)."""
        from tqdm import tqdm

        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError("no images to extract features from")
        loader = torch.utils.data.DataLoader(
            ImageListDataset(paths, self.transform), batch_size=max(1, int(batch_size)),
            shuffle=False, num_workers=max(0, int(num_workers)), collate_fn=collate_images,
            pin_memory=self.device.type == "cuda")
        rows = []
        with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress,
                  dynamic_ncols=True) as bar:
            for batch in loader:
                rows.append(self.packed(batch["images"]))
                bar.update(len(batch["img_paths"]))
        return self.split(torch.cat(rows), paths)


def build_predictor(config_file: str, weights: str = "", opts: Optional[Sequence[str]] = None,
                    device: Optional[str] = "auto") -> Predictor:
    """Config + checkpoint -> a :class:`Predictor` (see the module docstring)."""
    quiet_warnings()
    cfg, checkpoint = inference_config(config_file, weights, opts)
    dev = resolve_device(device)
    cfg.MODEL.DEVICE = str(dev)
    cfg.freeze()
    model = build_model(cfg)
    ModelCheckpointer(model, strict=True).load_checkpoint(checkpoint, cfg.MODEL.WEIGHTS)
    model.to(dev).eval()
    logger.info("loaded %s (%s, layout %s) on %s", cfg.MODEL.WEIGHTS,
                cfg.MODEL.RGANET.REGION_MODE, model.layout, dev)
    return Predictor(cfg, model, dev)


# ---------------------------------------------------------------------- command-line helpers
def add_model_arguments(parser, weights_required: bool = True) -> None:
    """``--config-file``, ``--weights``, ``--device`` and trailing ``KEY VALUE`` overrides."""
    parser.add_argument("--config-file", required=True, metavar="FILE",
                        help="the training config of the model (YAML)")
    parser.add_argument("--weights", default="", required=weights_required, metavar="PATH",
                        help="checkpoint (.pth) written by training")
    parser.add_argument("--device", default="auto",
                        help="'auto' (CUDA when available, default), 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument("opts", nargs="*", default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. INPUT.SIZE_TEST '[256, 128]'")


def add_extraction_arguments(parser) -> None:
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--num-workers", type=int, default=2,
                        help="data-loader processes reading the images (0: in this process)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def predictor_from_args(args) -> Predictor:
    return build_predictor(args.config_file, args.weights, args.opts, device=args.device)


def setup_cli_logging(verbose: bool = False) -> None:
    """Warnings and progress messages of the tools on stderr."""
    quiet_warnings()
    log = logging.getLogger("rganet_plugin")
    handler = next((h for h in log.handlers if getattr(h, "_rganet_cli", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
        handler._rganet_cli = True
        log.addHandler(handler)
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    if verbose:  # otherwise the levels are left alone (the tools also run inside other programs)
        log.setLevel(logging.INFO)


_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def split_overrides(args, *names: str) -> None:
    """Config overrides typed after a list option (``--images a.jpg MODEL.DEVICE cpu``) are
    swallowed by that option: move everything from the first ``KEY.NAME`` that is not a file
    onwards back into ``args.opts``."""
    for name in names:
        values = getattr(args, name, None)
        if not values:
            continue
        for i, v in enumerate(values):
            if _KEY.match(v) and not os.path.exists(v):
                args.opts = list(values[i:]) + list(args.opts or [])
                setattr(args, name, list(values[:i]))
                break


def prog_name(command: str) -> str:
    return f"python -m rganet_plugin.tools {command}"
