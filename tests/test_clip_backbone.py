"""The CLIP ViT backbone: shapes, joint space, stride/SIE options, and weight loading."""
import pytest
import torch
from fastreid.modeling.backbones import build_backbone
from safetensors.torch import save_file

from rganet_plugin.modeling.backbones import CLIPWeightsError, build_clip_model
from rganet_plugin.modeling.backbones.clip_weights import interpolate_pos_embed


def test_feature_map_is_in_the_joint_space(make_cfg):
    cfg = make_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_clip_vit_backbone"
    bb = build_backbone(cfg).eval()
    x = torch.randn(2, 3, 256, 128)
    out = bb.forward_features(x)
    assert out["feature_map"].shape == (2, 64, 16, 8)  # 16x8 grid at 256x128, d = embed_dim
    assert torch.allclose(out["global"], out["feature_map"].mean(dim=(2, 3)), atol=1e-5)
    # the projected class token equals open_clip's own pooled image feature
    clip = build_clip_model("RGANet-Tiny-ViT", (256, 128))
    bb2 = type(bb)(clip, "RGANet-Tiny-ViT", global_feat="cls").eval()
    with torch.no_grad():
        ref = clip.encode_image(x)
        ours = bb2.forward_features(x)["global"]
    assert torch.allclose(ours, ref, atol=1e-4)
    assert torch.equal(bb(x), out["feature_map"])


def test_overlapping_patches_and_sie(make_cfg):
    cfg = make_cfg()
    cfg.MODEL.BACKBONE.CLIP.STRIDE = 12
    cfg.MODEL.BACKBONE.CLIP.SIE.ENABLED = True
    cfg.MODEL.BACKBONE.CLIP.SIE.NUM_CAMERAS = 3
    bb = build_backbone(cfg).eval()
    x = torch.randn(2, 3, 256, 128)
    assert bb(x).shape == (2, 64, 21, 10)  # (256-16)//12+1, (128-16)//12+1
    assert bb.positional_embedding.shape == (1 + 21 * 10, 64)
    with torch.no_grad():
        bb.sie_embed.normal_()
        a = bb(x, camids=torch.tensor([0, 0]))
        b = bb(x, camids=torch.tensor([2, 2]))
    assert not torch.allclose(a, b)
    cfg.MODEL.BACKBONE.CLIP.SIE.NUM_CAMERAS = 0
    with pytest.raises(ValueError, match="NUM_CAMERAS"):
        build_backbone(cfg)


def test_pos_embed_interpolation_keeps_class_token_and_shape():
    pe = torch.randn(1 + 14 * 14, 8)
    out = interpolate_pos_embed(pe, (14, 14), (16, 8))
    assert out.shape == (1 + 128, 8) and torch.equal(out[0], pe[0])
    # a constant grid stays constant under bicubic resizing
    flat = torch.ones(1 + 4, 3)
    assert torch.allclose(interpolate_pos_embed(flat, (2, 2), (4, 3))[1:], torch.ones(12, 3), atol=1e-5)


@pytest.mark.parametrize("fmt", ["bin", "safetensors", "wrapped"])
def test_local_checkpoint_loads_and_is_resized(tmp_path, fmt):
    # a "224" checkpoint (14x14 grid) loaded into the 256x128 model (16x8 grid)
    src = build_clip_model("RGANet-Tiny-ViT", (224, 224))
    state = src.state_dict()
    if fmt == "bin":
        path = tmp_path / "open_clip_model.bin"
        torch.save(state, path)
    elif fmt == "safetensors":
        path = tmp_path / "model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:  # DDP-style prefix inside a {'state_dict': ...} wrapper
        path = tmp_path / "ckpt.pt"
        torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    model = build_clip_model("RGANet-Tiny-ViT", (256, 128), pretrain=True, pretrain_path=str(path))
    assert model.visual.positional_embedding.shape == (129, 64)
    assert torch.equal(model.visual.conv1.weight, src.visual.conv1.weight)
    assert torch.equal(model.token_embedding.weight, src.token_embedding.weight)


