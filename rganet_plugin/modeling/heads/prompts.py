"""Text prompts that turn body-region class names into prototypes (Sec. III-C, Table VI).

* :class:`TemplatePrompts`: a hand-crafted template, ``"a {} part of a person."`` by default
  (the paper's Table VI rows are configs: ``configs/OccludedDuke/rgm_prompt_*.yml``).
* :class:`LearnablePrompts`: CoOp context ``[V]_1 .. [V]_K [CLASS].`` with ``K`` learnable
  word embeddings placed before the class token, shared by all classes (CoOp's unified context,
  the default) or one set per class (CoOp's class-specific context, ``PROMPT.CLASS_SPECIFIC``):
  the paper's ``[V]_1 [V]_2 ... [V]_K [CLASS]`` does not say which.

Both produce prototypes ``(N, d)`` through CLIP's frozen text tower. :func:`build_prompts` picks
one from the config and :func:`initial_background` gives the start of the background embedding
``p_0`` (``MODEL.RGANET.PROMPT.BACKGROUND_INIT``).
"""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from ...config.regions import region_classes
from ..backbones.clip_text import CLIPTextTower

class TemplatePrompts(nn.Module):
    learnable = False

    def __init__(self, class_names: List[str], template: str):
        super().__init__()
        self.class_names = list(class_names)
        self.template = template

    def texts(self) -> List[str]:
        return [self.template.format(c) for c in self.class_names]

    def forward(self, tower: CLIPTextTower) -> torch.Tensor:
        return tower.encode_text(self.texts())


class LearnablePrompts(nn.Module):
    """CoOp: ``[SOS] [V]_1..[V]_K [CLASS tokens] . [EOS]`` with learnable ``[V]``."""

    learnable = True

    def __init__(self, class_names: List[str], tower: CLIPTextTower, n_ctx: int = 8,
                 ctx_init: str = "", class_specific: bool = False):
        super().__init__()
        self.class_names = list(class_names)
        self.n_ctx = n_ctx
        width = tower.width
        placeholder = " ".join(["X"] * n_ctx)
        prompts = [f"{placeholder} {name}." for name in self.class_names]
        tokens = tower.tokenize(prompts)  # (N, L)
        with torch.no_grad():
            emb = tower.embed_tokens(tokens).float().cpu()
        if ctx_init:
            words = ctx_init.strip().split()
            if len(words) != n_ctx:
                raise ValueError(f"PROMPT.CTX_INIT {ctx_init!r} has {len(words)} words but N_CTX is "
                                 f"{n_ctx}")
            init_tokens = tower.tokenize([ctx_init])
            with torch.no_grad():
                ctx = tower.embed_tokens(init_tokens)[0, 1: 1 + n_ctx].float().cpu().clone()
        else:
            ctx = torch.empty(n_ctx, width)
            nn.init.normal_(ctx, std=0.02)
        if class_specific:  # one context per class, all starting from the same init
            ctx = ctx.unsqueeze(0).repeat(len(self.class_names), 1, 1)
        self.ctx = nn.Parameter(ctx)
        self.register_buffer("token_prefix", emb[:, :1].clone())  # SOS
        self.register_buffer("token_suffix", emb[:, 1 + n_ctx:].clone())  # CLASS . EOS pad
        self.register_buffer("tokens", tokens, persistent=False)

    def texts(self) -> List[str]:
        return [f"[V]x{self.n_ctx} {c}." for c in self.class_names]

    def forward(self, tower: CLIPTextTower) -> torch.Tensor:
        n = self.token_prefix.shape[0]
        ctx = self.ctx if self.ctx.dim() == 3 else self.ctx.unsqueeze(0).expand(n, -1, -1)
        dev = tower.token_embedding.weight.device
        prompts = torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1).to(dev)
        return tower.encode_embeddings(prompts.to(tower.token_embedding.weight.dtype),
                                       self.tokens.to(dev))


def build_prompts(cfg, tower: CLIPTextTower) -> nn.Module:
    """``MODEL.RGANET.PROMPT``: a :class:`TemplatePrompts` or a :class:`LearnablePrompts`."""
    p = cfg.MODEL.RGANET.PROMPT
    names = region_classes(cfg)
    if p.TYPE == "learnable":
        return LearnablePrompts(names, tower, p.N_CTX, p.CTX_INIT, p.CLASS_SPECIFIC)
    return TemplatePrompts(names, p.TEMPLATE)


BACKGROUND_INITS = ("text", "random", "zeros")


@torch.no_grad()
def initial_background(cfg, tower: CLIPTextTower, prototypes: torch.Tensor) -> torch.Tensor:
    """The start of ``p_0`` (``(d,)``): the text feature of a background prompt (``"text"``: the
    template with "background", or "background." for learnable prompts), a random vector of the
    prototypes' typical norm (``"random"``), or zeros (``"zeros"``: cosine 0 with every pixel,
    i.e. a fixed logit of 0 in eq. (1) until it learns)."""
    p = cfg.MODEL.RGANET.PROMPT
    d = prototypes.shape[-1]
    if p.BACKGROUND_INIT == "text":
        text = p.TEMPLATE.format("background") if p.TYPE == "template" else "background."
        return tower.encode_text([text]).float()[0]
    if p.BACKGROUND_INIT == "zeros":
        return torch.zeros(d)
    return torch.randn(d) * prototypes.norm(dim=-1).mean() / d ** 0.5
