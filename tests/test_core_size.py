"""The method core stays readable on its own: what ``import rganet_plugin`` and a tiny RGANet
training (stage 1 and stage 2, evaluation, through ``python -m rganet_plugin.tools train``'s
``main``) load of the plugin, the generated world (``rganet_plugin.synthetic``, which draws the
data) left out, is at most 6,000 lines (issue 20), and FIRe² and the analysis are not loaded."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET = 6000

SCRIPT = r"""
import json, os, sys
tmp = sys.argv[1]
import rganet_plugin  # noqa: F401
from rganet_plugin.tools.train import main
opts = ["DATASETS.ROOT", tmp + "/data", "OUTPUT_DIR", tmp + "/out", "MODEL.DEVICE", "cpu",
        "MODEL.BACKBONE.CLIP.NAME", "RGANet-Tiny-ViT", "MODEL.BACKBONE.PRETRAIN", "False",
        "DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "4", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "3",
        "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "SOLVER.IMS_PER_BATCH", "8",
        "DATALOADER.NUM_INSTANCE", "2", "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_EPOCH", "1",
        "PROMPT_STAGE.MAX_EPOCH", "1", "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "1",
        "SOLVER.WARMUP_ITERS", "0", "TEST.IMS_PER_BATCH", "16"]
rc = main(["--config-file", os.path.join("configs", "Demo", "rganet_demo.yml"), *opts])
files = {m: getattr(mod, "__file__", None) for m, mod in list(sys.modules.items())
         if m.split(".")[0] in ("rganet_plugin", "rganet_analysis", "fire2", "agreid")}
print("MODULES " + json.dumps({"rc": rc, "files": files}))
"""


def core_lines(files):
    """Lines per loaded module of the core: rganet_plugin without its generated world."""
    return {m: sum(1 for _ in open(f, encoding="utf-8")) for m, f in files.items()
            if f and m.split(".")[0] == "rganet_plugin" and not m.startswith("rganet_plugin.synthetic")}


def test_the_core_a_training_touches_is_at_most_6000_lines(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("MODULES "))
    seen = json.loads(line[len("MODULES "):])
    assert seen["rc"] == 0
    files = seen["files"]
    assert not [m for m in files if m.split(".")[0] in ("rganet_analysis", "fire2", "agreid")]
    lines = core_lines(files)
    # the training really ran through the core: trainer, stages, evaluator, the region head
    for m in ("rganet_plugin.engine.trainer", "rganet_plugin.engine.stages",
              "rganet_plugin.evaluation.weighted_region_evaluator",
              "rganet_plugin.modeling.heads.rganet_region_head"):
        assert m in lines
    total = sum(lines.values())
    print(f"core lines loaded by import + a tiny RGANet training: {total}")
    assert total <= BUDGET, "\n".join(f"{n:5d} {m}" for m, n in sorted(lines.items()))
