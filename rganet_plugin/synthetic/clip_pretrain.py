"""Contrastive pre-training of a small open_clip CLIP on generated image-caption pairs.

``python -m rganet_plugin.tools pretrain-clip`` drives it. open_clip builds the model (one of the
plugin's configs, e.g. ``RGANet-Person-ViT``) and supplies the loss (``open_clip.ClipLoss``, the
symmetric InfoNCE of CLIP with a learned temperature). The data are
:mod:`rganet_plugin.synthetic.image_text` pairs: captions only, no identities, no masks.

Objectives (``objective``, issue 19; each a flag of ``pretrain-clip``, compared in
weights/README.md):

* ``clip``: ``ClipLoss`` on the average of the projected patch tokens (the shipped weights);
* ``pacl``: text-conditioned patch pooling (PACL, Mukhoti et al. 2023): for each caption, the
  image's patches are pooled with a softmax over their cosine to the caption, and the contrastive
  loss runs on those per-pair pooled features, so the patches that match a caption are the ones
  pulled toward it;
* ``mil``: multiple-instance max: an image-caption score is the best patch's cosine.

``part_tag`` > 0 adds a part-tag term: the captions know which parts are drawn (a part counts as
shown when at least 30 % of it is in view), and the best patch's cosine to the prompt
"a {part} part of a person." is trained, through a learned scale and bias, to say whether that
part is in the picture (binary cross-entropy per part). No part masks are read.

The run is resumable: every ``ckpt_every`` steps the model, the optimizer, the step and the data
order go to ``<out>/pretrain_state.pt`` (written atomically); the same command resumes from it
and refuses a state made with other settings. At the end the weights are written in fp16 as
``<out>/<model>.safetensors`` (metadata: settings, generator versions, command), their sha256 in
``<out>/<model>.safetensors.sha256``, and the zero-shot checks
(:mod:`rganet_plugin.synthetic.zero_shot`) of the trained model next to a random one of the same
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
import torch.nn.functional as F

from .image_text import IMAGE_TEXT_VERSION, build_pairs, images_to_tensor  # noqa: F401
from .params import DRAWING_VERSION
from ..modeling.backbones.clip_weights import build_clip_model

logger = logging.getLogger(__name__)

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
    placement: str = "natural"
    objective: str = "clip"
    part_tag: float = 0.0
    #: the dense read-out the zero-shot checks localise parts with (the backbone's
    #: ``MODEL.BACKBONE.CLIP.DENSE_READOUT``); the training does not depend on it
    readout: str = "tokens"

    def key(self) -> Dict[str, Any]:
        """What a resumed run must agree on (``ckpt_every`` may change). Settings added later
        are left out at their default, so the shipped weights' record stays what it was."""
        d = dataclasses.asdict(self)
        d.pop("ckpt_every")
        d.pop("readout")
        for name, default in _LATER_SETTINGS.items():
            if d[name] == default:
                d.pop(name)
        d["image_text_version"] = IMAGE_TEXT_VERSION
        d["drawing_version"] = DRAWING_VERSION
        return d


_LATER_SETTINGS = {"placement": "natural", "objective": "clip", "part_tag": 0.0}
OBJECTIVES = ("clip", "pacl", "mil")
#: A part counts as shown in a pair when at least this fraction of it is in view.
PART_SHOWN = 0.3
#: Temperature of PACL's softmax over patches.
PACL_TAU = 0.05


class PretrainStateMismatch(RuntimeError):
    pass


