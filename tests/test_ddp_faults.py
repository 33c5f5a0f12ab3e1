"""Faults in a 2-process gloo run through train_net: a killed process stops the run with a clear
error at once, a hung one within RGANET_DIST_TIMEOUT, and --resume restores the same memory bank
on both processes. Each run is bounded by a subprocess timeout."""
import os
import subprocess
import sys
import textwrap
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import os, signal, sys, time
import torch
import rganet_plugin
from fastreid.engine.train_loop import HookBase
from fastreid.utils import comm
from rganet_plugin.engine import RGANetTrainer
from rganet_plugin.engine.hooks import unwrap
from rganet_plugin.tools.train import main

MODE, OUT = os.environ["FAULT_MODE"], os.environ["FAULT_OUT"]


class Fault(HookBase):
    def before_train(self):
        bank = unwrap(self.trainer.model).region_head.memory.centers.clone()
        torch.save(bank, os.path.join(OUT, f"{MODE}_start{comm.get_rank()}.pt"))

    def after_step(self):
        if comm.get_rank() == 1 and self.trainer.iter == 5:
            if MODE == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif MODE == "hang":
                time.sleep(3600)


_build_hooks = RGANetTrainer.build_hooks
RGANetTrainer.build_hooks = lambda self: _build_hooks(self) + [Fault()]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
"""


def run(tmp_path, mode, *extra, timeout=300, env_extra=None):
    script = tmp_path / "fault_run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", FAULT_MODE=mode,
               FAULT_OUT=str(tmp_path), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **(env_extra or {}))
    cmd = [sys.executable, str(script), "--num-gpus", "2", *extra, "--config-file",
           os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml"),
           "MODEL.DEVICE", "cpu", "MODEL.RGANET.PROMPT.TYPE", "template",
           "DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(tmp_path / "out"),
           "DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "8", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "4",
           "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "INPUT.SIZE_TRAIN", "[128, 64]",
           "INPUT.SIZE_TEST", "[128, 64]", "SOLVER.IMS_PER_BATCH", "16",
           "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "4", "SOLVER.STEPS", "[100]",
           "TEST.EVAL_PERIOD", "100", "SOLVER.CHECKPOINT_PERIOD", "1"]
    t0 = time.time()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    return r, time.time() - t0


def test_killed_process_stops_the_run_and_resume_restores_the_bank_on_both(tmp_path):
    r, _ = run(tmp_path, "kill")
    assert r.returncode == 1, r.stderr[-3000:]
    assert "training process 1 stopped (signal SIGKILL)" in r.stderr
    assert "--resume" in r.stderr
    last = (tmp_path / "out" / "last_checkpoint").read_text().strip()
    saved = torch.load(tmp_path / "out" / last, weights_only=False)["model"]
    r, _ = run(tmp_path, "resume", "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    b0 = torch.load(tmp_path / "resume_start0.pt")
    b1 = torch.load(tmp_path / "resume_start1.pt")
    assert torch.equal(b0, b1)
    assert torch.equal(b0, saved["region_head.memory.centers"])
    assert bool(saved["region_head.memory.initialized"])


def test_hung_process_ends_the_run_within_the_collective_timeout(tmp_path):
    r, seconds = run(tmp_path, "hang", env_extra={"RGANET_DIST_TIMEOUT": "15"}, timeout=240)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "a training process failed" in r.stderr
    assert seconds < 200