def test_a_reid_resolution_checkpoint_loads_at_another_reid_resolution(tmp_path):
    """A 256x128 checkpoint (16x8 grid, not a square: e.g. the shipped person CLIP) loaded at
    128x64 (8x4): the grid is read as 16x8, not as a square, and resized."""
    from rganet_plugin.modeling.backbones.clip_weights import checkpoint_grid, interpolate_pos_embed

    assert checkpoint_grid(196, (16, 8)) == (14, 14)
    assert checkpoint_grid(128, (8, 4)) == (16, 8)
    assert checkpoint_grid(128, (16, 16)) in ((8, 16), (16, 8))
    src = build_clip_model("RGANet-Tiny-ViT", (256, 128))
    path = tmp_path / "reid.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model = build_clip_model("RGANet-Tiny-ViT", (128, 64), pretrain=True, pretrain_path=str(path))
    want = interpolate_pos_embed(src.visual.positional_embedding.data, (16, 8), (8, 4))
    assert torch.allclose(model.visual.positional_embedding, want)


def test_openai_torchscript_checkpoint(tmp_path):
    """OpenAI's .pt files are TorchScript archives with CLIP's key names."""
    import open_clip

    from rganet_plugin.modeling.backbones.clip_weights import register_plugin_model_configs

    register_plugin_model_configs()
    src = open_clip.create_model("RGANet-Tiny-ViT", pretrained=None, jit=True)
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.save(src, str(path))
    model = build_clip_model("RGANet-Tiny-ViT", (256, 128), pretrain=True, pretrain_path=str(path))
    assert torch.equal(model.visual.conv1.weight, src.state_dict()["visual.conv1.weight"])


def test_missing_checkpoint_says_how_to_fix(tmp_path):
    with pytest.raises(CLIPWeightsError, match="PRETRAIN_PATH"):
        build_clip_model("RGANet-Tiny-ViT", (256, 128), pretrain=True,
                         pretrain_path=str(tmp_path / "nope.pt"))


def test_checkpoint_of_another_architecture_names_the_keys(tmp_path):
    other = build_clip_model("RGANet-Small-ViT", (256, 128))
    path = tmp_path / "small.bin"
    torch.save(other.state_dict(), path)
    with pytest.raises(CLIPWeightsError) as e:
        build_clip_model("RGANet-Tiny-ViT", (256, 128), pretrain=True, pretrain_path=str(path))
    msg = str(e.value)
    assert "shape mismatches" in msg and "checkpoint (128" in msg and "vs model (64" in msg


def test_unknown_architecture_and_offline_tag():
    with pytest.raises(CLIPWeightsError, match="unknown CLIP architecture"):
        build_clip_model("ViT-Nope", (256, 128))
    # no network here: the hub download fails and the error says what to do instead
    with pytest.raises(CLIPWeightsError, match="MODEL.BACKBONE.PRETRAIN_PATH"):
        build_clip_model("RGANet-Tiny-ViT", (256, 128), pretrain=True,
                         pretrained_tag="no-such-tag")


def test_reid_model_keeps_prototypes_not_the_text_tower(make_cfg):
    """The backbone and the ReID model hold no text tower (not in the state dict, the optimizer
    or DDP); the prototypes it gave are a buffer. The prompt learner owns it as a frozen module."""
    from fastreid.modeling.meta_arch import build_model

    from rganet_plugin.engine.stages import prompt_stage_cfg

    cfg = make_cfg()
    bb = build_backbone(cfg)
    text_keys = ("token_embedding", "ln_final", "text_projection", "text_tower", "prompts.")
    assert not any(k.startswith(text_keys) for k in bb.state_dict())
    assert sum(p.numel() for p in bb.parameters()) < sum(
        p.numel() for p in build_clip_model("RGANet-Tiny-ViT", (256, 128)).parameters())
    cfg.defrost()
    cfg.MODEL.RGANET.PROMPT.TYPE = "learnable"
    cfg.MODEL.HEADS.NUM_CLASSES = 4
    model = build_model(cfg)
    assert not any(k.startswith(text_keys) or ".prompts." in k for k in model.state_dict())
    assert model.region_head.prototypes.shape == (4, 64)
    learner = build_model(prompt_stage_cfg(cfg))
    tower = learner.text_tower
    assert sum(p.numel() for p in tower.parameters()) > 0
    assert all(not p.requires_grad for p in tower.parameters())
    assert any(k.startswith("text_tower.") for k in learner.state_dict())
    # the learner's text tower is the backbone's CLIP: one model, one set of weights
    clip = build_clip_model("RGANet-Tiny-ViT", (256, 128))
    assert tower.token_embedding.weight.shape == clip.token_embedding.weight.shape


