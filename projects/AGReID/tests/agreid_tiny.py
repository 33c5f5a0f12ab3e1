"""The tiny settings of AG-ReID's tests: the shipped person CLIP on a tiny generated set."""
import os

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(PROJECT))
DEMO = os.path.join(REPO, "configs", "Demo", "agreid_demo.yml")
WEIGHTS = os.path.join(REPO, "weights", "RGANet-Person-ViT.safetensors")


def tiny_opts(root, **extra):
    """Overrides of the demo config: 4 identities x 4 images at 128x64, CPU, one short epoch."""
    opts = {"DATASETS.ROOT": str(root), "MODEL.BACKBONE.PRETRAIN_PATH": WEIGHTS,
            "DATASETS.SYNTHETIC.NUM_TRAIN_IDS": 4, "DATASETS.SYNTHETIC.NUM_TEST_IDS": 3,
            "DATASETS.SYNTHETIC.IMAGES_PER_ID": 4, "DATASETS.SYNTHETIC.HEIGHT": 128,
            "DATASETS.SYNTHETIC.WIDTH": 64, "INPUT.SIZE_TRAIN": "[128, 64]",
            "INPUT.SIZE_TEST": "[128, 64]", "SOLVER.IMS_PER_BATCH": 8,
            "DATALOADER.NUM_INSTANCE": 2, "DATALOADER.NUM_WORKERS": 0, "MODEL.DEVICE": "cpu",
            "SOLVER.MAX_EPOCH": 1, "SOLVER.STEPS": "[1]", "SOLVER.CHECKPOINT_PERIOD": 1,
            "TEST.EVAL_PERIOD": 1, "TEST.IMS_PER_BATCH": 16, "SOLVER.WARMUP_ITERS": 0,
            "OUTPUT_DIR": os.path.join(str(root), "out")}
    opts.update(extra)
    return [str(x) for kv in opts.items() for x in kv]
