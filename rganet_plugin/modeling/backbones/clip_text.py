"""CLIP's text tower, kept apart from the image model.

The region heads need it to turn class names (or learned prompts) into prototypes; inference
never runs it, and it is deliberately *not* a registered sub-module of the ReID model: it is not in
``state_dict()``, not seen by the optimizer, not wrapped by DDP. The prototypes it produces are
cached in a buffer of the head and saved with the checkpoint instead.
"""
from __future__ import annotations

from typing import List, Optional

import open_clip
import torch
from torch import nn


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
