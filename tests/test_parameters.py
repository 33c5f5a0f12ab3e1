"""Parameter counts per component (Table VII): every parameter lands in exactly one component,
the classifier counts match their shapes, and the paper-reading search on hand-made numbers."""
import warnings

from rganet_analysis.parameters import (component_counts, component_of, ours,
                                                 paper_readings, report, text_tower_counts)


def clip_width(model):
    return model.backbone.proj.shape[0]


def test_components_of_a_tiny_rganet_add_up(make_cfg):
    from fastreid.modeling.meta_arch import build_model

    cfg = make_cfg(num_classes=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg)
    c = component_counts(model)
    assert sum(c["parameters"].values()) == sum(p.numel() for p in model.parameters())
    n_buffers = sum(b.numel() for n, b in model.named_buffers() if not n.startswith("pixel_"))
    assert sum(c["buffers"].values()) == n_buffers
    assert not [k for k in c["parameters"] if k.startswith("other")]
    # RGANet-Tiny-ViT's joint space is 64-d: 8 identities, N = 4 regions
    assert c["parameters"]["global classifier"] == 8 * 64
    assert c["parameters"]["region classifiers"] == 4 * 8 * 64
    assert c["parameters"]["RAM FC (DAI)"] == 64 + 1
    assert c["parameters"]["background embedding p_0"] == 64
    assert c["parameters"]["visual projection"] == clip_width(model) * 64
    assert c["buffers"]["cached prototypes"] == 4 * 64
    region_cls = c["parameters"]["region classifiers"]
    total, infer = ours(c)
    assert total - infer == (c["parameters"]["global classifier"] + region_cls
                             + c["parameters"].get("prompt context", 0))


def test_text_tower_by_part():
    from rganet_plugin.modeling.backbones.clip_weights import build_clip_model

    clip = build_clip_model("RGANet-Tiny-ViT", (256, 128), pretrain=False)
    t = text_tower_counts(clip)
    text = sum(p.numel() for n, p in clip.named_parameters() if not n.startswith("visual."))
    assert sum(t.values()) == text
    assert t["token embedding"] == clip.token_embedding.weight.numel()
    assert t["logit scale"] == 1


def test_component_names():
    assert component_of("backbone.proj") == "visual projection"
    assert component_of("backbone.transformer.resblocks.0.attn.in_proj_weight") == "visual tower"
    assert component_of("region_head.bnneck.bn.running_var") == "BN statistics"
    assert component_of("region_head.memory.centers") == "memory bank"
    assert component_of("somewhere.new.weight") == "other: somewhere.new"


def test_paper_readings_hand_made():
    parts = {"visual tower": 90_000_000, "visual projection": 400_000, "a": 1_000_000,
             "b": 2_100_000, "c": 50_000_000}
    hits, best = paper_readings(parts, target_m=93.5)
    assert [(round(m, 2), combo) for m, combo in hits] == [(93.5, ("a", "b"))]
    hits, best = paper_readings(parts, target_m=92.0)
    assert hits == [] and best == (92.5, ("b",))  # 90.4 + 2.1
    text = report({"parameters": {"visual tower": 90_000_000, "global classifier": 1_000_000},
                   "buffers": {}}, {"token embedding": 2_000_000})
    assert "ours: 91.00M" in text and "used at inference 90.00M" in text
    assert "93.5M, reached by: 93.00M" not in text and "not reached" in text
    assert "closest 93.00M = visual tower + global classifier + token embedding" in text
