"""Training-free dense read-outs of a CLIP ViT's last block (``MODEL.BACKBONE.CLIP.DENSE_READOUT``).

CLIP's last block mixes every patch token with the others (in the person CLIP measured here, body
patches put 75 % of their last-block attention on background patches; docs/mechanism.md), so the
patch tokens of the feature map answer "what is in the image" more than "what is at this patch".
The open-vocabulary segmentation literature reads dense features out of the *same weights* by
changing only how the last block is run:

* ``tokens``: the block as trained (the default; the paper's ``F``);
* ``value``: MaskCLIP (Zhou et al., ECCV 2022): each token attends only to itself, i.e. the
  attention output is the token's own value vector through ``out_proj``; residual and MLP kept;
* ``value_only``: the same value path without the residual and the MLP (ClearCLIP's finding,
  Lan et al., ECCV 2024, that the residual carries the global noise);
* ``qqkk``: correlative self-attention, ``softmax(q q^T) + softmax(k k^T)`` per head, without
  residual and MLP (SCLIP, Wang et al., ECCV 2024; ClearCLIP).

Only the region map ``F`` changes; the global feature is computed from the block as trained, so
a backbone with a dense read-out keeps its ReID global feature. Each read-out is checked against a
hand-written computation in ``tests/test_clip_dense_readout.py``.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

DENSE_READOUTS = ("tokens", "value", "value_only", "qqkk")


def last_block_readout(block: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
    """The output of open_clip's ``ResidualAttentionBlock`` ``block`` on the sequence-first
    ``x`` (``(L, B, D)``) under the read-out ``mode`` (``tokens``: the block itself)."""
    if mode not in DENSE_READOUTS:
        raise ValueError(f"dense read-out {mode!r}: choose one of {', '.join(DENSE_READOUTS)}")
    if mode == "tokens":
        return block(x)
    attn = block.attn
    if not isinstance(attn, nn.MultiheadAttention) or attn.in_proj_weight is None:
        raise ValueError("a dense read-out needs the last block's attention to be an "
                         "nn.MultiheadAttention with a packed q/k/v projection (open_clip's ViT)")
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    if mode == "qqkk":
        length, b, d = v.shape
        heads = attn.num_heads

        def split(t):  # (L, B, D) -> (B * heads, L, D / heads)
            return t.reshape(length, b * heads, d // heads).transpose(0, 1)

        qh, kh, vh = split(q), split(k), split(v)
        scale = (d // heads) ** -0.5
        w = ((qh @ qh.transpose(1, 2)) * scale).softmax(-1) + \
            ((kh @ kh.transpose(1, 2)) * scale).softmax(-1)
        v = (w @ vh).transpose(0, 1).reshape(length, b, d)
    out = attn.out_proj(v)
    if mode != "value":
        return out
    y = x + block.ls_1(out)
    return y + block.ls_2(block.mlp(block.ln_2(y)))


def transformer_with_readout(transformer: nn.Module, x: torch.Tensor, mode: str
                             ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run open_clip's ``Transformer`` on the batch-first ``x`` (``(B, L, D)``); returns the
    ordinary output and the last block's output under ``mode``, both batch-first."""
    seq_first = not getattr(transformer, "batch_first", True)
    h = x.transpose(0, 1) if seq_first else x
    blocks = list(transformer.resblocks)
    for blk in blocks[:-1]:
        h = blk(h)
    plain = blocks[-1](h)
    dense = last_block_readout(blocks[-1], h if seq_first else h.transpose(0, 1), mode)
    return (plain.transpose(0, 1) if seq_first else plain), dense.transpose(0, 1)
