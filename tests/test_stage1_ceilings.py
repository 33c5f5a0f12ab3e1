"""The stage-1 read-outs of ``rganet_analysis.stage1`` (issue 19) learn what the tokens hold: on
tokens whose direction is the patch's part, free prototypes and the linear probe find the parts
(and untrained ones do not), and the scoring is the mechanism benchmark's part mIoU."""
import numpy as np
import pytest
import torch

from rganet_analysis import stage1
from rganet_plugin.synthetic.region_metrics import part_iou, patch_to_pixels
from rganet_tiny import tiny_cfg


def toy_world(model, n=24, grid=(8, 4), patch=4, seed=0):
    """Label maps of random part layouts and tokens pointing along their patch's label."""
    g = torch.Generator().manual_seed(seed)
    d = model.region_head.background.shape[0]
    cells = torch.randint(0, 5, (n, *grid), generator=g)
    labels = cells.repeat_interleave(patch, 1).repeat_interleave(patch, 2).numpy()
    basis = torch.nn.functional.normalize(torch.randn(5, d, generator=g), dim=1)
    tokens = basis[cells].permute(0, 3, 1, 2) + 0.05 * torch.randn(n, d, *grid, generator=g)
    return tokens, labels


@pytest.mark.parametrize("arm", ["free", "probe"])
def test_readouts_find_parts_the_tokens_hold(arm):
    torch.manual_seed(0)
    model = stage1.build_stage1_model(tiny_cfg("rgm", "learnable"))
    tokens, labels = toy_world(model)
    targets = stage1.seg_targets(labels, tokens.shape[-2:], 5)
    untrained = stage1.fit_readout(arm, model, tokens, targets, epochs=0, lr=0.05)
    trained = stage1.fit_readout(arm, model, tokens, targets, epochs=40, lr=0.05)
    before = stage1.score_masks(untrained, tokens, labels, 4)["miou"]
    after = stage1.score_masks(trained, tokens, labels, 4)["miou"]
    assert after > 0.95 and after > before + 0.3


def test_scoring_is_the_part_iou_of_the_patch_argmax():
    torch.manual_seed(0)
    model = stage1.build_stage1_model(tiny_cfg("rgm", "learnable"))
    tokens, labels = toy_world(model, n=4)
    masks = lambda t: torch.softmax(torch.randn(t.shape[0], 5, *t.shape[-2:]), dim=1)  # noqa
    torch.manual_seed(1)
    got = stage1.score_masks(masks, tokens, labels, 4)
    torch.manual_seed(1)
    m = masks(tokens)
    want = part_iou(patch_to_pixels(m[:, 1:].argmax(dim=1) + 1, labels.shape[-2:]).numpy(),
                    labels, 4)
    assert got["miou"] == pytest.approx(want["miou"])


def test_views_are_grouped_by_framing():
    g = stage1.groups_of(["full", "shifted", "top", "full", "bottom"])
    assert g["aligned"].tolist() == [0, 3] and g["misaligned"].tolist() == [1, 2, 4]
    assert g["top"].tolist() == [2] and len(g["all"]) == 5
    with pytest.raises(ValueError, match="unknown read-out"):
        stage1.fit_readout("nope", None, torch.zeros(1, 2, 1, 1), torch.zeros(1, 1, 1), 1, 0.1)
