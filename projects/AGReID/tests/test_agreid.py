"""AG-ReID (projects/AGReID): the losses and the pooling against hand-computed values, stage 1's
labelling (voting, rejection, centring, the command on a tiny generated set, its bad inputs) and
a tiny stage-2 training through the real trainer."""
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import agreid  # noqa: F401
from agreid.config import load_agreid_config
from agreid.labels import assign, read_labels, vote
from agreid.modeling import (attribute_ce, attribute_pool, attribute_sentences,
                             global_text_contrast, image_text_contrast)
from agreid.tools import main
from agreid.vocabulary import GROUPS, group_prompts, true_attributes
from agreid_tiny import DEMO, tiny_opts
from rganet_plugin.config.setup import ConfigError


def _lse(xs):
    return math.log(sum(math.exp(x) for x in xs))


# ------------------------------------------------------------------------------- losses
def test_attribute_ce_by_hand_ignores_rejected():
    l0 = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]])  # group 0: 2 values
    l1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, 1.0, 0.0]])  # group 1: 3 values
    y = torch.tensor([[0, 2], [1, -1], [-1, -1]])
    got = attribute_ce([l0, l1], y)
    g0 = ((_lse([2, 0]) - 2) + (_lse([0, 1]) - 1)) / 2  # image 2 rejected
    g1 = _lse([1, 0, 0]) - 0  # only image 0, value 2 (logit 0)
    assert got.item() == pytest.approx((g0 + g1) / 2, rel=1e-6)
    none = attribute_ce([l0.requires_grad_()], torch.full((3, 1), -1))
    assert none.item() == 0.0 and none.requires_grad


def test_image_text_contrast_by_hand():
    attr = torch.tensor([[[3.0, 0.0]], [[1.0, 1.0]]])  # B=2, G=1, d=2
    texts = [torch.tensor([[1.0, 0.0], [0.0, 2.0]])]  # unit after normalising: e1, e2
    y = torch.tensor([[1], [0]])
    tau = 0.5
    got = image_text_contrast(attr, texts, y, tau)
    s = 1 / math.sqrt(2)
    i0 = _lse([1 / tau, 0 / tau]) - 0 / tau  # cos(e1, e1)=1, cos(e1, e2)=0; label 1
    i1 = _lse([s / tau, s / tau]) - s / tau
    assert got.item() == pytest.approx((i0 + i1) / 2, rel=1e-6)


def test_global_text_contrast_by_hand():
    texts = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0]])]
    # image 0: values (0, 0) -> sentence u(e1 + e2); image 1: (0, -1) -> e1;
    # image 2: (0, 0), same labels as image 0 (a positive); image 3: nothing kept (left out)
    y = torch.tensor([[0, 0], [0, -1], [0, 0], [-1, -1]])
    sent = attribute_sentences(texts, y)
    s = 1 / math.sqrt(2)
    assert torch.allclose(sent[:3], torch.tensor([[s, s], [1.0, 0.0], [s, s]]))
    assert sent[3].abs().sum() == 0
    glob = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    tau = 1.0
    got = global_text_contrast(glob, texts, y, tau)
    g = F.normalize(glob[:3], dim=1).tolist()
    cols = [[s, s], [1.0, 0.0], [s, s]]
    sim = [[sum(a * b for a, b in zip(gi, cj)) / tau for cj in cols] for gi in g]
    pos = [[0, 2], [1], [0, 2]]
    terms = [sum(_lse(sim[i]) - sim[i][j] for j in pos[i]) / len(pos[i]) for i in range(3)]
    assert got.item() == pytest.approx(sum(terms) / 3, rel=1e-6)


def test_attribute_pool_by_hand():
    fmap = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # B=1, d=2, H=1, W=2: e1 and 2*e2
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gamma = 2.0
    got = attribute_pool(fmap, q, gamma)
    a = math.exp(gamma) / (math.exp(gamma) + 1)  # query e1: cos 1 with patch 0, 0 with patch 1
    assert torch.allclose(got[0, 0], torch.tensor([a, 2 * (1 - a)]), atol=1e-6)
    assert torch.allclose(got[0, 1], torch.tensor([1 - a, 2 * a]), atol=1e-6)


