"""Pre-training pairs that tie part words to looks (free placement), the objectives of
``pretrain-clip`` (PACL, multiple-instance max, the part-tag term) against hand computations, and
the per-view zero-shot checks (issue 19)."""
import hashlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rganet_plugin.synthetic.image_text import render_pair
from rganet_plugin.synthetic.clip_pretrain import (PretrainSettings, mil_logits, pacl_logits,
                                                part_tag_loss, pretrain_clip)


def test_natural_pairs_are_unchanged():
    # pairs of the shipped weights' placement, as rendered before free placement existed
    # (main at d288fcd): the shipped weights stay reproducible
    h = hashlib.sha256()
    for i in range(10):
        for v in ("full", "occluded", "top", "bottom", "cutout"):
            p = render_pair(i, seed=3, height=128, width=64, view=v, num_captions=1)
            h.update(p["image"].tobytes())
            h.update(p["label"].tobytes())
            h.update(p["captions"][0].encode())
    assert h.hexdigest() == "6a1d65ca041901bb9ab83a141d1139bd01595d5cb1dff7c3b2af8915f4dd6ee9"
    assert PretrainSettings().key().keys() >= {"model", "steps"}
    assert not {"placement", "objective", "part_tag"} & PretrainSettings().key().keys()


def _centre_row(label, part):
    rows = np.nonzero((label == part).any(axis=1))[0]
    return (rows[0] + rows[-1]) / 2 / label.shape[0], (rows[-1] + 1 - rows[0]) / label.shape[0]


def test_free_placement_moves_and_scales_the_parts():
    natural, free = [], []
    for i in range(40):
        for placement, out in (("natural", natural), ("free", free)):
            p = render_pair(i, seed=1, height=128, width=64, view="cutout", num_captions=1,
                            placement=placement)
            part = int(np.bincount(p["label"].ravel(), minlength=5)[1:].argmax()) + 1
            assert set(np.unique(p["label"])) == {0, part}  # one part alone
            key = ("head", "upper", "lower", "foot")[part - 1]
            assert p["part_visible"][key] == pytest.approx(1.0, abs=0.02)
            out.append((part, *_centre_row(p["label"], part)))
    for part in (1, 2, 3, 4):
        nat = np.array([c for k, c, _ in natural if k == part])
        fre = np.array([c for k, c, _ in free if k == part])
        if len(nat) >= 3 and len(fre) >= 3:
            # natural: the part at its own rows; free: anywhere
            assert nat.std() < 0.05 and fre.std() > 0.1
    heights = [hgt for _, _, hgt in free]
    assert min(heights) < 0.35 and max(heights) > 0.6  # zoomed to 25-80 % of the image
    for i in range(12):
        top = render_pair(i, seed=2, height=128, width=64, view="top", placement="free")
        bottom = render_pair(i, seed=2, height=128, width=64, view="bottom", placement="free")
        assert top["part_visible"]["head"] > 0.9 and top["part_visible"]["foot"] < 0.1
        assert bottom["part_visible"]["foot"] > 0.9 and bottom["part_visible"]["head"] < 0.1
        for cap in top["captions"]:
            assert "shoes" not in cap
    with pytest.raises(ValueError, match="placement"):
        render_pair(0, placement="sideways")


def test_pacl_and_mil_logits_against_loops():
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(3, 5, 4, generator=g), dim=-1)   # 3 images x 5 patches
    t = F.normalize(torch.randn(2, 4, generator=g), dim=-1)      # 2 captions
    pacl, mil = pacl_logits(z, t, 7.0, tau=0.5), mil_logits(z, t, 7.0)
    assert pacl.shape == mil.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            s = [float(z[i, p] @ t[j]) for p in range(5)]
            assert float(mil[i, j]) == pytest.approx(7.0 * max(s), abs=1e-5)
            w = np.exp(np.array(s) / 0.5)
            w /= w.sum()
            pooled = sum(w[p] * z[i, p].numpy() for p in range(5))
            cos = pooled @ t[j].numpy() / np.linalg.norm(pooled)
            assert float(pacl[i, j]) == pytest.approx(7.0 * cos, abs=1e-5)


def test_part_tag_loss_against_a_hand_computation():
    z = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])                 # one image, two patches
    parts = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])             # part 0 matches patch 0
    shown = torch.tensor([[1.0, 0.0]])
    loss = part_tag_loss(z, parts, shown, torch.tensor(2.0), torch.tensor(-1.0))
    # best cosines: part 0 -> 1, part 1 -> max(-1, 0) = 0; logits 2*1-1 = 1 and 2*0-1 = -1
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-1))) / 2
    assert float(loss) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("objective,part_tag", [("pacl", 1.0), ("mil", 0.0), ("clip", 0.5)])
def test_objectives_train_resume_and_report_per_view(tmp_path, objective, part_tag):
    s = PretrainSettings(model="RGANet-Tiny-ViT", steps=12, batch_size=16, num_pairs=32,
                         lr=2e-3, warmup=2, weight_decay=0.0, eval_pairs=16, ckpt_every=6,
                         placement="free", objective=objective, part_tag=part_tag,
                         readout="value" if objective == "mil" else "tokens")
    out, cache = str(tmp_path / "out"), str(tmp_path / "cache")
    report = pretrain_clip(s, out, cache, progress=False, eval_random=False)
    state = torch.load(tmp_path / "out" / "pretrain_state.pt", weights_only=False)
    hist = state["history"]
    assert len(hist) == 12 and all(np.isfinite(hist))
    assert np.mean(hist[-3:]) < np.mean(hist[:3])
    assert state["settings"].get("objective", "clip") == objective  # left out at its default
    assert state["settings"]["placement"] == "free"
    assert "readout" not in state["settings"]  # the zero-shot read-out is not part of training
    if part_tag:
        assert set(state["objective"]) == {"tag_scale", "tag_bias"}
    tr = report["trained"]
    assert set(tr["views"]) == {"full", "top", "bottom", "occluded"}
    for v in tr["views"].values():
        assert 0 <= v["prompt_miou"] <= 1 and 0 <= v["stripes_miou"] <= 1
    assert 0 <= tr["linear_probe_miou"] <= 1 and tr["readout"] == s.readout
    # resuming the finished run writes the same weights (tensors and metadata: safetensors
    # orders the header's metadata differently from call to call, so not the same bytes)
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = str(tmp_path / "out" / "RGANet-Tiny-ViT.safetensors")
    first, meta = load_file(path), safe_open(path, "pt").metadata()
    pretrain_clip(s, out, cache, progress=False, eval_random=False)
    second = load_file(path)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert safe_open(path, "pt").metadata() == meta


@pytest.mark.parametrize("flag,value,msg", [("--objective", "infonce", "--objective must be one of"),
                                            ("--placement", "sideways", "--placement must be one of"),
                                            ("--part-tag", "-1", "--part-tag must be >= 0"),
                                            ("--readout", "values", "--readout must be one of")])
def test_pretrain_clip_refuses_unknown_choices_in_one_line(tmp_path, capsys, flag, value, msg):
    from rganet_plugin.synthetic.command import main

    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path / "out"), flag, value])
    assert e.value.code == 2 and msg in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything is written