def build_model(name: str, seed: int = 0):
    """A randomly initialised CLIP of architecture ``name`` at its own input size, seeded."""
    torch.manual_seed(seed)
    return build_clip_model(name, None)


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

    from .zero_shot import zero_shot_report

    os.makedirs(out, exist_ok=True)
    pairs = build_pairs(cache_root, s.num_pairs, s.seed, progress=progress, placement=s.placement)
    model = build_model(s.model, s.seed)
    tokenizer = open_clip.get_tokenizer(s.model)
    caps = [r["captions"] for r in pairs.records]
    tokens = tokenizer([c for cs in caps for c in cs]).view(len(caps), len(caps[0]), -1)
    objective = Objective(s, tokenizer, pairs.records)

    opt = torch.optim.AdamW(_param_groups(model, s.weight_decay) + objective.param_groups(),
                            lr=s.lr, betas=(0.9, 0.98), eps=1e-6)
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
        if st.get("objective"):
            objective.load_state_dict(st["objective"])
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
        loss = objective(model, images, text, idx_sorted)
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
                          "objective": objective.state_dict(), "optimizer": opt.state_dict(), "generator": g.get_state(),
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
    report["trained"] = zero_shot_report(model, s.model, cache_root, s.seed, s.eval_pairs, progress,
                                         readout=s.readout)
    if eval_random:
        report["random"] = zero_shot_report(build_model(s.model, s.seed), s.model, cache_root,
                                            s.seed, s.eval_pairs, progress, readout=s.readout)
    with open(os.path.join(out, "zero_shot.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report


class Objective(torch.nn.Module):
    """The pre-training loss of ``s.objective`` (+ ``s.part_tag`` x the part-tag term); its own
    parameters (the part-tag term's scale and bias) train with the model and are saved in the
    resumable state, not in the weights."""

    def __init__(self, s: PretrainSettings, tokenizer, records):
        super().__init__()
        import open_clip

        from .captions import PART_KEYS
        from .zero_shot import PART_CLASSES, PART_TEMPLATE

        if s.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {s.objective!r}")
        self.name, self.part_tag = s.objective, float(s.part_tag)
        self.clip_loss = open_clip.ClipLoss()
        if self.part_tag > 0:
            self.register_buffer("part_tokens", tokenizer([PART_TEMPLATE.format(c)
                                                           for c in PART_CLASSES]),
                                 persistent=False)
            self.register_buffer("shown", torch.tensor(
                [[r["part_visible"][k] >= PART_SHOWN for k in PART_KEYS] for r in records],
                dtype=torch.float32), persistent=False)
            self.tag_scale = torch.nn.Parameter(torch.tensor(10.0))
            self.tag_bias = torch.nn.Parameter(torch.tensor(-5.0))

    def param_groups(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "weight_decay": 0.0}] if params else []

    def forward(self, model, images, text, idx):
        if self.name == "clip" and self.part_tag == 0:  # the shipped weights' computation
            img_f, txt_f, scale = _features(model, images, text)
            return self.clip_loss(img_f, txt_f, scale)
        z = F.normalize(patch_tokens(model, images), dim=-1)          # (B, P, d)
        t = model.encode_text(text, normalize=True)                   # (B, d)
        scale = model.logit_scale.exp()
        if self.name == "clip":
            loss = self.clip_loss(F.normalize(z.mean(dim=1), dim=-1), t, scale)
        else:
            logits = (mil_logits if self.name == "mil" else pacl_logits)(z, t, scale)
            target = torch.arange(len(logits), device=logits.device)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        if self.part_tag > 0:
            parts = model.encode_text(self.part_tokens, normalize=True)   # (4, d)
            loss = loss + self.part_tag * part_tag_loss(z, parts, self.shown[idx],
                                                        self.tag_scale, self.tag_bias)
        return loss


def pacl_logits(z: torch.Tensor, t: torch.Tensor, scale, tau: float = PACL_TAU) -> torch.Tensor:
    """``(B_img, B_txt)`` logits of text-conditioned patch pooling: caption ``j`` pools image
    ``i``'s unit patch tokens ``z[i]`` (P x d) with ``softmax_p(z[i, p] . t[j] / tau)``, and the
    logit is ``scale * cos(pooled, t[j])`` (``t`` unit text features)."""
    sim = torch.einsum("ipd,jd->ijp", z, t)
    pooled = torch.einsum("ijp,ipd->ijd", torch.softmax(sim / tau, dim=-1), z)
    return scale * (F.normalize(pooled, dim=-1) * t[None]).sum(-1)


def mil_logits(z: torch.Tensor, t: torch.Tensor, scale) -> torch.Tensor:
    """``(B_img, B_txt)`` logits of the multiple-instance max: ``scale * max_p z[i, p] . t[j]``."""
    return scale * torch.einsum("ipd,jd->ijp", z, t).max(dim=-1).values


def part_tag_loss(z: torch.Tensor, parts: torch.Tensor, shown: torch.Tensor, tag_scale,
                  tag_bias) -> torch.Tensor:
    """Binary cross-entropy of "part ``k`` is in image ``i``" (``shown``, B x K) from the best
    patch's cosine to the part prompt ``parts[k]``, through a scale and a bias."""
    best = torch.einsum("ipd,kd->ikp", z, parts).max(dim=-1).values
    return F.binary_cross_entropy_with_logits(tag_scale * best + tag_bias, shown)


def patch_tokens(model, images) -> torch.Tensor:
    """Projected patch tokens ``(B, P, d)`` of an open_clip ViT, with gradients: the tokens whose
    average is the image feature under average pooling (``ln_post`` then ``proj``)."""
    v = model.visual
    x = v.transformer(v._embeds(images))
    x = v.ln_post(x)[:, 1:]
    return x @ v.proj if v.proj is not None else x


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
