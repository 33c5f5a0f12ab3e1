"""Each equation of the method against a hand-computed reference on tiny tensors."""
import math

import pytest
import torch
import torch.nn.functional as F

from rganet_plugin.modeling.heads import (MemoryBank, RegionAssessmentModule, masked_average_pool,
                                          region_masks, stripe_masks)
from rganet_plugin.modeling.heads.region_assessment import combine_confidence, invariance_scores
from rganet_plugin.modeling.losses import confidence_weighted_id_loss, segmentation_loss


def test_eq1_masks_hand_computed():
    # one pixel, d=2, feature along x; prototypes: p1 = x, p2 = y, background = -x
    fmap = torch.tensor([[[[2.0]], [[0.0]]]])  # (1, 2, 1, 1)
    protos = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    bg = torch.tensor([-5.0, 0.0])
    gamma = 2.0
    s = region_masks(fmap, protos, bg, gamma)[0, :, 0, 0]
    # cosines: bg -1, p1 1, p2 0 -> softmax(2*[-1, 1, 0])
    e = [math.exp(-2), math.exp(2), math.exp(0)]
    ref = torch.tensor([x / sum(e) for x in e])
    assert torch.allclose(s, ref, atol=1e-6)


def test_eq1_masks_sum_to_one_over_classes_and_background():
    torch.manual_seed(0)
    s = region_masks(torch.randn(3, 8, 5, 4), torch.randn(4, 8), torch.randn(8), 20.0)
    assert s.shape == (3, 5, 5, 4)
    assert torch.allclose(s.sum(1), torch.ones(3, 5, 4), atol=1e-5)
    assert (s >= 0).all()


def test_eq2_masked_average_pooling_hand_computed():
    fmap = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])  # (1, 1, 2, 2)
    masks = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.5, 0.5], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    r = masked_average_pool(masks, fmap)
    assert torch.allclose(r[0, 0], torch.tensor([1.0]), atol=1e-5)
    # (0.5*1 + 0.5*3 + 1*7) / 2 = 4.5
    assert torch.allclose(r[0, 1], torch.tensor([4.5]), atol=1e-5)


def test_stripes_partition_rows():
    m = stripe_masks(4, 16, 8)
    assert m.shape == (4, 16, 8)
    assert torch.equal(m.sum(0), torch.ones(16, 8))
    assert m[0, :4].all() and not m[0, 4:].any() and m[3, 12:].all()
    m3 = stripe_masks(3, 16, 2)  # uneven split covers all rows exactly once
    assert torch.equal(m3.sum(0), torch.ones(16, 2))


def test_eq4_eq6_and_confidence_hand_computed():
    ram = RegionAssessmentModule(2, use_dai=True, use_iai=True)
    with torch.no_grad():
        ram.fc.weight.copy_(torch.tensor([[1.0, -1.0]]))
        ram.fc.bias.fill_(0.5)
    feats = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # (1, N=2, d=2)
    centers = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    out = ram(feats, centers)
    sig = lambda x: 1 / (1 + math.exp(-x))
    a = [sig(1.5), sig(-1.5)]
    cos = [1.0, 0.0]
    b = [math.exp(c) / sum(math.exp(x) for x in cos) for c in cos]
    z = [a[i] + b[i] for i in range(2)]
    w = [math.exp(x) / sum(math.exp(y) for y in z) for x in z]
    assert torch.allclose(out["alpha"][0], torch.tensor(a), atol=1e-6)
    assert torch.allclose(out["beta"][0], torch.tensor(b), atol=1e-6)
    assert torch.allclose(out["weights"][0], torch.tensor(w), atol=1e-6)
    assert torch.allclose(out["weights"].sum(1), torch.ones(1))


def test_confidence_without_indicators_is_uniform():
    for reading in ("softmax", "mean"):
        w = combine_confidence(None, None, torch.randn(3, 4), reading)
        assert torch.allclose(w, torch.full((3, 4), 0.25))
    beta = invariance_scores(torch.randn(2, 4, 8), torch.randn(4, 8))
    assert torch.allclose(beta.sum(1), torch.ones(2), atol=1e-6)


