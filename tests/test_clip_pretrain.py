"""The small CLIP pre-trained here: its data (captions only), its training, its shipped weights."""
import hashlib
import os

import numpy as np
import pytest
import torch

from rganet_plugin.synthetic.captions import colour_name
from rganet_plugin.synthetic import people as gen
from rganet_plugin.synthetic.image_text import _PERSON_STREAM, render_pair
from rganet_plugin.synthetic.clip_pretrain import (PretrainSettings, PretrainStateMismatch,
                                                pretrain_clip)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "weights", "RGANet-Person-ViT.safetensors")


def test_colour_names():
    assert colour_name((0, 0, 0)) == "black"
    assert colour_name((255, 255, 255)) == "white"
    assert colour_name((128, 128, 128)) == "grey"
    assert colour_name((230, 20, 20)) == "red"
    assert colour_name((20, 40, 230)) == "blue"
    assert colour_name((20, 200, 40)) == "green"
    assert colour_name((240, 230, 40)) == "yellow"


def test_captions_describe_what_is_in_view():
    """A part out of the frame or behind the occluder is never described (only said to be
    hidden); a caption names no identity."""
    views = {"top": 0, "bottom": 0, "occluded": 0}
    said_hidden = 0
    for i in range(60):
        view = ("top", "bottom", "occluded")[i % 3]
        p = render_pair(i, seed=5, view=view, num_captions=2)
        vis = p["part_visible"]
        for cap in p["captions"]:
            assert cap.endswith(".") and len(cap.split()) >= 4
            if vis["head"] < 0.5:
                assert "hair" not in cap and "cap " not in cap
            if vis["foot"] < 0.5:
                assert "shoes" not in cap
            assert not any(tok.isdigit() for tok in cap.split())  # no ids
        if view == "top":
            assert vis["head"] == 1.0 and vis["foot"] < 0.5
        if view == "bottom":
            assert vis["head"] < 0.5 and vis["foot"] > 0.5
        assert p["image"].shape == (256, 128, 3) and p["label"].shape == (256, 128)
        views[view] += 1
        said_hidden += any(w in c for c in p["captions"] for w in ("hidden", "out of the frame",
                                                                  "not in the picture", "covers",
                                                                  "blocked", "in view"))
    assert said_hidden >= 10  # hidden parts are said to be hidden, in several wordings


def test_pretraining_people_are_not_demo_identities():
    """Separate random streams: no pre-training person has the appearance of a demo identity
    (any of the 8999 possible pids of seed 0)."""
    def key(ident):
        return (ident["upper"], ident["lower"], ident["shoes"], ident["build"], ident["height"])

    demo = {key(gen._identity(np.random.default_rng([0, 1, pid]))) for pid in range(1, 9000)}
    pre = [key(gen._identity(np.random.default_rng([0, _PERSON_STREAM, i]))) for i in range(2000)]
    assert len(set(pre)) == len(pre) and not demo.intersection(pre)


