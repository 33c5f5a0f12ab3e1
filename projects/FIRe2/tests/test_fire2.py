"""FIRe² (projects/FIRe2): FFM clustering, the attribute-aware loss, FAR's recomposition against
hand-computed references, the optimizer swap, and a few training iterations / one tiny epoch."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import fire2  # noqa: E402,F401  (registers FIRe2)
from fastreid.modeling.meta_arch import build_model  # noqa: E402
from fire2.config import get_fire2_cfg, load_fire2_config  # noqa: E402
from fire2.engine import FIRe2Trainer, swap_parameter  # noqa: E402
from fire2.engine.hooks import FIRe2EpochHook  # noqa: E402
from fire2.engine.ffm_report import ffm_report  # noqa: E402
from fire2.modeling import (attribute_aware_loss, cluster_identities, k_reciprocal_jaccard,  # noqa: E402
                            recompose, sample_partners, stripe_partners)
from rganet_plugin.config.setup import ConfigError  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------------------------- FFM
def test_clustering_never_crosses_identities():
    rng = np.random.default_rng(0)
    a, b = _unit([1, 0, 0, 0]), _unit([0, 1, 0, 0])
    noise = lambda: rng.normal(0, 0.01, 4).astype(np.float32)  # noqa: E731
    # identity 0: two outfits (a, b); identity 1: one look identical to identity 0's outfit a
    feats = [a + noise() for _ in range(3)] + [b + noise() for _ in range(3)] + \
            [a + noise() for _ in range(4)]
    pids = [0] * 6 + [1] * 4
    # k1 = 4: the image and its 3 nearest (the public code's k1 columns)
    labels, centroids, mask = cluster_identities(torch.tensor(np.stack(feats)), pids, k1=4, k2=2,
                                                 eps=0.4)
    assert labels.shape == (10,) and centroids.shape == (3, 4) and mask.shape == (2, 3)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:6])) == 1 and labels[0] != labels[3]
    assert set(labels[6:]) == {2}  # same features as identity 0's outfit a, yet its own class
    assert mask.tolist() == [[True, True, False], [False, False, True]]
    assert sorted(set(labels.tolist())) == [0, 1, 2]
    np.testing.assert_allclose(centroids[2].numpy(), a, atol=0.02)


def test_jaccard_distance_properties_and_single_image():
    f = np.stack([_unit([1, 0.1 * i, 0]) for i in range(5)])
    d = k_reciprocal_jaccard(f, k1=3, k2=2)
    assert d.shape == (5, 5) and np.allclose(np.diag(d), 0) and (d >= 0).all() and (d <= 1).all()
    assert k_reciprocal_jaccard(f[:1]).tolist() == [[0.0]]
    labels, centroids, mask = cluster_identities(torch.tensor(f[:1]), [0])
    assert labels.tolist() == [0] and centroids.shape == (1, 3) and mask.tolist() == [[True]]


def _public_jaccard(f, k1, k2):
    """The paper's compute_jaccard_distance, transcribed without faiss: a k1-column neighbour
    list, every later slice taken from it."""
    n = len(f)
    dist = np.maximum(2 - 2 * f @ f.T, 0)
    initial_rank = np.argsort(dist, axis=1, kind="stable")[:, :k1]

    def neigh(i, k):
        fwd = initial_rank[i, :k + 1]
        return fwd[np.where(initial_rank[fwd, :k + 1] == i)[0]]

    v = np.zeros((n, n), np.float32)
    for i in range(n):
        rec = neigh(i, k1)
        exp = rec
        for c in rec:
            cr = neigh(c, int(np.around(k1 / 2)))
            if len(np.intersect1d(cr, rec)) > 2 / 3 * len(cr):
                exp = np.append(exp, cr)
        exp = np.unique(exp)
        w = np.exp(-dist[i, exp])
        v[i, exp] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[initial_rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.stack([1 - np.minimum(v[i], v).sum(1) / (2 - np.minimum(v[i], v).sum(1)) for i in range(n)])
    return np.clip(jac, 0, None)


@pytest.mark.parametrize("k1, k2", [(1, 1), (3, 1), (4, 3), (6, 3), (20, 6)])
def test_jaccard_takes_k1_columns_as_the_public_code(k1, k2):
    """Issue 22 item 3: the neighbour list has k1 columns (the image and its k1 - 1 nearest),
    not k1 + 1; equal to the public code's distance on random features."""
    f = np.random.default_rng(k1).normal(size=(24, 8)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    got = k_reciprocal_jaccard(f, k1=k1, k2=k2)
    want = _public_jaccard(f, k1, k2)
    np.fill_diagonal(want, 0)
    np.testing.assert_allclose(got, want, atol=1e-5)
    if k1 == 1:  # a one-column list holds only the image itself: no two images share a neighbour
        assert (got + np.eye(24) == 1).all()


def test_attribute_aware_loss_by_hand():
    cos = torch.tensor([[0.5, 0.2, -0.1], [0.1, 0.3, 0.4]])
    fg = torch.tensor([0, 2])
    pos = torch.tensor([[True, True, False], [False, False, True]])
    s, eps = 2.0, 0.1
    got = attribute_aware_loss(cos, fg, pos, scale=s, epsilon=eps)

    def logp(row, k):
        z = [math.exp(s * x) for x in row]
        return math.log(z[k] / sum(z))

    r0, r1 = cos.tolist()
    l0 = -((1 - eps + eps / 2) * logp(r0, 0) + eps / 2 * logp(r0, 1))
    l1 = -(1.0 * logp(r1, 2))  # one class for the person: all the target on it
    assert got.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


# ------------------------------------------------------------------------------------- FAR
def test_recompose_by_hand():
    x = torch.tensor([[[[1.0, 3.0], [10.0, 14.0]]], [[[2.0, 2.0], [0.0, 4.0]]]])  # B=2 C=1 H=2 W=2
    out = recompose(x, torch.tensor([1, 0]), parts=2)
    # top stripe of sample 0: mean 2, var (unbiased) 2; sample 1: mean 2, var 0
    s0, s1 = math.sqrt(2 + 1e-6), math.sqrt(1e-6)
    assert out[0, 0, 0].tolist() == pytest.approx([(1 - 2) / s0 * s1 + 2, (3 - 2) / s0 * s1 + 2], abs=1e-4)
    # bottom stripe of sample 0 takes sample 1's (mean 2, var 8)
    b0, b1 = math.sqrt(8 + 1e-6), math.sqrt(8 + 1e-6)
    assert out[0, 0, 1].tolist() == pytest.approx([(10 - 12) / b0 * b1 + 2, (14 - 12) / b0 * b1 + 2], abs=1e-4)
    assert out[1, 0, 1].tolist() == pytest.approx([(0 - 2) / b1 * b0 + 12, (4 - 2) / b1 * b0 + 12], abs=1e-4)


def test_partners_have_another_label():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    for _ in range(20):
        idx = sample_partners(labels, times=2, generator=g)
        assert idx.shape == (12,) and (labels[idx] != labels.repeat(2)).all()
    assert sample_partners(torch.tensor([3, 3]), 1).tolist() == [0, 1]  # nobody else: itself


def test_far_draws_a_new_partner_per_stripe():
    """Issue 22 item 2: as the public code, each stripe's style comes from its own partner."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(8)
    p = stripe_partners(labels, parts=2, times=1, generator=g)
    assert p.shape == (2, 8) and (p != labels).all() and (p[0] != p[1]).any()
    x = torch.randn(8, 3, 4, 2)
    out = recompose(x, p, parts=2)
    # stripe k of the output equals a recomposition with the shared partner p[k]
    for k in range(2):
        ref = recompose(x, p[k], parts=2)
        assert torch.allclose(out[:, :, 2 * k:2 * k + 2], ref[:, :, 2 * k:2 * k + 2])
    with pytest.raises(ValueError, match="3 rows for 2 stripes"):
        recompose(x, torch.zeros(3, 8, dtype=torch.long), parts=2)


def test_fire2_model_recomposes_with_a_partner_per_stripe(monkeypatch):
    import fire2.modeling.meta_arch as ma
    seen = []
    real = ma.recompose
    monkeypatch.setattr(ma, "recompose", lambda fmap, partners, parts: seen.append(partners) or real(fmap, partners, parts))
    cfg = _tiny_cfg(**{"MODEL.HEADS.NUM_CLASSES": "4", "MODEL.FIRE2.FFM.ENABLED": "False"})
    model = build_model(cfg)
    model.train()
    model.set_epoch(cfg.MODEL.FIRE2.FFM.START_EPOCH)
    out = model({"images": torch.rand(8, 3, 64, 32) * 255, "targets": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])})
    assert "loss_far" in out and seen[0].shape == (2, 8)


def test_ffm_report_against_hand_computed_agreement():
    # identity 0: outfits a a b b, clusters 0 0 1 2 (outfit b split); identity 1: one outfit, one cluster
    pids = [0, 0, 0, 0, 1, 1]
    clothes = ["a", "a", "b", "b", "c", "c"]
    labels = [0, 0, 1, 2, 3, 3]
    r = ffm_report(labels, pids, clothes)
    # ARI of identity 0: index 1 (one pair together in both), expected 2*1/6, max (2+1)/2
    ari0 = (1 - 1 / 3) / (1.5 - 1 / 3)
    assert r["ari"] == pytest.approx((ari0 + 1.0) / 2)
    assert r["purity"] == pytest.approx(1.0)  # no cluster mixes outfits
    assert r["inverse_purity"] == pytest.approx(5 / 6)  # one image of b is off its majority cluster
    assert (r["num_classes"], r["num_ids"], r["clusters_per_id"], r["outfits_per_id"]) == (4, 2, 2.0, 1.5)
    merged = ffm_report([0, 0, 0, 0, 1, 1], pids, clothes)  # clusters = identities: outfits merged
    assert merged["ari"] == pytest.approx(0.5) and merged["purity"] == pytest.approx(4 / 6)
    assert set(ffm_report(labels, pids, None)) == {"num_ids", "num_classes", "clusters_per_id"}
    with pytest.raises(ValueError, match="clothes ids"):
        ffm_report(labels, pids, clothes[:-1])


# ------------------------------------------------------------------------------------- engine
def _tiny_cfg(**extra):
    cfg = get_fire2_cfg()
    cfg.merge_from_file(os.path.join(REPO, "configs", "Demo", "fire2_demo.yml"))
    cfg.MODEL.BACKBONE.DEPTH = "18x"
    cfg.MODEL.BACKBONE.FEAT_DIM = 512
    cfg.MODEL.HEADS.NUM_CLASSES = 2
    for k, v in extra.items():
        cfg.merge_from_list([k, v])
    return cfg


def test_optimizer_swap_keeps_group_and_drops_state():
    old, new, other = (torch.nn.Parameter(torch.zeros(2, 3)), torch.nn.Parameter(torch.ones(4, 3)),
                       torch.nn.Parameter(torch.zeros(1)))
    opt = torch.optim.Adam([{"params": [old], "lr": 0.5}, {"params": [other], "lr": 0.1}])
    old.grad = torch.ones_like(old)
    opt.step()
    swap_parameter(opt, old, new)
    assert opt.param_groups[0]["params"] == [new] and opt.param_groups[0]["lr"] == 0.5
    assert old not in opt.state
    with pytest.raises(RuntimeError, match="not in the optimizer"):
        swap_parameter(opt, old, new)


def test_training_iterations_lower_every_loss():
    torch.manual_seed(0)
    cfg = _tiny_cfg()
    model = build_model(cfg)
    model.train()
    model.set_epoch(cfg.MODEL.FIRE2.FFM.START_EPOCH)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 64, 32, generator=g) * 255
    targets = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    paths = [f"/x/{i}.png" for i in range(8)]
    fg = [0, 0, 1, 1, 2, 2, 3, 3]
    with torch.no_grad():
        model.eval()
        feats = model({"images": images})
        model.train()
    _, centroids, mask = cluster_identities(feats, targets.numpy())
    centroids = torch.stack([feats[[2 * c, 2 * c + 1]].mean(0) for c in range(4)])
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    model.set_fine_grained(paths, fg, centroids, mask)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    batch = {"images": images, "targets": targets, "img_paths": paths}
    history = []
    for _ in range(4):
        losses = model(batch)
        history.append({k: v.item() for k, v in losses.items()})
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert set(history[0]) == {"loss_cls", "loss_triplet", "loss_ffm", "loss_far"}
    assert sum(history[-1].values()) < sum(history[0].values())
    for key in ("loss_cls", "loss_ffm"):
        assert history[-1][key] < history[0][key], key


def test_config_keys_and_errors(tmp_path):
    cfg = load_fire2_config(os.path.join(REPO, "configs", "LTCC", "fire2.yml"))
    f = cfg.MODEL.FIRE2
    assert (f.FFM.K1, f.FFM.K2, f.FFM.EPS, f.FFM.SCALE, f.FFM.EPSILON, f.FAR.WEIGHT, f.FFM.START_EPOCH) \
        == (20, 6, 0.4, 16.0, 0.1, 0.3, 25)
    assert cfg.MODEL.BACKBONE.LAST_STRIDE == 1 and cfg.MODEL.META_ARCHITECTURE == "FIRe2"
    with pytest.raises(ConfigError, match="MODEL.FIRE2.POOL"):
        load_fire2_config(os.path.join(REPO, "configs", "LTCC", "fire2.yml"), ["MODEL.FIRE2.POOL", "gem"])
    bad = tmp_path / "bad.yml"
    bad.write_text("MODEL:\n  FIRE2:\n    FFM:\n      KK1: 3\n")
    with pytest.raises(ConfigError, match="KK1"):
        load_fire2_config(str(bad))


def _tiny_epoch(tmp_path):
    """Overrides for one training epoch and its evaluation on a tiny generated SyntheticLTCC."""
    return {
        "DATASETS.ROOT": str(tmp_path / "data"), "OUTPUT_DIR": str(tmp_path / "out"),
        "DATASETS.SYNTHETIC.NUM_TRAIN_IDS": 4, "DATASETS.SYNTHETIC.NUM_TEST_IDS": 3,
        "DATASETS.SYNTHETIC.IMAGES_PER_ID": 4, "DATASETS.SYNTHETIC.OUTFITS_PER_ID": 2,
        "DATASETS.SYNTHETIC.HEIGHT": 64, "DATASETS.SYNTHETIC.WIDTH": 32,
        "INPUT.SIZE_TRAIN": [64, 32], "INPUT.SIZE_TEST": [64, 32],
        "SOLVER.IMS_PER_BATCH": 8, "DATALOADER.NUM_INSTANCE": 2, "SOLVER.MAX_EPOCH": 1,
        "SOLVER.CHECKPOINT_PERIOD": 1, "TEST.EVAL_PERIOD": 1, "TEST.IMS_PER_BATCH": 16}


def test_one_tiny_epoch_with_ffm_and_cloth_changing_evaluation(tmp_path):
    cfg = _tiny_cfg(**_tiny_epoch(tmp_path), **{
        "MODEL.FIRE2.FFM.START_EPOCH": 0, "MODEL.FIRE2.TRIPLET_START_EPOCH": 0})
    cfg.MODEL.HEADS.NUM_CLASSES = 0
    trainer = FIRe2Trainer(cfg)
    trainer.train()
    model = trainer.model
    assert model.ffm_active and 4 <= model.ffm_classifier.num_classes <= 16
    res = trainer._last_eval_results  # one test set: fast-reid returns its dict itself
    assert 0.0 <= res["cloth_changing/mAP"] <= 100.0 and res["cloth_changing/num_queries"] > 0
    assert res["Rank-1"] == res["standard/Rank-1"]
    # what FFM found reaches the output folder and metrics.json (with the generator's clothes ids)
    with open(tmp_path / "out" / "fire2_ffm.json") as f:
        found = [json.loads(line) for line in f]
    assert len(found) == 1 and found[0]["epoch"] == 0
    assert found[0]["num_classes"] == model.ffm_classifier.num_classes and found[0]["outfits_per_id"] == 2.0
    assert -1.0 <= found[0]["ari"] <= 1.0 and 0.0 < found[0]["purity"] <= 1.0
    with open(tmp_path / "out" / "metrics.json") as f:
        logged = [json.loads(line) for line in f]
    assert any(m.get("fire2/ffm_num_classes") == found[0]["num_classes"] for m in logged)
    with open(tmp_path / "out" / "best_evaluation.json") as f:  # the released code's rule
        best = json.load(f)
    key = next(k for k in best if k.endswith("cloth_changing/mAP"))
    assert best[key] == {"value": pytest.approx(res["cloth_changing/mAP"]), "epoch": 0}


def test_best_evaluation_keeps_each_metrics_own_maximum(tmp_path):
    from fastreid.utils.events import EventStorage
    from fire2.engine.hooks import BestEvaluationHook

    class _T:
        epoch = 0
    hook = BestEvaluationHook(str(tmp_path))
    hook.trainer = _T()
    with EventStorage(0) as storage:
        hook.trainer.storage = storage
        for epoch, (r1, m, chance) in enumerate([(50.0, 30.0, 9.0), (60.0, 20.0, 9.0), (55.0, 25.0, 9.0)]):
            hook.trainer.epoch = epoch
            storage.iter = epoch
            storage.put_scalars(**{"X/cloth_changing/Rank-1": r1, "X/cloth_changing/mAP": m,
                                   "X/cloth_changing/chance mAP": chance}, smoothing_hint=False)
            hook.after_epoch()
        hook.after_train()
    best = json.load(open(tmp_path / "best_evaluation.json"))
    assert best == {"X/cloth_changing/Rank-1": {"value": 60.0, "epoch": 1},
                    "X/cloth_changing/mAP": {"value": 30.0, "epoch": 0}}


def test_fastreid_baseline_trains_through_fire2s_entry_point_with_the_cc_protocol(tmp_path):
    """BoT's recipe (fast-reid's Baseline meta-arch) on the cloth-changing set through FIRe²'s
    trainer: no FFM hook, and the evaluation reports the clothes-changing protocol."""
    overrides = {**_tiny_epoch(tmp_path), "MODEL.BACKBONE.DEPTH": "18x",
                 "MODEL.BACKBONE.FEAT_DIM": 512, "DATASETS.NAMES": "('SyntheticLTCC',)",
                 "DATASETS.TESTS": "('SyntheticLTCC',)", "DATALOADER.NUM_WORKERS": 0,
                 "MODEL.DEVICE": "cpu"}
    cfg = load_fire2_config(os.path.join(REPO, "configs", "Demo", "bagtricks_R50_demo.yml"),
                            [x for k, v in overrides.items() for x in (k, str(v))])
    assert cfg.MODEL.META_ARCHITECTURE == "Baseline"
    trainer = FIRe2Trainer(cfg)
    assert not any(isinstance(h, FIRe2EpochHook) for h in trainer._hooks)
    trainer.train()
    res = trainer._last_eval_results
    assert res["cloth_changing/num_queries"] > 0 and 0.0 <= res["cloth_changing/mAP"] <= 100.0


def test_ffm_clusters_the_training_set_when_precise_bn_reads_another(tmp_path):
    """fast-reid's PreciseBN hook builds a loader of TEST.PRECISE_BN.DATASET through
    build_train_loader: FFM's features and clothes ids stay those of DATASETS.NAMES."""
    from fastreid.engine.hooks import PreciseBN

    cfg = _tiny_cfg(**{
        **_tiny_epoch(tmp_path), "TEST.PRECISE_BN.ENABLED": True,
        "TEST.PRECISE_BN.DATASET": "SyntheticOccludedDuke", "TEST.PRECISE_BN.NUM_ITER": 1,
        "DATASETS.SYNTHETIC.OUTFITS_PER_ID": 0,  # OccludedDuke has one outfit per identity
        "DATASETS.SYNTHETIC.IMAGES_PER_ID": 6})
    trainer = FIRe2Trainer(cfg)
    ltcc = {it[0] for it in trainer.train_items}
    assert ltcc and all("LTCC" in p for p in ltcc)
    assert {it[0] for it in trainer._feature_loader().dataset.img_items} == ltcc
    ffm = next(h for h in trainer._hooks if isinstance(h, FIRe2EpochHook))
    assert set(ffm._clothes) == ltcc
    pbn = next(h for h in trainer._hooks if isinstance(h, PreciseBN))
    assert not {it[0] for it in pbn._data_loader.dataset.img_items} & ltcc


