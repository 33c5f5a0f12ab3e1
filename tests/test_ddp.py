"""Two processes (gloo, CPU) through fast-reid's launcher: DDP training keeps the memory bank
identical on every rank, and it equals the bank one process computes from the whole batch."""
import os
import subprocess
import sys
import textwrap

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import os, sys, torch
import rganet_plugin
from fastreid.engine import launch
from fastreid.engine.train_loop import HookBase
from fastreid.utils import comm
from rganet_plugin.config import load_config
from rganet_plugin.engine import RGANetTrainer

OUT = sys.argv[1]

class Dump(HookBase):
    def before_train(self):
        m = self.trainer.model.module if hasattr(self.trainer.model, "module") else self.trainer.model
        # after MemoryBankHook.before_train (registered first): the initial bank
        torch.save(m.region_head.memory.centers.clone(), os.path.join(OUT, f"init{comm.get_rank()}.pt"))
        self.seen = {}  # what the head computed in the step (it updates the bank itself)
        m.region_head.register_forward_hook(
            lambda mod, inp, out: self.seen.update(feats=out["region_feats"].detach().clone(),
                                                   alpha=out["alpha"].detach().clone()))
    def after_step(self):
        m = self.trainer.model.module if hasattr(self.trainer.model, "module") else self.trainer.model
        h = m.region_head
        torch.save({"centers": h.memory.centers.clone(), "feats": self.seen["feats"],
                    "alpha": self.seen["alpha"]},
                   os.path.join(OUT, f"step{self.trainer.iter}_rank{comm.get_rank()}.pt"))

class T(RGANetTrainer):
    def build_hooks(self):
        return super().build_hooks() + [Dump()]

def main():
    cfg = load_config(os.path.join(sys.argv[2], "configs", "Demo", "rganet_demo.yml"), [
        "MODEL.DEVICE", "cpu", "MODEL.RGANET.PROMPT.TYPE", "template",
        "MODEL.RGANET.MEMORY.ALPHA_THRESH", "0.5",
        "DATASETS.ROOT", os.path.join(OUT, "data"), "OUTPUT_DIR", os.path.join(OUT, "out"),
        "DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "8", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "4",
        "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "INPUT.SIZE_TRAIN", "[128, 64]",
        "INPUT.SIZE_TEST", "[128, 64]", "SOLVER.IMS_PER_BATCH", "16", "DATALOADER.NUM_WORKERS", "0",
        "SOLVER.MAX_EPOCH", "2", "SOLVER.STEPS", "[100]", "TEST.EVAL_PERIOD", "100",
        "SOLVER.CHECKPOINT_PERIOD", "100"])
    t = T(cfg)
    t.resume_or_load(resume=False)
    t.train()

if __name__ == "__main__":
    # both processes ask for the generated data at once: its file lock makes one generate it
    launch(main, 2, dist_url="auto")
"""


def test_memory_bank_is_identical_across_two_gloo_processes(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, str(script), str(tmp_path), ROOT], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    init0, init1 = torch.load(tmp_path / "init0.pt"), torch.load(tmp_path / "init1.pt")
    assert torch.equal(init0, init1)
    steps = sorted({int(p.name[4:].split("_")[0]) for p in tmp_path.glob("step*_rank0.pt")})
    assert len(steps) >= 2
    prev = init0
    moved = False
    for it in steps:
        a = torch.load(tmp_path / f"step{it}_rank0.pt")
        b = torch.load(tmp_path / f"step{it}_rank1.pt")
        assert torch.equal(a["centers"], b["centers"]), f"banks differ at iteration {it}"
        # each rank saw half of the global batch; the bank update must equal eq. (5) computed
        # on the union of both halves
        feats = torch.cat([a["feats"], b["feats"]]).double()
        keep = (torch.cat([a["alpha"], b["alpha"]]) > 0.5).double()
        s = torch.einsum("bn,bnd->nd", keep, feats)
        c = keep.sum(0)
        ref = prev.double().clone()
        has = c > 0
        ref[has] = 0.3 * ref[has] + 0.7 * s[has] / c[has, None]
        assert torch.allclose(a["centers"].double(), ref, atol=1e-5), f"iteration {it}"
        moved |= not torch.equal(a["centers"], prev)
        prev = a["centers"]
        assert not torch.equal(a["feats"], b["feats"])  # the ranks really saw different data
    assert moved