# ------------------------------------------------------------------------------- stage 1
def test_vote_assign_threshold_and_centring():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    v = vote(p, ["a", "a", "b", "b"], "identity")
    assert np.allclose(v, [[0.55, 0.45]] * 2 + [[0.45, 0.55]] * 2)
    assert np.allclose(vote(p, ["a", "a", "b", "b"], "image"), p)
    feats = torch.tensor([[1.0, 0.0], [0.8, 0.6]])
    texts = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    idx, conf, lab = assign(feats, texts, [0, 1], scale=10.0, voting="image", threshold=0.9,
                            center=False)
    # cos: image 0 (1.0, 0.6), image 1 (0.8, 0.96): argmax 0, 1; softmax(10 * cos)
    assert idx.tolist() == [0, 1]
    c0 = 1 / (1 + math.exp(-4.0))
    c1 = 1 / (1 + math.exp(-1.6))
    assert conf.tolist() == pytest.approx([c0, c1], rel=1e-5)
    assert lab.tolist() == [0, -1]  # 0.83 < 0.9: rejected
    # centring removes each value's mean cosine: value 1's lead on image 1 shrinks to
    # (0.96 - 0.78) - (0.8 - 0.9) = 0.28 and image 0 keeps value 0
    idx, conf, _ = assign(feats, texts, [0, 1], 10.0, "image", 0.0, center=True)
    assert idx.tolist() == [0, 1]
    assert conf[1] == pytest.approx(1 / (1 + math.exp(-2.8)), rel=1e-5)


def test_vocabulary_covers_the_generators_words():
    from rganet_plugin.synthetic.people import _identity

    for seed in range(40):
        t = true_attributes(_identity(np.random.default_rng([0, 1, seed])))
        assert set(t) == set(GROUPS)
        for g, value in t.items():
            assert value in GROUPS[g], (g, value)
    prompts = group_prompts("lower_type")
    assert len(prompts) == 3 and "a person wearing shorts." in prompts[1]
    assert group_prompts("lower_type", "first") == [[p[0]] for p in prompts]