def test_entry_point_runs_as_a_module():
    """``python -m fire2.tools`` is FIRe²'s entry point (what rganet_analysis.compare runs, with
    the packages this process imported on PYTHONPATH): no repository file is executed."""
    from rganet_analysis.compare import entry_env

    r = subprocess.run([sys.executable, "-m", "fire2.tools", "--help"], env=entry_env("fire2.tools"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--config-file" in r.stdout


def test_evaluator_reports_the_optional_protocols_and_refuses_negative_repeats(caplog):
    """Issue 22 item 6: TEST.CLOTH_CHANGING.SAME_CLOTHES_ONLY and SINGLE_SHOT_REPEATS add their
    entries; the chance level of each protocol is logged beside its result."""
    from fire2.evaluation.cloth_changing import ClothChangingEvaluator
    demo = os.path.join(REPO, "configs", "Demo", "fire2_demo.yml")
    cfg = load_fire2_config(demo, ["TEST.CLOTH_CHANGING.SAME_CLOTHES_ONLY", "True",
                                   "TEST.CLOTH_CHANGING.SINGLE_SHOT_REPEATS", "3"])
    paths = [f"{i}.jpg" for i in range(8)]
    clothes = dict(zip(paths, ["a", "c", "a", "b", "c", "d", "a", "c"]))
    ev = ClothChangingEvaluator(cfg, 2, clothes)
    ev.process({"targets": torch.tensor([0, 1, 0, 0, 1, 1, 0, 1]), "camids": torch.arange(8),
                "img_paths": paths}, torch.randn(8, 8))
    with caplog.at_level("INFO", logger="fire2.evaluation.cloth_changing"):
        res = ev.evaluate()
    for key in ("same_clothes_only/Rank-1", "single_shot_standard/mAP", "cloth_changing/chance mAP",
                "single_shot_cloth_changing/Rank-1"):
        assert key in res, key
    assert "cloth_changing: Rank-1" in caplog.text and "(chance " in caplog.text
    with pytest.raises(ConfigError, match="SINGLE_SHOT_REPEATS must be >= 0"):
        load_fire2_config(demo, ["TEST.CLOTH_CHANGING.SINGLE_SHOT_REPEATS", "-1"])


def test_cloth_changing_evaluator_says_why_it_has_no_clothes_metrics(caplog):
    """A set without clothes labels (e.g. an RGANet dataset) gets the standard metrics and a
    warning saying why there are no clothes-changing ones (issue 21, item 8)."""
    from rganet_plugin.config import load_config
    from fire2.evaluation.cloth_changing import ClothChangingEvaluator

    cfg = load_config(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))), "configs", "Demo", "rganet_demo.yml"))
    paths = [f"{i}.jpg" for i in range(6)]
    ev = ClothChangingEvaluator(cfg, 2, {p: None for p in paths})
    ev.process({"targets": torch.tensor([0, 1, 0, 1, 0, 1]), "camids": torch.arange(6),
                "img_paths": paths}, torch.randn(6, 8))
    with caplog.at_level("WARNING"):
        res = ev.evaluate()
    assert "Rank-1" in res and not any(k.startswith("cloth_changing/") for k in res)
    assert "6 of the 6 test images have no clothes label" in caplog.text
