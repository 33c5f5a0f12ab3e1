"""CLIP's text tower, kept apart from the image model.

It turns class names (or learned prompts) into the region prototypes. The ReID model
(``RGANet``) uses it once, while it is built, and keeps only the prototypes (a buffer of the region
head, saved with the checkpoint); inference never runs it. The prompt-learning stage
(``RGANetPromptLearner``) owns it as an ordinary frozen sub-module.
"""
from __future__ import annotations

from typing import List, Optional

import logging

import open_clip
import torch
from torch import nn

from .clip_choice import CLIP_BACKBONE, clip_choice

logger = logging.getLogger(__name__)


class CLIPTextTower(nn.Module):
    """Frozen text encoder of an open_clip ``CLIP`` model, with a prompt-embedding entry point."""

    def __init__(self, clip_model, model_name: str):
        super().__init__()
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.register_buffer("attn_mask", clip_model.attn_mask, persistent=False)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.context_length = self.positional_embedding.shape[0]
        self.width = self.token_embedding.weight.shape[1]
        if isinstance(self.text_projection, nn.Linear):
            self.embed_dim = self.text_projection.out_features
        elif self.text_projection is not None:
            self.embed_dim = self.text_projection.shape[1]
        else:
            self.embed_dim = self.width
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always frozen: dropout etc. stay off
        return super().train(False)

    def tokenize(self, texts: List[str]) -> torch.Tensor:
        return self.tokenizer(texts)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(tokens.to(self.token_embedding.weight.device))

    def encode_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Encode prompt embeddings ``(B, L, width)``; ``tokens`` locates the end-of-text token
        (the argmax of the ids), where the sentence feature is read."""
        x = embeddings + self.positional_embedding.to(embeddings.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        eot = tokens.argmax(dim=-1).to(x.device)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        if self.text_projection is not None:
            return x @ self.text_projection
        return x

    @torch.no_grad()
    def encode_text(self, texts: List[str], device: Optional[torch.device] = None) -> torch.Tensor:
        """Sentence features ``(len(texts), embed_dim)`` of plain strings."""
        if device is not None:
            self.to(device)
        tokens = self.tokenize(texts).to(self.token_embedding.weight.device)
        return self.encode_embeddings(self.embed_tokens(tokens), tokens)


def build_text_tower(cfg) -> CLIPTextTower:
    """The text tower of the config's text CLIP (``clip_choice(cfg).text``). Inside
    ``clip_weights.shared_clip_models()`` it comes from the very CLIP model the backbone was built
    from."""
    from .clip_vit import clip_model_from_cfg

    choice = clip_choice(cfg)
    spec = choice.text
    if not spec.pretrain and choice.image is None:
        logger.warning("RGANet text tower %s has random weights: set MODEL.RGANET.TEXT_ENCODER."
                       "PRETRAIN_PATH (or PRETRAINED_TAG) for meaningful prototypes", spec.name)
    return CLIPTextTower(clip_model_from_cfg(cfg, spec), spec.name)
