"""Contrastive pre-training of a small open_clip CLIP on generated image-caption pairs.

``python -m rganet_plugin.tools pretrain-clip`` drives it. open_clip builds the model (one of the
plugin's configs, e.g. ``RGANet-Person-ViT``) and supplies the loss (``open_clip.ClipLoss``, the
symmetric InfoNCE of CLIP with a learned temperature). The data are
:mod:`rganet_plugin.data.image_text` pairs: captions only, no identities, no masks.

The run is resumable: every ``ckpt_every`` steps the model, the optimizer, the step and the data
order go to ``<out>/pretrain_state.pt`` (written atomically); the same command resumes from it
and refuses a state made with other settings. At the end the weights are written in fp16 as
``<out>/<model>.safetensors`` (metadata: settings, generator versions, command), their sha256 in
``<out>/<model>.safetensors.sha256``, and the zero-shot checks
(:mod:`rganet_plugin.evaluation.zero_shot`) of the trained model next to a random one of the same
architecture in ``<out>/zero_shot.json``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from typing import Any, Dict, Optional

import numpy as np
import torch

from ..data.image_text import IMAGE_TEXT_VERSION, build_pairs
from ..data.datasets.synthetic import DRAWING_VERSION
from ..modeling.backbones.clip_weights import build_clip_model

logger = logging.getLogger(__name__)

#: CLIP's pixel normalisation (0..255 scale), as in the ReID configs.
PIXEL_MEAN = (122.7709, 116.7460, 104.0937)
PIXEL_STD = (68.5005, 66.6322, 70.3232)
STATE_NAME = "pretrain_state.pt"


@dataclasses.dataclass
class PretrainSettings:
    model: str = "RGANet-Person-ViT"
    steps: int = 2400
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.1
    num_pairs: int = 32000
    seed: int = 0
    eval_pairs: int = 512
    ckpt_every: int = 100

    def key(self) -> Dict[str, Any]:
        """What a resumed run must agree on (``ckpt_every`` may change)."""
        d = dataclasses.asdict(self)
        d.pop("ckpt_every")
        d["image_text_version"] = IMAGE_TEXT_VERSION
        d["drawing_version"] = DRAWING_VERSION
        return d


class PretrainStateMismatch(RuntimeError):
    pass


def build_model(name: str, seed: int = 0):
    """A randomly initialised CLIP of architecture ``name`` at its own input size, seeded."""
    torch.manual_seed(seed)
    return build_clip_model(name, None)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> normalised float ``(B, 3, H, W)``."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "embedding" in n or "logit_scale" in n or n.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, s: PretrainSettings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    t = (step - s.warmup) / max(1, s.steps - s.warmup)
    return 0.5 * s.lr * (1 + math.cos(math.pi * min(t, 1.0)))


def _save_atomic(obj, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pretrain_clip(s: PretrainSettings, out: str, cache_root: str, progress: bool = True,
                  command: str = "", eval_random: bool = True) -> Dict[str, Any]:
    """Train, write the weights and the zero-shot report; returns the report."""
    import open_clip

    from ..evaluation.zero_shot import zero_shot_report

    os.makedirs(out, exist_ok=True)
    pairs = build_pairs(cache_root, s.num_pairs, s.seed, progress=progress)
    model = build_model(s.model, s.seed)
    tokenizer = open_clip.get_tokenizer(s.model)
    caps = [r["captions"] for r in pairs.records]
    tokens = tokenizer([c for cs in caps for c in cs]).view(len(caps), len(caps[0]), -1)

    opt = torch.optim.AdamW(_param_groups(model, s.weight_decay), lr=s.lr, betas=(0.9, 0.98),
                            eps=1e-6)
    loss_fn = open_clip.ClipLoss()
    g = torch.Generator().manual_seed(s.seed)
    step = 0
    history = []
    state_path = os.path.join(out, STATE_NAME)
    if os.path.isfile(state_path):
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        if st["settings"] != s.key():
            diff = {k: (st["settings"].get(k), v) for k, v in s.key().items()
                    if st["settings"].get(k) != v}
            raise PretrainStateMismatch(
                f"{state_path} was made with other settings (saved, now): {diff}; use another "
                f"--out or delete the file to start over")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        g.set_state(st["generator"])
        step, history = st["step"], st["history"]
        logger.info("Resuming CLIP pre-training at step %d of %d", step, s.steps)

    n = len(pairs)
    order = torch.randperm(n, generator=g)
    pos = (step * s.batch_size) % n
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=s.steps, initial=step, desc=f"pre-training {s.model}", unit="step")
    model.train()
    t0 = time.time()
    while step < s.steps:
        if pos + s.batch_size > n:
            order, pos = torch.randperm(n, generator=g), 0
        idx = order[pos:pos + s.batch_size]
        pos += s.batch_size
        idx_sorted, _ = idx.sort()
        images = images_to_tensor(pairs.images[idx_sorted.numpy()])
        flip = torch.rand(len(idx), generator=g) < 0.5
        images[flip] = images[flip].flip(-1)
        which = torch.randint(tokens.shape[1], (len(idx),), generator=g)
        text = tokens[idx_sorted, which]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, s)
        img_f, txt_f, scale = _features(model, images, text)
        loss = loss_fn(img_f, txt_f, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        history.append(loss.item())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(history[-20:]):.3f}", lr=f"{lr_at(step - 1, s):.1e}")
        if step % s.ckpt_every == 0 or step == s.steps:
            # the data order restarts from the saved generator state on resume
            _save_atomic({"settings": s.key(), "model": model.state_dict(),
                          "optimizer": opt.state_dict(), "generator": g.get_state(),
                          "step": step, "history": history}, state_path)
    if bar is not None:
        bar.close()
    train_s = time.time() - t0

    weights = os.path.join(out, f"{s.model}.safetensors")
    write_weights(model, weights, s, command)
    model.eval()
    report = {"settings": s.key(), "command": command, "train_seconds_this_run": round(train_s, 1),
              "loss_first_20": float(np.mean(history[:20])) if history else None,
              "loss_last_20": float(np.mean(history[-20:])) if history else None,
              "weights": os.path.basename(weights), "sha256": sha256_of(weights)}
    report["trained"] = zero_shot_report(model, s.model, cache_root, s.seed, s.eval_pairs, progress)
    if eval_random:
        report["random"] = zero_shot_report(build_model(s.model, s.seed), s.model, cache_root,
                                            s.seed, s.eval_pairs, progress)
    with open(os.path.join(out, "zero_shot.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report


def _features(model, images, text):
    out = model(images, text)
    if isinstance(out, dict):
        return out["image_features"], out["text_features"], out["logit_scale"]
    return out[0], out[1], out[2]


def write_weights(model, path: str, s: PretrainSettings, command: str = "") -> str:
    """fp16 safetensors with the settings and the command in the metadata; ``.sha256`` beside."""
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float16).contiguous() if v.is_floating_point() else v.contiguous()
             for k, v in model.state_dict().items()}
    meta = {"format": "open_clip", "model": s.model, "settings": json.dumps(s.key(), sort_keys=True),
            "command": command}
    tmp = f"{path}.tmp-{os.getpid()}"
    save_file(state, tmp, metadata=meta)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # safetensors creates 0600: readable as any file written here
    os.replace(tmp, path)
    digest = sha256_of(path)
    with open(path + ".sha256", "w") as f:
        f.write(f"{digest}  {os.path.basename(path)}\n")
    return digest