def test_eq5_memory_update_with_alpha_filter_hand_computed():
    bank = MemoryBank(2, 2, momentum=0.3, alpha_thresh=0.85)
    bank.initialize(torch.tensor([[2.0, 0.0], [0.0, 4.0]]), torch.tensor([2.0, 2.0]))
    assert torch.allclose(bank.centers, torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    feats = torch.tensor([[[3.0, 0.0], [0.0, 9.0]],
                          [[5.0, 0.0], [0.0, 1.0]],
                          [[100.0, 0.0], [0.0, 100.0]]])  # (B=3, N=2, d=2)
    alpha = torch.tensor([[0.9, 0.2], [0.95, 0.1], [0.5, 0.5]])
    counts = bank.update(feats, alpha)
    # class 0: images 0,1 pass -> mean (4, 0): 0.3*(1,0) + 0.7*(4,0) = (3.1, 0)
    # class 1: nobody passes -> unchanged (0, 2)
    assert torch.allclose(bank.centers, torch.tensor([[3.1, 0.0], [0.0, 2.0]]), atol=1e-6)
    assert counts.tolist() == [2.0, 0.0]


def test_eq5_memory_update_without_filter_uses_every_region():
    bank = MemoryBank(1, 1, momentum=0.5)
    bank.initialize(torch.tensor([[0.0]]), torch.tensor([1.0]))
    bank.update(torch.tensor([[[2.0]], [[4.0]]]), None)
    assert torch.allclose(bank.centers, torch.tensor([[1.5]]))  # 0.5*0 + 0.5*3
    assert int(bank.num_updates) == 1


def test_eq7_confidence_weighted_id_loss_hand_computed():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])  # (B=1, N=2, C=2)
    targets = torch.tensor([0])
    w = torch.tensor([[0.7, 0.3]])
    l0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    l1 = -math.log(1 / (1 + math.e))
    ref = 0.7 * l0 + 0.3 * l1
    assert abs(confidence_weighted_id_loss(logits, targets, w).item() - ref) < 1e-6


def test_eq7_label_smoothing_matches_fastreid_cross_entropy():
    from fastreid.modeling.losses import cross_entropy_loss

    torch.manual_seed(0)
    logits = torch.randn(6, 1, 5)
    t = torch.randint(0, 5, (6,))
    ours = confidence_weighted_id_loss(logits, t, torch.ones(6, 1), eps=0.1)
    theirs = cross_entropy_loss(logits[:, 0], t, 0.1)
    assert abs(ours.item() - theirs.item()) < 1e-5


def test_eq3_segmentation_loss_hand_computed():
    # masks over {bg, c1} for 2 pixels; labels: pixel0 = 1, pixel1 = ignore
    masks = torch.tensor([[[[0.2, 0.6]], [[0.8, 0.4]]]])  # (1, 2, 1, 2)
    labels = torch.tensor([[[1, 255]]])
    assert abs(segmentation_loss(masks, labels).item() + math.log(0.8)) < 1e-6
    labels = torch.tensor([[[1, 0]]])
    ref = -(math.log(0.8) + math.log(0.6)) / 2
    assert abs(segmentation_loss(masks, labels).item() - ref) < 1e-6
    # the paper's sum over body classes only
    assert abs(segmentation_loss(masks, labels, include_background=False).item()
               + math.log(0.8)) < 1e-6


def test_region_features_follow_the_masks():
    """A feature map whose top half matches prototype 1 and bottom half prototype 2: the RGM
    region features are (close to) those halves' features."""
    d = 4
    fmap = torch.zeros(1, d, 4, 2)
    fmap[0, 0, :2] = 1.0
    fmap[0, 1, 2:] = 1.0
    protos = torch.eye(d)[:2]
    bg = torch.eye(d)[3]
    s = region_masks(fmap, protos, bg, 20.0)
    r = masked_average_pool(s[:, 1:], fmap)[0]
    assert torch.allclose(F.normalize(r, dim=-1), torch.eye(d)[:2], atol=1e-3)