def test_label_command_on_a_tiny_generated_set(tmp_path, capsys):
    out = tmp_path / "labels.json"
    rc = main(["label", "--config-file", DEMO, "--out", str(out), *tiny_opts(tmp_path)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    groups = load_agreid_config(DEMO).MODEL.AGREID.GROUPS
    content = read_labels(str(out), groups)
    assert len(content["images"]) == 16 and list(content["groups"]) == list(groups)
    rec = content["images"][0]
    for g in groups:
        assert -1 <= rec["labels"][g] < len(content["groups"][g])
        assert 0 < rec["confidence"][g] <= 1
        assert rec["labels"][g] in (-1, rec["argmax"][g])
        assert (rec["labels"][g] == -1) == (rec["confidence"][g] < 0.5)
    # identity voting: every image of an identity has the same labels
    by_pid = {}
    for r in content["images"]:
        by_pid.setdefault(r["pid"], set()).add(json.dumps(r["labels"], sort_keys=True))
    assert all(len(v) == 1 for v in by_pid.values()) and len(by_pid) == 4
    for g in groups:  # the accuracy table against the generator's truth
        row = next(line for line in printed.splitlines() if line.startswith(f"| {g} |"))
        acc, cov = (float(x) for x in row.split("|")[2:4])
        assert 0 <= acc <= 1 and 0 <= cov <= 1
        assert content["report"][g]["coverage"] == pytest.approx(
            np.mean([r["labels"][g] >= 0 for r in content["images"]]), abs=1e-3)
    assert f"labels written to {out}" in printed


@pytest.mark.parametrize("case", ["no_weights", "random_clip", "unknown_group", "empty_set"])
def test_label_command_bad_input_one_line(case, tmp_path, capsys):
    out = tmp_path / "labels.json"
    extra = {"no_weights": {"MODEL.BACKBONE.PRETRAIN_PATH": str(tmp_path / "missing.safetensors")},
             "random_clip": {"MODEL.BACKBONE.PRETRAIN": "False"},
             "unknown_group": {"MODEL.AGREID.GROUPS": "['upper_colour', 'hat_colour']"},
             "empty_set": {"DATASETS.NAMES": "('OccludedDuke',)"}}[case]
    if case == "empty_set":
        for d in ("bounding_box_train", "query", "bounding_box_test"):
            os.makedirs(tmp_path / "Occluded_Duke" / d)
    rc = main(["label", "--config-file", DEMO, "--out", str(out), *tiny_opts(tmp_path, **extra)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert {"no_weights": "missing.safetensors", "random_clip": "PRETRAIN is False",
            "unknown_group": "hat_colour", "empty_set": "train"}[case] in lines[0]
    assert not out.exists()
    if case == "empty_set":
        from agreid.labels import label_items

        with pytest.raises(ValueError, match="no training images to label"):
            label_items(load_agreid_config(DEMO), [])


def test_config_checks():
    with pytest.raises(ConfigError, match="REGION_MODE"):
        load_agreid_config(DEMO, ["MODEL.RGANET.REGION_MODE", "rgm"])
    with pytest.raises(ConfigError, match="TEST.AGREID.FEATURE"):
        load_agreid_config(DEMO, ["TEST.AGREID.FEATURE", "regions"])
    with pytest.raises(ConfigError, match="VOTING"):
        load_agreid_config(DEMO, ["MODEL.AGREID.LABELS.VOTING", "camera"])


# ------------------------------------------------------------------------------- stage 2
def test_tiny_training_and_test_features(tmp_path, capsys):
    from fastreid.utils.events import EventStorage

    from agreid.engine import AGReIDTrainer

    cfg = load_agreid_config(DEMO, tiny_opts(tmp_path))
    trainer = AGReIDTrainer(cfg)
    model = trainer.model
    labels_file = os.path.join(os.path.dirname(os.path.dirname(trainer.train_items[0][0])),
                               "agreid_labels")
    assert len(os.listdir(labels_file)) == 1  # stage 1 wrote next to the dataset
    batch = next(iter(trainer.data_loader))
    model.train()
    with EventStorage(0):
        losses = model(batch)
    assert {"loss_cls", "loss_triplet", "loss_attr", "loss_attr_text", "loss_global_text"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.queries.grad is not None and model.queries.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        feat = model({"images": batch["images"][:3]})
    g, n = 96, len(cfg.MODEL.AGREID.GROUPS)
    assert feat.shape == (3, g + n * 96)
    lam = cfg.TEST.AGREID.ATTR_WEIGHT
    assert torch.allclose(feat.norm(dim=1), torch.ones(3), atol=1e-5)  # unit: cosine is a dot
    assert feat[:, :g].norm(dim=1) == pytest.approx([1 / math.sqrt(1 + lam)] * 3, rel=1e-5)
    model.train()
    res = trainer.train()
    assert 0 <= res["Rank-1"] <= 100
    # --eval-only through the entry point (the plugin's run, AG-ReID's trainer) gives the same
    final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    assert main(["--config-file", DEMO, "--eval-only", "MODEL.WEIGHTS", final,
                 *tiny_opts(tmp_path, OUTPUT_DIR=str(tmp_path / "eval"))]) == 0
    assert f"{res['Rank-1']:.2f}" in capsys.readouterr().out


def test_paired_difference_by_hand():
    from rganet_analysis.compare import paired_difference

    m, se = paired_difference([50.0, 54.0, 49.0], [48.0, 50.0, 48.0])  # differences 2, 4, 1
    sd = math.sqrt(((2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2 + (1 - 7 / 3) ** 2) / 2)
    assert m == pytest.approx(7 / 3) and se == pytest.approx(sd / math.sqrt(3))
    assert math.isnan(paired_difference([1.0], [0.0])[1])
    with pytest.raises(ValueError, match="as many"):
        paired_difference([1.0, 2.0], [1.0])


def test_labels_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="agreid.tools label"):
        read_labels(str(tmp_path / "none.json"), ["upper_colour"])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        read_labels(str(bad), ["upper_colour"])
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not an AG-ReID labels file"):
        read_labels(str(bad), ["upper_colour"])
    bad.write_text(json.dumps({"format": "agreid-labels/1", "groups": {"hair": ["long", "short"]}}))
    with pytest.raises(ValueError, match=r"no labels for the group\(s\) \['upper_colour'\]"):
        read_labels(str(bad), ["upper_colour", "hair"])
