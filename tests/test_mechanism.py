"""The mechanism measurements: metrics against hand-computed cases, and the benchmark command end
to end on a tiny setting."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from rganet_plugin.synthetic.region_metrics import (auroc, foreground_iou, part_iou,
                                                     patch_to_pixels)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_auroc_hand_computed_with_ties():
    # positives 0.9 and 0.4 against negatives 0.8, 0.4, 0.1:
    # 0.9 beats all three (3); 0.4 loses to 0.8 (0), ties 0.4 (0.5), beats 0.1 (1): 4.5 / 6
    scores = [0.9, 0.8, 0.4, 0.4, 0.1]
    pos = [True, False, True, False, False]
    assert auroc(scores, pos) == pytest.approx(0.75)
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 200).astype(float)  # many ties
    y = rng.random(200) < 0.3
    assert auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert auroc([1.0, 2.0], [True, True]) != auroc([1.0, 2.0], [True, True])  # NaN: no negatives
    assert auroc([3, 2, 1], [True, False, False]) == 1.0
    assert auroc([1, 2, 3], [True, False, False]) == 0.0


def test_part_iou_hand_computed_on_body_pixels():
    gt = np.array([[0, 1, 1], [2, 2, 3]])
    pred = np.array([[4, 1, 2], [2, 3, 3]])  # the background pixel's prediction is not scored
    r = part_iou(pred, gt, 3)
    # part 1: 1 / |{(0,1),(0,2)}|; part 2: 1 / |{(1,0),(1,1),(0,2)}|; part 3: 1 / |{(1,1),(1,2)}|
    assert r["iou"] == pytest.approx([1 / 2, 1 / 3, 1 / 2])
    assert r["miou"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    # a background prediction on a body pixel counts as wrong
    assert part_iou(np.zeros_like(gt), gt, 3)["miou"] == 0.0
    with pytest.raises(ValueError):
        part_iou(pred[:1], gt, 3)


def test_foreground_iou_and_patch_upsampling():
    gt = np.array([[0, 1], [2, 255]])
    assert foreground_iou(np.array([[1, 1], [0, 1]]), gt) == pytest.approx(1 / 3)
    up = patch_to_pixels(torch.tensor([[[1], [2]]]), (4, 2))
    assert up.tolist() == [[[1, 1], [1, 1], [2, 2], [2, 2]]]


def test_mechanism_command_end_to_end(tmp_path):
    """benchmarks/mechanism.py on a tiny setting: trains two runs, measures, writes the tables,
    the JSON and the pictures."""
    out, docs = tmp_path / "runs", tmp_path / "docs"
    opts = ["DATASETS.ROOT", str(tmp_path / "data"), "DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "8",
            "DATASETS.SYNTHETIC.NUM_TEST_IDS", "4", "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4",
            "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_EPOCH", "2", "SOLVER.STEPS", "[100]",
            "SOLVER.WARMUP_ITERS", "0", "TEST.EVAL_PERIOD", "2", "SOLVER.CHECKPOINT_PERIOD", "2",
            "PROMPT_STAGE.MAX_EPOCH", "1", "MODEL.RGANET.MEMORY.ALPHA_THRESH", "0.5",
            "DATALOADER.NUM_WORKERS", "0", "MODEL.DEVICE", "cpu"]
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "mechanism.py"), "--seeds", "0",
           "--runs", "stripes", "rganet", "--out", str(out), "--docs", str(docs), *opts]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    for title in ("### Accuracy", "### Region masks", "### Confidence", "### Memory bank",
                  "fixed stripes (reference)", "after stage 1", "after stage 2"):
        assert title in r.stdout, title
    summary = json.loads((out / "summary.json").read_text())
    m = summary["rganet"]["0"]["mechanism"]
    for stage in ("stage1", "stage2"):
        assert 0.0 <= m[stage]["part_miou"] <= 1.0 and len(m[stage]["part_iou"]) == 4
        assert 0.0 <= m[stage]["foreground_iou"] <= 1.0
    s2 = m["stage2"]
    assert s2["regions_covered"] > 0 and s2["regions_visible"] > 0
    for k in ("auroc_weights", "auroc_alpha", "auroc_beta"):
        assert 0.0 <= s2[k] <= 1.0
    assert len(m["bank_log"]["selected"]) == 2 and len(m["bank_log"]["total"]) == 4
    assert all(-1.0 <= c <= 1.0 for c in m["bank"]["cos_centre_part_mean"])
    # stripes: fixed masks, scored against the same reference
    st = summary["stripes"]["0"]["mechanism"]
    assert st["stage2"]["part_miou"] == pytest.approx(st["stripes_reference"]["part_miou"])
    assert (docs / "images" / "mechanism_masks.png").stat().st_size > 10_000
    assert (docs / "images" / "mechanism_bank.png").stat().st_size > 5_000
    # a second call reuses the finished runs
    r2 = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r2.returncode == 0 and "train_net.py" not in r2.stdout


def test_ground_truth_of_a_folder_that_cannot_give_it_is_refused(tmp_path):
    import json as _json

    from rganet_plugin.synthetic.cache import MANIFEST_NAME
    from rganet_analysis.mechanism import load_ground_truth

    with pytest.raises(FileNotFoundError, match="need a generated dataset's manifest"):
        load_ground_truth(str(tmp_path))
    old = {"version": 1, "images": [{"split": "query", "file": "query/0001_c1_f0000001.jpg"}]}
    (tmp_path / MANIFEST_NAME).write_text(_json.dumps(old))
    with pytest.raises(ValueError, match="before part occlusion was recorded .*regenerate"):
        load_ground_truth(str(tmp_path))


def test_paired_differences_by_hand():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "mech_bench", os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks",
                                   "mechanism.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = {"a": {s: {"x": 10.0 + d} for s, d in zip((0, 1, 2), (1.0, 2.0, 3.0))},
           "b": {s: {"x": 10.0} for s in (0, 1, 2)}}
    # differences 1, 2, 3: mean 2, standard error 1 / sqrt(3) = 0.577
    assert bench.paired(res, "a", "b", [0, 1, 2], lambda r: r["x"]) == "+2.00 ± 0.58 (> 2 SE)"
    res["a"][2]["x"] = 6.0  # differences 1, 2, -4: mean -1/3, SE 1.86: no measured difference
    assert bench.paired(res, "a", "b", [0, 1, 2], lambda r: r["x"]) == "-0.33 ± 1.86"


def _two_identity_records():
    """An aligned and a misaligned query, one gallery image of each identity."""
    return [dict(split="query", pid=1, camid=0, framing="full", file="q1"),
            dict(split="query", pid=2, camid=0, framing="top", file="q2"),
            dict(split="gallery", pid=1, camid=1, framing="full", file="g1"),
            dict(split="gallery", pid=2, camid=1, framing="full", file="g2")]


def test_retrieval_by_alignment_scores_each_query_view_apart():
    from rganet_analysis.mechanism import GroundTruth, retrieval_by_alignment
    from rganet_plugin.modeling.outputs import Features

    # two identities; the aligned query finds its match first, the misaligned one second
    recs = _two_identity_records()
    vec = torch.tensor([[1.0, 0.0], [1.0, 0.2], [1.0, 0.05], [0.0, 1.0]])

    class Pred:
        def extract(self, paths, progress=False):
            return Features(vec, torch.zeros(4, 0, 2), torch.zeros(4, 0))

    out = retrieval_by_alignment(Pred(), GroundTruth("/nowhere", recs))
    assert out["aligned"] == {"Rank-1": 100.0, "mAP": 100.0, "queries": 1}
    assert out["misaligned"]["Rank-1"] == 0.0 and out["misaligned"]["mAP"] == 50.0
    assert out["all"]["queries"] == 2 and out["all"]["mAP"] == 75.0


def test_retrieval_by_alignment_also_ranks_a_region_model_by_its_global_feature_alone():
    from rganet_analysis.mechanism import GroundTruth, retrieval_by_alignment
    from rganet_plugin.modeling.outputs import Features

    recs = _two_identity_records()
    glob = torch.tensor([[1.0, 0.0], [1.0, 0.2], [1.0, 0.05], [0.0, 1.0]])
    # one region that tells the misaligned query's identity apart: eq. (10) finds g2 first,
    # the global feature alone finds g1 first
    region = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]).unsqueeze(1)

    class Pred:
        def extract(self, paths, progress=False):
            return Features(glob, region, torch.ones(4, 1))

    out = retrieval_by_alignment(Pred(), GroundTruth("/nowhere", recs))
    assert out["misaligned"]["Rank-1"] == 100.0 and out["misaligned"]["global Rank-1"] == 0.0
    assert out["misaligned"]["global mAP"] == 50.0
    assert out["aligned"]["Rank-1"] == out["aligned"]["global Rank-1"] == 100.0
