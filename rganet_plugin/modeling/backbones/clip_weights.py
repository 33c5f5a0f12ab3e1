"""Building an open_clip CLIP model at ReID resolution and loading its weights.

Weights come from, in order of precedence:

1. a local file (``MODEL.BACKBONE.PRETRAIN_PATH``): an OpenAI ``.pt`` (TorchScript archive or
   state dict), an open_clip ``.bin``/``.pth`` or a ``.safetensors`` file. Position embeddings are
   resized to the ReID patch grid (16x8 for ViT-B/16 at 256x128).
2. an open_clip pretrained tag (``MODEL.BACKBONE.CLIP.PRETRAINED_TAG``), downloaded by open_clip
   from its hub: needs network access. Offline, a :class:`CLIPWeightsError` says how to get a file.

With ``MODEL.BACKBONE.PRETRAIN False`` the model keeps its random initialisation (tests, demo).
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import zipfile
from typing import Dict, Optional, Sequence, Tuple

import open_clip
import torch

logger = logging.getLogger(__name__)

_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "clip_configs")
_registered = False


class CLIPWeightsError(RuntimeError):
    """CLIP weights that are missing, unreadable, or belong to another model."""


def register_plugin_model_configs() -> None:
    """Make the plugin's small CLIP configs (``RGANet-Tiny-ViT`` ...) known to open_clip."""
    global _registered
    if not _registered:
        open_clip.add_model_config(_CONFIG_DIR)
        _registered = True


#: the models built while :func:`shared_clip_models` is open (its only writer); ``None`` outside.
#: A context variable, not a module global: a model built in another thread or task does not see
#: (or fill) the one being built here.
_shared: contextvars.ContextVar[Optional[Dict[tuple, object]]] = contextvars.ContextVar(
    "rganet_shared_clip_models", default=None)


@contextlib.contextmanager
def shared_clip_models():
    """While open, :func:`build_clip_model` returns the same model for the same arguments: the
    image tower (the backbone) and the text tower (the region head's prototypes) of one model
    come from one CLIP, with one read of its weights, even when they are built apart. Opened by
    ``RGANet.from_config`` around building one model; closed, the models are forgotten."""
    if _shared.get() is not None:  # nested: the outer one owns the cache
        yield
        return
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def clip_model_embed_dim(name: str) -> int:
    """The joint image-text space of CLIP architecture ``name`` (from its config, no build)."""
    register_plugin_model_configs()
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise CLIPWeightsError(f"unknown CLIP architecture {name!r}")
    return int(cfg["embed_dim"])


def build_clip_model(name: str, image_size: Optional[Sequence[int]], pretrain: bool = False,
                     pretrain_path: str = "", pretrained_tag: str = ""):
    """An open_clip ``CLIP`` model of architecture ``name`` at ``image_size`` (H, W; ``None``:
    the architecture's own size)."""
    key = (name, tuple(image_size) if image_size is not None else None, bool(pretrain),
           pretrain_path, pretrained_tag)
    shared = _shared.get()
    if shared is not None and key in shared:
        return shared[key]
    model = _build_clip_model(name, image_size, pretrain, pretrain_path, pretrained_tag)
    if shared is not None:
        shared[key] = model
    return model


def _build_clip_model(name, image_size, pretrain, pretrain_path, pretrained_tag):
    register_plugin_model_configs()
    if name not in open_clip.list_models():
        raise CLIPWeightsError(
            f"unknown CLIP architecture {name!r}; open_clip knows e.g. ViT-B-16, ViT-B-32, "
            f"ViT-L-14, and the plugin adds RGANet-Tiny-ViT, RGANet-Small-ViT")
    size = tuple(int(s) for s in image_size) if image_size is not None else None
    if pretrain and not pretrain_path and pretrained_tag:
        try:
            return open_clip.create_model(name, pretrained=pretrained_tag, force_image_size=size)
        except Exception as e:  # network, hub, unknown tag
            raise CLIPWeightsError(
                f"could not load open_clip weights {name!r} / {pretrained_tag!r}: {e}\n"
                f"Without network access, download the checkpoint elsewhere (e.g. OpenAI's "
                f"ViT-B-16.pt, or open_clip_pytorch_model.bin / .safetensors from the open_clip "
                f"model hub) and set MODEL.BACKBONE.PRETRAIN_PATH to the local file."
            ) from e
    with _quiet_open_clip():  # it warns "initialized randomly" before we load the weights
        model = open_clip.create_model(name, pretrained=None, force_image_size=size)
    if pretrain:
        if not pretrain_path:
            raise CLIPWeightsError(
                "MODEL.BACKBONE.PRETRAIN is True but neither MODEL.BACKBONE.PRETRAIN_PATH nor "
                "MODEL.BACKBONE.CLIP.PRETRAINED_TAG is set")
        load_clip_weights(model, pretrain_path)
    return model


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record):
        return "No pretrained weights loaded" not in record.getMessage()


