"""Training-free dense read-outs of the CLIP ViT's last block (MODEL.BACKBONE.CLIP.DENSE_READOUT),
each against a computation written out by hand from open_clip's own modules."""
import pytest
import torch

from rganet_plugin.modeling.backbones import build_clip_model
from rganet_plugin.modeling.backbones.clip_dense_readout import last_block_readout
from rganet_plugin.modeling.backbones.clip_vit import CLIPViTBackbone


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    clip = build_clip_model("RGANet-Tiny-ViT", (64, 32)).eval()
    bb = CLIPViTBackbone(clip, "RGANet-Tiny-ViT", image_size=(64, 32)).eval()  # sequence-first
    block = bb.transformer.resblocks[-1]
    x = torch.randn(9, 2, bb.width)  # (L, B, D)
    return bb, block, x


def _diagonal_mask(n):
    m = torch.full((n, n), float("-inf"))
    return m.fill_diagonal_(0.0)


@torch.no_grad()
def test_value_readout_is_the_block_with_each_token_attending_only_to_itself(tiny):
    _, block, x = tiny
    mask = _diagonal_mask(x.shape[0])
    assert torch.allclose(last_block_readout(block, x, "value"), block(x, attn_mask=mask), atol=1e-5)
    # without residual and MLP: the attention output alone, i.e. out_proj(v)
    assert torch.allclose(last_block_readout(block, x, "value_only"),
                          block.attention(block.ln_1(x), attn_mask=mask), atol=1e-5)
    assert torch.equal(last_block_readout(block, x, "tokens"), block(x))


@torch.no_grad()
def test_qqkk_readout_is_correlative_attention_per_head(tiny):
    _, block, x = tiny
    attn = block.attn
    d, heads = x.shape[-1], attn.num_heads
    dh = d // heads
    wq, wk, wv = attn.in_proj_weight.split(d)
    bq, bk, bv = attn.in_proj_bias.split(d)
    h = block.ln_1(x)
    out = torch.zeros_like(x)
    for b in range(x.shape[1]):
        cols = []
        for i in range(heads):
            s = slice(i * dh, (i + 1) * dh)
            q = h[:, b] @ wq[s].t() + bq[s]
            k = h[:, b] @ wk[s].t() + bk[s]
            v = h[:, b] @ wv[s].t() + bv[s]
            a = torch.softmax(q @ q.t() / dh ** 0.5, -1) + torch.softmax(k @ k.t() / dh ** 0.5, -1)
            cols.append(a @ v)
        out[:, b] = torch.cat(cols, dim=1) @ attn.out_proj.weight.t() + attn.out_proj.bias
    assert torch.allclose(last_block_readout(block, x, "qqkk"), out, atol=1e-5)


@torch.no_grad()
def test_a_dense_readout_changes_the_region_map_and_keeps_the_global_feature(tiny):
    bb, _, _ = tiny
    images = torch.randn(2, 3, 64, 32)
    plain = bb.forward_features(images)
    for mode in ("value", "value_only", "qqkk"):
        bb.dense_readout = mode
        try:
            out = bb.forward_features(images)
        finally:
            bb.dense_readout = "tokens"
        assert out["feature_map"].shape == plain["feature_map"].shape
        assert not torch.allclose(out["feature_map"], plain["feature_map"], atol=1e-3)
        assert torch.allclose(out["global"], plain["global"], atol=1e-5)


def test_an_unknown_readout_is_refused(tiny):
    _, block, x = tiny
    with pytest.raises(ValueError, match="value_only"):
        last_block_readout(block, x, "values")
    from rganet_plugin.config import load_config
    from rganet_plugin.config.setup import ConfigError
    with pytest.raises(ConfigError, match="DENSE_READOUT"):
        load_config("", ["MODEL.BACKBONE.CLIP.DENSE_READOUT", "values"])
    cfg = load_config("", ["MODEL.BACKBONE.CLIP.DENSE_READOUT", "qqkk"])
    assert cfg.MODEL.BACKBONE.CLIP.DENSE_READOUT == "qqkk"
    from rganet_plugin.config.setup import _CHOICES  # the config's list is the module's
    from rganet_plugin.modeling.backbones.clip_dense_readout import DENSE_READOUTS
    assert _CHOICES["MODEL.BACKBONE.CLIP.DENSE_READOUT"] == DENSE_READOUTS


def test_a_block_without_packed_attention_is_refused(tiny):
    """A read-out recomputes the last block's attention from its packed q/k/v projection; a block
    whose attention is something else gets one clear error, not a wrong map."""
    import copy

    _, block, x = tiny
    other = copy.deepcopy(block)
    other.attn = torch.nn.Linear(x.shape[-1], x.shape[-1])
    for mode in ("value", "value_only", "qqkk"):
        with pytest.raises(ValueError, match="packed q/k/v projection"):
            last_block_readout(other, x, mode)
