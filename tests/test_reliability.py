"""Bad settings a user can give: each fails fast with a message naming the setting, or works.
Every run is a subprocess with a timeout, so a regression to a hang fails instead of hanging CI."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml")
SMALL = ["DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "8", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "4",
         "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "DATALOADER.NUM_WORKERS", "0",
         "MODEL.DEVICE", "cpu"]


def train_net(tmp_path, *opts, timeout=240):
    cmd = [sys.executable, os.path.join(ROOT, "projects", "RGANet", "train_net.py"),
           "--config-file", DEMO, "DATASETS.ROOT", str(tmp_path / "data"),
           "OUTPUT_DIR", str(tmp_path / "out"), *SMALL, *opts]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)


@pytest.mark.parametrize("opts, message", [
    (["SOLVER.IMS_PER_BATCH", "16", "DATALOADER.NUM_INSTANCE", "3"],
     "SOLVER.IMS_PER_BATCH = 16 is not a multiple of DATALOADER.NUM_INSTANCE = 3"),
    (["SOLVER.IMS_PER_BATCH", "64"],
     "16 identities in all, but the training set has 8"),
    (["DATALOADER.NUM_INSTANCE", "0"], "DATALOADER.NUM_INSTANCE must be >= 1, got 0"),
    (["DATALOADER.NUM_INSTANCE", "-4"], "DATALOADER.NUM_INSTANCE must be >= 1, got -4"),
    (["SOLVER.IMS_PER_BATCH", "0"], "SOLVER.IMS_PER_BATCH must be >= 1, got 0"),
])
def test_batch_settings_fail_fast_naming_the_key(tmp_path, opts, message):
    r = train_net(tmp_path, *opts, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_stages_shorter_than_the_timer_warmup_finish(tmp_path):
    """8 identities x 4 images, batch 32: one iteration per epoch, stage 1 of one epoch."""
    r = train_net(tmp_path, "SOLVER.IMS_PER_BATCH", "32", "SOLVER.MAX_EPOCH", "2",
                  "SOLVER.STEPS", "[100]", "SOLVER.WARMUP_ITERS", "0", "TEST.EVAL_PERIOD", "2",
                  "SOLVER.CHECKPOINT_PERIOD", "2", "MODEL.RGANET.PROMPT.STAGE1.MAX_EPOCH", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ZeroDivisionError" not in r.stderr and "Rank-1" in r.stdout + r.stderr