def test_sequence_first_transformer_gives_the_same_features():
    """The backbone runs open_clip's transformer sequence-first (fast under autocast); the
    features equal those of an untouched batch-first open_clip model with the same weights."""
    from rganet_plugin.modeling.backbones import CLIPViTBackbone

    ref = build_clip_model("RGANet-Tiny-ViT", (256, 128)).eval()
    twin = build_clip_model("RGANet-Tiny-ViT", (256, 128))
    twin.load_state_dict(ref.state_dict())
    bb = CLIPViTBackbone(twin, "RGANet-Tiny-ViT", global_feat="cls").eval()
    assert bb.transformer.batch_first is False and ref.visual.transformer.batch_first is True
    x = torch.randn(3, 3, 256, 128)
    with torch.no_grad():
        assert torch.allclose(bb.forward_features(x)["global"], ref.encode_image(x), atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a = bb.forward_features(x)["global"].float()
            b = ref.encode_image(x).float()
    assert torch.allclose(a, b, atol=0.1, rtol=0.05)


def _widths(name):
    import open_clip

    from rganet_plugin.modeling.backbones.clip_weights import register_plugin_model_configs

    register_plugin_model_configs()
    return open_clip.get_model_config(name)["embed_dim"]


def test_clip_choice_says_which_clip_and_how_wide(make_cfg):
    """One function answers which CLIP (image side, text side) and how wide (backbone map,
    regions) for every kind of config."""
    from rganet_plugin.modeling.backbones.clip_choice import CLIPSpec, clip_choice

    tiny, small = _widths("RGANet-Tiny-ViT"), _widths("RGANet-Small-ViT")
    assert tiny != small
    cfg = make_cfg("rgm")
    c = clip_choice(cfg)
    assert c.image == c.text == CLIPSpec("RGANet-Tiny-ViT", "", "openai", False)
    assert (c.feat_dim, c.region_dim) == (tiny, tiny)
    cfg.MODEL.RGANET.TEXT_ENCODER.NAME = "RGANet-Small-ViT"  # another CLIP's text, random weights
    c = clip_choice(cfg)
    assert c.image.name == "RGANet-Tiny-ViT" and c.text == CLIPSpec("RGANet-Small-ViT")
    assert (c.feat_dim, c.region_dim) == (tiny, small)
    cfg.MODEL.RGANET.TEXT_DIM = 40
    assert clip_choice(cfg).region_dim == 40
    # a fast-reid backbone: no image CLIP, its FEAT_DIM; stripes keep that width, RGM the text's
    res = make_cfg("stripes")
    res.MODEL.BACKBONE.NAME, res.MODEL.BACKBONE.FEAT_DIM = "build_resnet_backbone", 2048
    c = clip_choice(res)
    assert c.image is None and c.text.name == "RGANet-Tiny-ViT" and not c.text.pretrain
    assert (c.feat_dim, c.region_dim) == (2048, 2048)
    res.MODEL.RGANET.REGION_MODE = "rgm"
    assert clip_choice(res).region_dim == tiny


@pytest.mark.parametrize("text_clip", ["", "RGANet-Small-ViT"])
def test_the_model_is_built_as_clip_choice_says(make_cfg, text_clip):
    """The backbone, the text tower, the region head and the output layout all follow the one
    answer; N comes from num_regions (here a 2-class list)."""
    from fastreid.modeling.meta_arch import build_model

    from rganet_plugin.config.regions import num_regions, region_classes
    from rganet_plugin.modeling.backbones.clip_choice import clip_choice

    cfg = make_cfg("rgm", prompt="learnable", num_classes=3)
    cfg.MODEL.META_ARCHITECTURE = "RGANetPromptLearner"  # keeps its text tower
    cfg.MODEL.RGANET.CLASS_NAMES = ["upper body", "lower body"]
    cfg.MODEL.RGANET.TEXT_ENCODER.NAME = text_clip
    c = clip_choice(cfg)
    model = build_model(cfg)
    assert model.backbone.feat_dim == c.feat_dim
    assert model.text_tower.embed_dim == c.region_dim == _widths(text_clip or "RGANet-Tiny-ViT")
    assert (c.text == c.image) == (text_clip == "")
    head = model.region_head
    assert head.dim == c.region_dim and head.num_regions == num_regions(cfg) == 2
    assert head.class_names == region_classes(cfg) and len(model.prompts.class_names) == 2
    assert model.layout.num_regions == 2 and model.layout.region_dim == c.region_dim
    assert head.prototypes.shape == (2, c.region_dim)
    cfg.MODEL.RGANET.REGION_MODE = "none"
    assert num_regions(cfg) == 0 and region_classes(cfg) == []
