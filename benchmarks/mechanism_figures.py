"""Pictures for benchmarks/mechanism.py: region masks against the ground truth, and the memory
bank's filter over training (matplotlib)."""
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# background, head, upper body, lower body, foot
PALETTE = np.array([[40, 40, 40], [230, 80, 60], [60, 160, 230], [90, 200, 90], [240, 200, 40]],
                   np.uint8)
PARTS = ("head", "upper body", "lower body", "foot")


def _colour(labels):
    return PALETTE[np.clip(labels, 0, len(PALETTE) - 1)]


def _upsample(a, size):
    import torch

    from rganet_plugin.synthetic.region_metrics import patch_to_pixels

    return patch_to_pixels(torch.as_tensor(a), size).numpy()


def mask_picture(run_dir, config, out_png, opts, num=5):
    """Query images | ground-truth parts | fixed stripes | RGM after stage 1 | after stage 2."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rganet_plugin.data.build import dataset_root
    from rganet_plugin.synthetic.occluded_duke import ensure_synthetic_occluded_duke
    from rganet_analysis.mechanism import load_ground_truth
    from rganet_plugin.modeling.heads.region_generation import stripe_masks
    from rganet_plugin.tools.predictor import build_predictor

    cfg_file = os.path.join(ROOT, config)
    p2 = build_predictor(cfg_file, os.path.join(run_dir, "model_final.pth"), opts, device="cpu")
    stage1 = os.path.join(run_dir, "prompt_stage", "model_final.pth")
    p1 = build_predictor(cfg_file, stage1, opts, device="cpu") if os.path.isfile(stage1) else None
    root = dataset_root(p2.cfg)
    root = root if os.path.isabs(root) else os.path.join(ROOT, root)
    gt = load_ground_truth(ensure_synthetic_occluded_duke(root, p2.cfg.DATASETS.SYNTHETIC,
                                                          progress=False), ("query",))
    # one image of each framing first where the set has misaligned views, else of each occluder
    framed = any(f != "full" for f in gt.framings())
    key = (lambda r: r.get("framing", "full")) if framed else (lambda r: r.get("occluder"))
    order, kinds = [], set()
    for i, r in enumerate(gt.records):
        if key(r) not in kinds:
            kinds.add(key(r))
            order.append(i)
    order = (order + [i for i in range(len(gt)) if i not in order])[:num]
    labels = gt.masks(order)
    size = labels.shape[-2:]
    d2 = p2.details([gt.paths[i] for i in order])
    d1 = p1.details([gt.paths[i] for i in order]) if p1 is not None else None
    grid = d2["masks"].shape[-2:]
    stripes = (stripe_masks(4, *grid).argmax(dim=0) + 1).expand(len(order), -1, -1)
    cols = [("image", None), ("ground truth", labels), ("fixed stripes", _upsample(stripes, size))]
    if d1 is not None:
        cols.append(("RGM after stage 1", _upsample(d1["masks"].argmax(dim=1), size)))
    cols.append(("RGM after stage 2", _upsample(d2["masks"].argmax(dim=1), size)))
    from PIL import Image

    fig, axes = plt.subplots(len(order), len(cols), figsize=(1.6 * len(cols), 3.1 * len(order)))
    for r, i in enumerate(order):
        with Image.open(gt.paths[i]) as im:
            img = np.asarray(im.convert("RGB"))
        for c, (title, lab) in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(img if lab is None else (0.45 * img + 0.55 * _colour(lab[r])).astype(np.uint8))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
        w = d2["weights"][r].tolist()
        cov = gt.records[i]["part_covered"]
        axes[r, -1].set_xlabel("w " + " ".join(f"{x:.2f}" for x in w), fontsize=7)
        what = [gt.records[i].get("framing", "full")] if framed else []
        what += [o for o in [gt.records[i].get("occluder")] if o is not None or not framed]
        axes[r, 0].set_xlabel(f"{', '.join(map(str, what))}; covered "
                              + " ".join(f"{x:.1f}" for x in cov), fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=PALETTE[k] / 255) for k in range(5)]
    fig.legend(handles, ("background",) + PARTS, loc="lower center", ncol=5, fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    with Image.open(out_png) as im:  # a 256-colour palette: a quarter of the size
        im.convert("RGB").quantize(256).save(out_png, optimize=True)


def bank_figure(logs_by_run, out_png):
    """Regions passing the alpha filter per class per epoch (mean over seeds), one panel a run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(logs_by_run), figsize=(5 * len(logs_by_run), 3.2), squeeze=False)
    for ax, (title, logs) in zip(axes[0], logs_by_run.items()):
        sel = np.mean([np.array(lg["selected"], float) for lg in logs], axis=0)
        per_epoch = logs[0]["images_per_epoch"]
        for j, name in enumerate(logs[0]["classes"]):
            ax.plot(np.arange(1, len(sel) + 1), 100.0 * sel[:, j] / max(per_epoch, 1), label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"% of regions with alpha > {logs[0]['alpha_thresh']}")
        ax.set_ylim(-2, 102)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
