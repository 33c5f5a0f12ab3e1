"""Every script in benchmarks/ is imported and run on a tiny input (trap 7 of issue 20:
``bench_evaluation.py`` stopped importing when ``UnpackedFeatures`` was removed, and nothing in the
suite noticed). A script is run as its command line runs it (``__main__``, its own argument
parser), in this process so the imports are paid once; the ablations train one tiny run each
in its own process, as they always do. A new script must get a tiny run here (or name the test
that runs it): the first test fails otherwise."""
import ast
import glob
import os
import runpy
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")

TINY_DATA = ["DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "4", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "3",
             "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "DATASETS.SYNTHETIC.HEIGHT", "64",
             "DATASETS.SYNTHETIC.WIDTH", "32", "INPUT.SIZE_TRAIN", "[64, 32]",
             "INPUT.SIZE_TEST", "[64, 32]", "SOLVER.IMS_PER_BATCH", "8",
             "DATALOADER.NUM_INSTANCE", "2", "DATALOADER.NUM_WORKERS", "0", "MODEL.DEVICE", "cpu",
             "SOLVER.MAX_EPOCH", "1", "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "1",
             "TEST.IMS_PER_BATCH", "16", "SOLVER.WARMUP_ITERS", "0"]

# script -> (arguments; {tmp} is the test's folder), text (or texts) its output must show
SMOKE = {
    "bench_evaluation.py": (["--num-query", "40", "--num-gallery", "200", "--repeat", "1",
                             "--topk", "10", "--chunk-size", "64"], "checks passed"),
    "bench_scale.py": (["--quick", "--work", "{tmp}/scale", "--threads", "1", "--plot",
                        "{tmp}/scale.png"], "| 16 | 800 | pq | IVF"),
    "bench_inference.py": (["--device", "cpu", "--arch", "RGANet-Tiny-ViT", "--dtypes", "fp32",
                            "--num-images", "4", "--batch-size", "2", "--repeat", "1",
                            "--num-classes", "8"], "paper (Table VII)"),
    "bench_training.py": (["--device", "cpu", "--batch-size", "8", "--num-classes", "4",
                           "--iters", "1", "--warmup", "0", "--profile-iters", "0"], "| total |"),
    "fidelity.py": (["--no-train", "--out", "{tmp}/fidelity", "--seeds", "0",
                     "--variants", "rganet_w_mean"], "### One-key variants"),
    "misaligned_world.py": (["--out", "{tmp}/world", "--num-train-ids", "2", "--num-test-ids",
                             "6", "--images-per-id", "2", "--height", "64", "--width", "32"],
                            "| all misaligned |"),
    "stage1_ceilings.py": (["--world", "default", "--seeds", "0", "--variants", "prompt", "free",
                            "probe", "--", "DATASETS.ROOT", "{tmp}/data",
                            "MODEL.BACKBONE.CLIP.NAME", "RGANet-Tiny-ViT",
                            "MODEL.BACKBONE.PRETRAIN", "False", "PROMPT_STAGE.MAX_EPOCH", "1",
                            "DATASETS.SYNTHETIC.MISALIGNED_PERCENT", "50", *TINY_DATA],
                           "| linear probe (N + 1 classes, softmax) |"),
    "fig3.py": (["--report-only", "--out", "{tmp}/fig3", "--sweeps", "N", "--seeds", "0"],
                "seed 0 not run"),
    "demo_ablation.py": (["--runs", "baseline", "--out", "{tmp}/demo", "DATASETS.ROOT",
                          "{tmp}/data", "MODEL.BACKBONE.CLIP.NAME", "RGANet-Tiny-ViT",
                          "MODEL.BACKBONE.PRETRAIN", "False", *TINY_DATA],
                         "| CLIP baseline (row 0) |"),
    # the clothes-changing world (one arm: the paired differences are tested by hand below)
    "fire2_ablation.py": (["--world", "ccworld", "--arms", "fire2", "--seeds", "0",
                           "--jobs", "1", "--features",
                           "--out", "{tmp}/fire2", "DATASETS.ROOT", "{tmp}/data",
                           "MODEL.BACKBONE.DEPTH", "18x", "MODEL.BACKBONE.FEAT_DIM", "512",
                           "DATASETS.SYNTHETIC.OUTFITS_PER_ID", "2",
                           "MODEL.FIRE2.FFM.START_EPOCH", "0",
                           "MODEL.FIRE2.TRIPLET_START_EPOCH", "0", *TINY_DATA],
                          ("| chance (random ranking) |", "Clothes dependence of the test features")),
    "agreid_ablation.py": (["--arms", "full", "--seeds", "0", "--diagnose", "--out", "{tmp}/agreid",
                            "DATASETS.ROOT", "{tmp}/data", "MODEL.BACKBONE.PRETRAIN_PATH",
                            os.path.join(ROOT, "weights", "RGANet-Person-ViT.safetensors"),
                            *TINY_DATA], "attributes R1 / mAP"),
}
# scripts a test elsewhere runs end to end: script -> (test file, test function)
ELSEWHERE = {
    "mechanism.py": ("tests/test_mechanism.py", "test_mechanism_command_end_to_end"),
    # imported by mechanism.py for --docs (the end-to-end test checks both pictures)
    "mechanism_figures.py": ("tests/test_mechanism.py", "test_mechanism_command_end_to_end"),
}