class _quiet_open_clip:
    def __enter__(self):
        self._f = _DropRandomInitWarning()
        logging.getLogger().addFilter(self._f)

    def __exit__(self, *exc):
        logging.getLogger().removeFilter(self._f)
        return False


def read_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """A CLIP state dict from an OpenAI ``.pt``, open_clip ``.bin``/``.pth`` or ``.safetensors``."""
    if not os.path.isfile(path):
        raise CLIPWeightsError(
            f"CLIP checkpoint not found: {path}\nPut the file there or fix "
            f"MODEL.BACKBONE.PRETRAIN_PATH (OpenAI .pt, open_clip .bin/.pth or .safetensors).")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        elif _is_torchscript(path):
            obj = torch.jit.load(path, map_location="cpu").state_dict()
        else:
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except CLIPWeightsError:
        raise
    except Exception as e:
        raise CLIPWeightsError(f"cannot read CLIP checkpoint {path}: {e}") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not obj:
        raise CLIPWeightsError(f"{path} holds no state dict (got {type(obj).__name__})")
    state = {}
    for k, v in obj.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k in ("input_resolution", "context_length", "vocab_size") or k.endswith("attn_mask"):
            continue
        state[k] = v
    return state


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") for n in z.namelist())


def load_clip_weights(model, path: str) -> None:
    """Load ``path`` into an open_clip model, resizing position embeddings to its grid.

    Raises :class:`CLIPWeightsError` naming the missing / unexpected / mis-shaped keys when the
    file belongs to another architecture.
    """
    state = read_checkpoint(path)
    pos = state.get("visual.positional_embedding")
    if pos is not None and hasattr(model.visual, "grid_size"):
        new_grid = tuple(int(g) for g in model.visual.grid_size)
        if pos.shape[0] != 1 + new_grid[0] * new_grid[1]:
            old_grid = checkpoint_grid(pos.shape[0] - 1, new_grid)
            if old_grid is None:
                raise CLIPWeightsError(
                    f"cannot resize the position embedding of {path}: {pos.shape[0] - 1} patch "
                    f"positions form no grid")
            logger.info("Resizing the position embedding of %s from %s to %s", path, old_grid,
                        new_grid)
            state["visual.positional_embedding"] = interpolate_pos_embed(pos, old_grid, new_grid)
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    # logit_bias exists only in SigLIP-style models; everything else must match.
    missing = [k for k in missing if k != "logit_bias"]
    if missing or unexpected or mismatched:
        raise CLIPWeightsError(
            f"{path} does not fit this CLIP architecture:\n"
            + _describe("missing keys", missing) + _describe("unexpected keys", unexpected)
            + _describe("shape mismatches", mismatched)
            + "Check MODEL.BACKBONE.CLIP.NAME against the checkpoint.")
    model.load_state_dict(state, strict=False)
    logger.info("Loaded CLIP weights from %s", path)


def checkpoint_grid(num_patches: int, target_grid: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """The patch grid a checkpoint's position embedding was made for: square when the count is a
    square (OpenAI / open_clip checkpoints), else the factorisation whose aspect ratio is closest
    to the model's (a ReID checkpoint such as 16x8 loaded at 8x4)."""
    root = int(round(num_patches ** 0.5))
    if root * root == num_patches:
        return root, root
    want = target_grid[0] / target_grid[1]
    pairs = [(h, num_patches // h) for h in range(1, num_patches + 1) if num_patches % h == 0]
    if not pairs:
        return None
    import math

    return min(pairs, key=lambda hw: abs(math.log((hw[0] / hw[1]) / want)))


def _describe(title: str, keys) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
    return f"  {title}: {shown}\n"


def patch_grid(image_size: Tuple[int, int], patch: int, stride: int) -> Tuple[int, int]:
    """The token grid of a patch embedding with the given stride (overlapping when < patch)."""
    h, w = image_size
    return (h - patch) // stride + 1, (w - patch) // stride + 1


def interpolate_pos_embed(pos: torch.Tensor, old_grid: Tuple[int, int],
                          new_grid: Tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a ``(1 + gh*gw, C)`` position embedding (class token first)."""
    if tuple(old_grid) == tuple(new_grid):
        return pos
    cls, grid = pos[:1], pos[1:]
    c = grid.shape[-1]
    grid = grid.reshape(1, old_grid[0], old_grid[1], c).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid.float(), size=new_grid, mode="bicubic",
                                           align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], c).to(pos.dtype)
    return torch.cat([cls, grid], dim=0)


def clip_embed_dim(model) -> int:
    proj = model.visual.proj
    if proj is None:
        return model.visual.transformer.width
    return proj.shape[1]


def optional_path(p: Optional[str]) -> str:
    return os.path.expanduser(p) if p else ""
