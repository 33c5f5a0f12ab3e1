"""The paper's open choices as keys (docs/fidelity.md): each changes what it says, checked on tiny
tensors against hand-computed values."""
import math

import pytest
import torch

import rganet_plugin  # noqa: F401
from rganet_plugin.config import load_config
from rganet_plugin.config.setup import ConfigError
from rganet_plugin.modeling.heads.memory_bank import MemoryBank
from rganet_plugin.modeling.heads.region_assessment import RegionAssessmentModule, combine_confidence


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_confidence_softmax_and_mean_readings_hand_computed():
    alpha = torch.tensor([[_sig(1.5), _sig(-1.5), 0.5]])
    beta = torch.tensor([[0.5, 0.3, 0.2]])
    z = [a + b for a, b in zip(alpha[0].tolist(), beta[0].tolist())]
    soft = [math.exp(v) / sum(math.exp(u) for u in z) for v in z]
    mean = [v / 2 for v in z]  # what the paper's Fig. 4 prints: w = (alpha + beta) / 2
    assert torch.allclose(combine_confidence(alpha, beta, alpha, "softmax")[0],
                          torch.tensor(soft), atol=1e-6)
    assert torch.allclose(combine_confidence(alpha, beta, alpha, "mean")[0],
                          torch.tensor(mean), atol=1e-6)
    # one indicator on: softmax of it alone / the indicator itself
    assert torch.allclose(combine_confidence(alpha, None, alpha, "mean"), alpha)
    with pytest.raises(ValueError, match="confidence reading"):
        combine_confidence(alpha, beta, alpha, "max")


def test_under_softmax_the_shared_bias_of_alpha_gets_almost_no_gradient():
    """§III-D's softmax cancels a shift shared by all regions: alpha_j = sigmoid(a_j + b), so
    dw/db = sum_j dw/dz_j sigmoid'(a_j), zero when the sigmoid' are equal and tiny while the alphas
    are close (at the FC's initialisation): the level of alpha barely learns. The mean reading
    trains it directly."""
    torch.manual_seed(0)
    feats = torch.randn(5, 4, 8)
    upstream = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    grads = {}
    for reading in ("softmax", "mean"):
        torch.manual_seed(2)
        ram = RegionAssessmentModule(8, use_dai=True, use_iai=False, confidence=reading)
        w = ram(feats, torch.zeros(4, 8))["weights"]
        (w * upstream).sum().backward()
        grads[reading] = ram.fc.bias.grad.abs().item()
    assert grads["mean"] > 1e-2
    assert grads["softmax"] < 1e-4 * grads["mean"]


def test_momentum_reading_equation_and_text_hand_computed():
    feats = torch.tensor([[[4.0, 0.0]]])  # B=1, N=1, d=2
    for reading, expect in (("equation", 0.1 * 1.0 + 0.9 * 4.0), ("text", 0.9 * 1.0 + 0.1 * 4.0)):
        bank = MemoryBank(1, 2, momentum=0.1, alpha_thresh=0.5, reading=reading)
        bank.initialize(torch.tensor([[1.0, 0.0]]), torch.tensor([1.0]))
        bank.update(feats, None)
        assert bank.centers[0, 0].item() == pytest.approx(expect)
    with pytest.raises(ValueError, match="momentum reading"):
        MemoryBank(1, 2, reading="slow")


def _model(make_cfg, **overrides):
    from fastreid.modeling.meta_arch import build_model

    cfg = make_cfg()
    cfg.defrost()
    cfg.MODEL.HEADS.NUM_CLASSES = 4
    cfg.merge_from_list([x for kv in overrides.items() for x in kv])
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_test_features_pre_bn_or_post_bn(make_cfg):
    """TEST.RGANET.FEATURES: the packed row holds F_g and F_j^r (pre_bn) or their BNNeck outputs."""
    bn = _model(make_cfg, **{"MODEL.RGANET.REGION_MODE": "stripes"})
    pre = _model(make_cfg, **{"MODEL.RGANET.REGION_MODE": "stripes",
                               "TEST.RGANET.FEATURES": "pre_bn"})
    pre.load_state_dict(bn.state_dict())
    x = torch.rand(2, 3, 256, 128) * 255
    for m in (bn, pre):  # BNNecks with non-trivial statistics
        m.heads.bottleneck[0].running_mean.fill_(0.3)
        m.region_head.bnneck.bn.running_var.fill_(4.0)
    with torch.no_grad():
        a, b = bn.layout.unpack(bn({"images": x})), pre.layout.unpack(pre({"images": x}))
        d = bn.inference_details({"images": x})
    assert torch.allclose(b.region_feats, d["region_feats"], atol=1e-5)
    assert torch.allclose(a.region_feats, d["region_bn_feats"], atol=1e-5)
    assert not torch.allclose(a.global_feat, b.global_feat)
    assert torch.allclose(a.weights, b.weights)


@pytest.mark.parametrize("init", ["text", "random", "zeros"])
def test_background_init(make_cfg, init):
    m = _model(make_cfg, **{"MODEL.RGANET.PROMPT.BACKGROUND_INIT": init})
    p0 = m.region_head.background.detach()
    if init == "zeros":
        assert torch.count_nonzero(p0) == 0
    else:
        other = _model(make_cfg, **{"MODEL.RGANET.PROMPT.BACKGROUND_INIT":
                                    "random" if init == "text" else "text"})
        assert not torch.allclose(p0, other.region_head.background.detach())
        assert p0.norm() > 0


def test_untrained_prompt_context_is_refused_unless_wanted():
    from rganet_plugin.engine.stages import plan_stages

    base = ["MODEL.META_ARCHITECTURE", "RGANet", "MODEL.RGANET.PROMPT.TYPE", "learnable"]
    assert plan_stages(load_config("", base)) == ["prompt", "reid"]
    with pytest.raises(ConfigError, match="PROMPT_STAGE.ALLOW_UNTRAINED"):
        plan_stages(load_config("", base + ["PROMPT_STAGE.AUTO", "False"]))
    assert plan_stages(load_config("", base + ["PROMPT_STAGE.AUTO", "False",
                                               "PROMPT_STAGE.ALLOW_UNTRAINED", "True"])) == ["reid"]
    assert plan_stages(load_config("", base + ["PROMPT_STAGE.AUTO", "False",
                                               "MODEL.WEIGHTS", "stage1.pth"])) == ["reid"]
    assert plan_stages(load_config("", base + ["MODEL.META_ARCHITECTURE",
                                               "RGANetPromptLearner"])) == ["prompt"]
    assert plan_stages(load_config("", base[:2] + ["MODEL.RGANET.PROMPT.TYPE", "template"])) == [
        "reid"]