def test_pseudo_mask_targets_on_the_patch_grid_hand_computed():
    """A 4x4 label map onto a 2x2 grid (2x2-pixel patches). Top-left patch: three 'foot' (4)
    pixels and one background; nearest sampling takes its first pixel, the background."""
    from rganet_plugin.modeling.losses import patch_targets, soft_segmentation_loss

    labels = torch.tensor([[[0, 4, 1, 1],
                            [4, 4, 1, 2],
                            [255, 255, 3, 3],
                            [255, 255, 3, 0]]])
    nearest = patch_targets(labels, (2, 2), 5, "nearest")
    majority = patch_targets(labels, (2, 2), 5, "majority")
    soft = patch_targets(labels, (2, 2), 5, "soft")
    assert nearest.tolist() == [[[0, 1], [255, 3]]]
    assert majority.tolist() == [[[4, 1], [255, 3]]]
    assert soft.shape == (1, 5, 2, 2)
    assert soft[0, :, 0, 0].tolist() == [0.25, 0.0, 0.0, 0.0, 0.75]
    assert soft[0, :, 0, 1].tolist() == [0.0, 0.75, 0.25, 0.0, 0.0]
    assert soft[0, :, 1, 0].tolist() == [0.0] * 5  # nothing labelled
    assert soft[0, :, 1, 1].tolist() == [0.25, 0.0, 0.0, 0.75, 0.0]
    # soft cross-entropy: masks uniform over 5 classes -> log 5 on each labelled patch
    masks = torch.full((1, 5, 2, 2), 0.2)
    assert abs(soft_segmentation_loss(masks, soft).item() - math.log(5)) < 1e-6
    # a patch whose mask matches its fractions scores their entropy
    m = soft.clone()
    m[0, :, 1, 0] = 0.2
    ent = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert abs(soft_segmentation_loss(m.clamp_min(1e-8), soft).item() - ent) < 1e-5
    # without the background: the top-left patch is all foot, the bottom-right all lower body
    nb = -(math.log(0.75) + (0.75 * math.log(0.75) + 0.25 * math.log(0.25)) + math.log(0.75)) / 3
    assert abs(soft_segmentation_loss(m.clamp_min(1e-8), soft, include_background=False).item()
               - nb) < 1e-5
    with pytest.raises(ValueError, match="unknown segmentation target mode"):
        patch_targets(labels, (2, 2), 5, "bilinear")


def test_class_specific_context_moves_one_prototype_at_a_time():
    """CoOp's two forms: a shared context moves every prototype; a class-specific one (PROMPT.
    CLASS_SPECIFIC) moves only its own class's."""
    from rganet_plugin.modeling.backbones.clip_text import CLIPTextTower
    from rganet_plugin.modeling.backbones.clip_weights import build_clip_model
    from rganet_plugin.modeling.heads.prompts import LearnablePrompts

    torch.manual_seed(0)
    tower = CLIPTextTower(build_clip_model("RGANet-Tiny-ViT", (256, 128)), "RGANet-Tiny-ViT")
    names = ["head", "upper body", "lower body", "foot"]
    shared = LearnablePrompts(names, tower, n_ctx=4)
    csc = LearnablePrompts(names, tower, n_ctx=4, class_specific=True)
    assert shared.ctx.shape == (4, tower.width) and csc.ctx.shape == (4, 4, tower.width)
    with torch.no_grad():
        csc.ctx.copy_(shared.ctx.unsqueeze(0).expand(4, -1, -1))
        torch.testing.assert_close(csc(tower), shared(tower))  # same context: same prototypes
        before = csc(tower).clone()
        bump = torch.randn(4, tower.width)  # not a constant: LayerNorm would remove that
        csc.ctx[2] += bump
        after = csc(tower)
        shared.ctx += bump
        moved = (shared(tower) - before).norm(dim=1)
    changed = (after - before).norm(dim=1)
    assert changed[2] > 1e-3 and torch.all(changed[[0, 1, 3]] == 0)
    assert torch.all(moved > 1e-3)