def test_every_benchmark_script_has_a_tiny_run():
    scripts = {os.path.basename(p) for p in glob.glob(os.path.join(BENCH, "*.py"))}
    assert scripts == set(SMOKE) | set(ELSEWHERE), \
        "a script in benchmarks/ without a tiny run in tests/test_benchmarks.py (or the reverse)"
    for test_file, func in ELSEWHERE.values():
        tree = ast.parse(open(os.path.join(ROOT, test_file)).read())
        assert func in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_script_runs_on_a_tiny_input(script, tmp_path, monkeypatch, capsys):
    args, expect = SMOKE[script]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    monkeypatch.setattr(sys, "argv", [os.path.join(BENCH, script), *argv])
    monkeypatch.syspath_prepend(BENCH)
    threads = torch.get_num_threads()
    try:
        runpy.run_path(os.path.join(BENCH, script), run_name="__main__")
    except SystemExit as e:
        assert e.code in (0, None), f"{script} exited with {e.code}"
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    for text in (expect if isinstance(expect, tuple) else (expect,)):
        assert text in out, out[-3000:]


def test_fire2_ablation_paired_differences_by_hand():
    """The paired differences fire2_ablation prints: per seed arm - baseline, mean and standard
    error std(ddof=1) / sqrt(seeds)."""
    sys.path.insert(0, BENCH)
    try:
        from fire2_ablation import paired_differences
    finally:
        sys.path.remove(BENCH)
    rows = {"baseline": [{"m": 10.0}, {"m": 12.0}, {"m": 11.0}],
            "fire2": [{"m": 13.0}, {"m": 13.0}, {"m": 15.0}]}  # differences 3, 1, 4
    mean, se = paired_differences(rows, "m")["fire2"]
    assert mean == pytest.approx(8 / 3) and se == pytest.approx(((7 / 3) ** 0.5) / 3 ** 0.5)
    assert list(paired_differences(rows, "m")) == ["fire2"]


def test_bench_scale_fitted_features_keep_the_fitted_spectra(tmp_path):
    """bench_scale --fit / --features fitted: features drawn from the fitted statistics have the
    between- and within-identity variance of the features they were fitted on (a known Gaussian
    here: identity centres of variance 1 per value along 3 directions, images 0.04 along 5), and
    a wider drawing is an isometry (the eq. (10) similarity of every pair unchanged)."""
    sys.path.insert(0, BENCH)
    import bench_scale as B
    import numpy as np

    rng = np.random.default_rng(0)
    dim, ids, per = 8, 400, 6
    basis = np.linalg.qr(rng.standard_normal((5 * dim, 5 * dim)))[0]
    centres = 3.0 + rng.standard_normal((ids, 3)) @ basis[:, :3].T
    x = np.repeat(centres, per, 0) + 0.2 * rng.standard_normal((ids * per, 5)) @ basis[:, 3:8].T
    x = x.reshape(-1, 5, dim)
    paths = [f"/q/{p:04d}_c1_f{i}.jpg" for i, p in enumerate(np.repeat(np.arange(ids), per))]
    np.savez(tmp_path / "f.npz", **{"global": x[:, 0], "regions": x[:, 1:], "paths": paths,
                                    "weights": np.full((len(x), 4), 0.25, np.float32)})
    bad = dict(np.load(tmp_path / "f.npz"), paths=["/q/query.jpg"] * len(x))
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match="without an Occluded-Duke name"):
        B.fit_stats([str(tmp_path / "bad.npz")], str(tmp_path / "bad_stats.npz"))
    st = B.fit_stats([str(tmp_path / "f.npz")], str(tmp_path / "stats.npz"))
    assert int(st["identities"]) == ids and st["between"].shape[1] >= 3
    units = x / np.linalg.norm(x, axis=-1, keepdims=True)  # what is fitted: unit parts
    u = units.reshape(ids, per, -1)

    def spread(v):  # (ids, images, values): trace of the between- and within-identity covariance
        within = np.trace(np.cov((v - v.mean(1, keepdims=True)).reshape(-1, v.shape[2]).T))
        return np.trace(np.cov(v.mean(1).T)), within

    want_b, want_w = spread(u)
    stats, pids = str(tmp_path / "stats.npz"), np.repeat(np.arange(3000), 4)
    f = B.FittedFeatures(stats, dim, 3000)(pids, np.random.default_rng(1))
    got_b, got_w = spread(np.concatenate([f.global_feat[:, None], f.region_feats], 1)
                          .reshape(3000, 4, -1))
    got_b, got_w = got_b - got_w / 4 * 4 / 3, got_w * 4 / 3  # means of 4 images; ddof of 4
    assert got_b == pytest.approx(want_b, rel=0.1) and got_w == pytest.approx(want_w, rel=0.1)
    from rganet_plugin.evaluation.distance import weighted_region_distance

    wide, narrow = (B.FittedFeatures(stats, w, 3000)(pids[:50], np.random.default_rng(1))
                    for w in (3 * dim, dim))
    np.testing.assert_allclose(weighted_region_distance(wide, wide, device="cpu"),
                               weighted_region_distance(narrow, narrow, device="cpu"), atol=1e-4)