def test_a_few_steps_lower_the_contrastive_loss_and_resume(tmp_path):
    s = PretrainSettings(model="RGANet-Tiny-ViT", steps=16, batch_size=16, num_pairs=32, lr=2e-3,
                         warmup=2, weight_decay=0.0, eval_pairs=16, ckpt_every=8)
    report = pretrain_clip(s, str(tmp_path / "out"), str(tmp_path / "cache"), progress=False,
                           eval_random=False)
    hist = torch.load(tmp_path / "out" / "pretrain_state.pt", weights_only=False)["history"]
    assert len(hist) == 16
    assert np.mean(hist[-4:]) < np.mean(hist[:4]) - 0.1
    weights = tmp_path / "out" / "RGANet-Tiny-ViT.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert report["sha256"] == digest
    assert (tmp_path / "out" / "RGANet-Tiny-ViT.safetensors.sha256").read_text().startswith(digest)
    assert 0.0 <= report["trained"]["part_miou"] <= 1.0
    # the same command again resumes from the saved state (nothing left to train): same weights
    # (safetensors orders its header's metadata at random, so compare tensors, not bytes)
    from safetensors.torch import load_file

    first = load_file(str(weights))
    assert all(v.dtype in (torch.float16, torch.int64) for v in first.values())
    os.remove(weights)
    again = pretrain_clip(s, str(tmp_path / "out"), str(tmp_path / "cache"), progress=False,
                          eval_random=False)
    second = load_file(str(weights))
    assert again["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    # other settings are refused, naming what differs
    with pytest.raises(PretrainStateMismatch, match="lr"):
        pretrain_clip(PretrainSettings(**{**s.__dict__, "lr": 1e-4}), str(tmp_path / "out"),
                      str(tmp_path / "cache"), progress=False, eval_random=False)


def test_bad_arguments_are_refused(tmp_path, capsys):
    from rganet_plugin.tools.__main__ import main

    with pytest.raises(SystemExit):
        main(["pretrain-clip", "--out", str(tmp_path), "--steps", "0"])
    assert "--steps must be >= 1" in capsys.readouterr().err


def test_shipped_weights_match_their_sha256_and_load_through_the_config_keys():
    from safetensors import safe_open

    from rganet_plugin.config import load_config
    from rganet_plugin.modeling.backbones.clip_vit import build_clip_vit_backbone
    from rganet_plugin.modeling.backbones.clip_text import build_text_tower
    from rganet_plugin.modeling.backbones.clip_weights import shared_clip_models

    digest = hashlib.sha256(open(WEIGHTS, "rb").read()).hexdigest()
    assert open(WEIGHTS + ".sha256").read().split()[0] == digest
    assert os.path.getsize(WEIGHTS) < 20 * 2 ** 20
    cfg = load_config(os.path.join(ROOT, "configs", "Demo", "Base-Demo.yml"))
    assert cfg.MODEL.BACKBONE.PRETRAIN and cfg.MODEL.BACKBONE.PRETRAIN_PATH.endswith(
        "RGANet-Person-ViT.safetensors")
    cfg.defrost()
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = WEIGHTS  # the config's path is relative to the repo root
    with shared_clip_models():  # the text tower of the backbone's own CLIP
        backbone = build_clip_vit_backbone(cfg)
        own_tower = build_text_tower(cfg)
    with safe_open(WEIGHTS, "pt") as f:
        meta = f.metadata()
        conv = f.get_tensor("visual.conv1.weight")
        tok = f.get_tensor("token_embedding.weight")
    assert torch.equal(backbone.conv1.weight.data, conv.float())
    assert torch.equal(own_tower.token_embedding.weight.data, tok.float())
    assert meta["model"] == "RGANet-Person-ViT" and "pretrain-clip" in meta["command"]
    # the text encoder's own path (a non-CLIP backbone's text tower) loads the same file
    cfg.MODEL.RGANET.TEXT_ENCODER.NAME = "RGANet-Person-ViT"
    cfg.MODEL.RGANET.TEXT_ENCODER.PRETRAIN_PATH = WEIGHTS
    tower = build_text_tower(cfg)
    assert torch.equal(tower.token_embedding.weight.data, tok.float())


def test_shipped_model_retrieves_fresh_people_from_their_captions(tmp_path):
    """Zero-shot on people generated now (a block of the held-apart stream no check used):
    caption-to-image R@1 far above chance, and above the same architecture with random weights."""
    import open_clip

    from rganet_plugin.synthetic.clip_pretrain import build_model, images_to_tensor
    from rganet_plugin.synthetic.zero_shot import retrieval, text_features
    from rganet_plugin.modeling.backbones.clip_weights import load_clip_weights

    n = 64
    pairs = [render_pair(30_000_000 + i, seed=0, view="full", num_captions=1) for i in range(n)]
    images = images_to_tensor(np.stack([p["image"] for p in pairs]))
    texts = [p["captions"][0] for p in pairs]
    scores = {}
    for which in ("random", "shipped"):
        model = build_model("RGANet-Person-ViT", seed=0)
        if which == "shipped":
            load_clip_weights(model, WEIGHTS)
        model.eval()
        with torch.no_grad():
            img = model.encode_image(images)
        scores[which] = retrieval(img, text_features(model, "RGANet-Person-ViT", texts))
    chance = 1.0 / n
    assert scores["shipped"]["text_to_image_R@1"] >= 8 * chance
    assert scores["shipped"]["text_to_image_R@5"] >= 0.5
    assert scores["random"]["text_to_image_R@1"] < 4 * chance


def test_leftovers_of_a_killed_rendering_are_removed(tmp_path):
    import subprocess

    from rganet_plugin.synthetic.image_text import build_pairs

    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = tmp_path / f"pairs-abc.tmp-{dead.pid}"
    leftover.mkdir()
    live = tmp_path / f"pairs-def.tmp-{os.getpid()}"  # a live process's: kept
    live.mkdir()
    pairs = build_pairs(str(tmp_path), 4, seed=1, progress=False)
    assert len(pairs) == 4 and not leftover.exists() and live.exists()
