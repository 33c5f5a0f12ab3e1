"""Each fast-reid compatibility patch: the symptom appears without it (in a subprocess that skips
just that patch) and is gone with it (in this process, where every patch is applied)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from rganet_plugin import compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_without(patch, code, tmp_path):
    env = dict(os.environ, RGANET_COMPAT_SKIP=patch, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = tmp_path / f"no_{patch}.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path), timeout=300)


def test_every_patch_is_applied():
    assert set(compat.apply()) == set(compat.PATCHES)


def test_unknown_patch_name_is_rejected():
    with pytest.raises(KeyError, match="unknown compat patch"):
        compat.apply(skip=["no_such_patch"])


def test_collections_abc(tmp_path):
    r = run_without("collections_abc", "import rganet_plugin\n", tmp_path)
    assert r.returncode != 0 and "cannot import name 'Mapping'" in r.stderr
    import fastreid.evaluation.testing  # noqa: F401  (imports `Mapping` from collections)


def test_torch_six(tmp_path):
    r = run_without("torch_six", "import rganet_plugin\n", tmp_path)
    assert r.returncode != 0 and "torch._six" in r.stderr
    from fastreid.data.build import string_classes

    assert isinstance("x", string_classes)


LOADER = """
import torch, rganet_plugin
from fastreid.data.build import build_reid_test_loader
from fastreid.data.common import CommDataset
from PIL import Image
Image.new('RGB', (8, 16)).save('a.jpg')
loader, _ = build_reid_test_loader(test_set=CommDataset([('a.jpg', 1, 0)], None, relabel=False),
                                   test_batch_size=1, num_query=1, num_workers=0)
for b in loader:
    print('BATCH', type(b).__name__)
"""


def test_dataloader(tmp_path):
    r = run_without("dataloader", LOADER, tmp_path)
    assert r.returncode != 0
    assert any(s in r.stderr for s in ("CUDA", "cuda", "NVIDIA")), r.stderr[-2000:]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        import torchvision.transforms as T
        from fastreid.data.build import build_reid_test_loader
        from fastreid.data.common import CommDataset
        from PIL import Image

        Image.new("RGB", (8, 16)).save("a.jpg")
        ds = CommDataset([("a.jpg", 1, 0)], T.ToTensor(), relabel=False)
        loader, _ = build_reid_test_loader(test_set=ds, test_batch_size=1, num_query=1,
                                           num_workers=0)
        batches = list(loader)
    finally:
        os.chdir(cwd)
    assert len(batches) == 1 and batches[0]["images"].shape == (1, 3, 16, 8)


class _SigintDisposition(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        import signal

        return {"ignored": torch.tensor(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)}


def test_dataloader_workers_leave_sigint_to_the_main_process():
    """A terminal's Ctrl-C reaches the workers too: they ignore it, the main process stops the
    run with a checkpoint (engine.hooks.StopOnSignalHook) and ends them."""
    from fastreid.data import build

    loader = build.DataLoaderX(0, dataset=_SigintDisposition(), batch_size=1, num_workers=1)
    assert [bool(b["ignored"]) for b in loader] == [True, True]


def test_output_dir(tmp_path):
    code = f"""
    import rganet_plugin
    from fastreid.config import get_cfg
    from fastreid.engine import DefaultTrainer
    cfg = get_cfg(); cfg.OUTPUT_DIR = {str(tmp_path / 'fresh' / 'out')!r}
    DefaultTrainer.auto_scale_hyperparams(cfg, 10)
    """
    r = run_without("output_dir", code, tmp_path)
    assert r.returncode != 0 and "FileNotFoundError" in r.stderr
    from fastreid.config import get_cfg
    from fastreid.engine import DefaultTrainer

    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "fresh2" / "out")
    out = DefaultTrainer.auto_scale_hyperparams(cfg, 10)
    assert out.MODEL.HEADS.NUM_CLASSES == 10
    assert (tmp_path / "fresh2" / "out" / "config.yaml").is_file()


def test_rank_tool(tmp_path):
    # Without the patch fast-reid runs `make` in site-packages and exits the interpreter when it
    # fails; we stand in for the failing `make` so nothing is written into site-packages.
    code = """
    import subprocess
    subprocess.run = lambda *a, **k: subprocess.CompletedProcess(a, 2)
    import rganet_plugin
    from fastreid.config import get_cfg
    from fastreid.evaluation import ReidEvaluator
    ReidEvaluator(get_cfg(), 1)
    print('SURVIVED')
    """
    r = run_without("rank_tool", code, tmp_path)
    assert "SURVIVED" not in r.stdout and "Making cython reid evaluation module failed" in r.stdout
    from fastreid.config import get_cfg
    from fastreid.evaluation import ReidEvaluator
    from fastreid.evaluation.rank_cylib import compile_helper

    ReidEvaluator(get_cfg(), 1)  # no build, no exit
    with pytest.raises(RuntimeError, match="never builds it at run time"):
        compile_helper()


RERANK = """
import torch, rganet_plugin
from fastreid.utils.compute_dist import build_dist
torch.manual_seed(0)
q, g = torch.randn(5, 8), torch.randn(30, 8)
d = build_dist(q, g, 'jaccard', k1=6, k2=3)
print('SHAPE', d.shape)
"""


def test_rerank_cpu(tmp_path):
    r = run_without("rerank_cpu", RERANK, tmp_path)
    assert r.returncode != 0 and "SHAPE" not in r.stdout
    from fastreid.utils.compute_dist import build_dist

    torch.manual_seed(0)
    d = build_dist(torch.randn(5, 8), torch.randn(30, 8), "jaccard", k1=6, k2=3)
    assert d.shape == (5, 30) and np.isfinite(d).all() and (d >= 0).all() and (d <= 1).all()


LAUNCH = """
import os, rganet_plugin
from fastreid.engine import launch
def work(out):
    import torch.distributed as dist
    open(os.path.join(out, f"rank{dist.get_rank()}"), "w").write(dist.get_backend())
if __name__ == "__main__":
    launch(work, 2, dist_url="auto", args=(os.getcwd(),))
"""


def test_launch_cpu(tmp_path):
    r = run_without("launch_cpu", LAUNCH, tmp_path)
    assert r.returncode != 0 and "cuda is not available" in r.stderr
    assert not (tmp_path / "rank0").exists()
    # With the patch, fast-reid's launcher runs two gloo processes: tests/test_ddp.py trains
    # RGANet that way and checks both ranks.
    import fastreid.engine  # noqa: F401

    assert sys.modules["fastreid.engine.launch"]._distributed_worker is compat._distributed_worker


DDP = """
import torch, torch.distributed as dist, rganet_plugin
from fastreid.engine import defaults
dist.init_process_group('gloo', init_method='tcp://127.0.0.1:{port}', world_size=1, rank=0)
m = defaults.DistributedDataParallel(torch.nn.Linear(2, 2), device_ids=[0], broadcast_buffers=False)
print('WRAPPED', type(m).__name__)
"""


def _free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_ddp_cpu(tmp_path):
    r = run_without("ddp_cpu", DDP.format(port=_free_port()), tmp_path)
    assert r.returncode != 0 and "device_ids" in r.stderr
    import torch.distributed as dist
    from fastreid.engine import defaults

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", world_size=1,
                            rank=0)
    try:
        m = defaults.DistributedDataParallel(torch.nn.Linear(2, 2), device_ids=[0],
                                             broadcast_buffers=False)
        assert type(m).__name__ == "DistributedDataParallel"
    finally:
        dist.destroy_process_group()


CKPT = """
import numpy as np, torch, rganet_plugin
from fastreid.utils.checkpoint import Checkpointer
m = torch.nn.Linear(2, 2)
torch.save({{'model': m.state_dict(), 'epoch': np.int64(3)}}, {path!r})
ck = Checkpointer(m).load({path!r})
print('EPOCH', ck['epoch'])
"""


def test_checkpoint_load(tmp_path):
    path = str(tmp_path / "ck.pth")
    r = run_without("checkpoint_load", CKPT.format(path=path), tmp_path)
    assert r.returncode != 0 and "weights_only" in r.stderr
    from fastreid.utils.checkpoint import Checkpointer

    m = torch.nn.Linear(2, 2)
    torch.save({"model": m.state_dict(), "epoch": np.int64(3)}, path)
    assert int(Checkpointer(m).load(path)["epoch"]) == 3


ZERO_GRAD = """
import torch, rganet_plugin
from fastreid.config import get_cfg
from fastreid.solver import build_optimizer
m = torch.nn.Linear(4, 2)
cfg = get_cfg(); cfg.SOLVER.OPT = "Adam"; cfg.SOLVER.BASE_LR = 0.1
opt, _ = build_optimizer(cfg, m)
before = m.weight.detach().clone()
opt.zero_grad(); m(torch.ones(3, 4)).sum().backward(); opt.step()
print("MOVED", bool((m.weight - before).abs().sum() > 0))
"""


def test_zero_grad(tmp_path):
    r = run_without("zero_grad", ZERO_GRAD, tmp_path)
    assert r.returncode == 0 and "MOVED False" in r.stdout, r.stderr[-2000:]  # nothing learns
    from fastreid.config import get_cfg
    from fastreid.solver import build_optimizer

    m = torch.nn.Linear(4, 2)
    cfg = get_cfg()
    cfg.SOLVER.OPT = "Adam"
    cfg.SOLVER.BASE_LR = 0.1
    opt, _ = build_optimizer(cfg, m)
    before = m.weight.detach().clone()
    opt.zero_grad()
    m(torch.ones(3, 4)).sum().backward()
    opt.step()
    assert (m.weight - before).abs().sum() > 0


def test_metric_printer(tmp_path):
    """Two writes at one iteration before the timer has history (a stage of 1-2 iterations)."""
    code = """
    import rganet_plugin
    from fastreid.utils.events import CommonMetricPrinter, EventStorage
    with EventStorage(start_iter=1) as storage:
        storage.epoch = 0
        p = CommonMetricPrinter(max_iter=10)
        p.write()
        p.write()
    print("ok")
    """
    r = run_without("metric_printer", code, tmp_path)
    assert r.returncode != 0 and "ZeroDivisionError" in r.stderr
    from fastreid.utils.events import CommonMetricPrinter, EventStorage

    with EventStorage(start_iter=1) as storage:
        storage.epoch = 0
        p = CommonMetricPrinter(max_iter=10)
        p.write()
        p.write()  # no ZeroDivisionError
        assert p._last_write is not None and p._last_write[0] == 1


def test_identity_sampler(tmp_path):
    """A batch the sampler can never fill: fast-reid's sampler spins forever without the patch
    (bounded here by a timeout), and refuses at once, naming the keys, with it."""
    items = [(f"img{i}.jpg", i // 4, 0) for i in range(8 * 4)]  # 8 identities x 4 images
    code = f"""
    import rganet_plugin
    from fastreid.data.samplers import NaiveIdentitySampler
    s = NaiveIdentitySampler({items!r}, 16, 3, seed=0)
    next(iter(s))
    print("got a batch")
    """
    env = dict(os.environ, RGANET_COMPAT_SKIP="identity_sampler", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = tmp_path / "spin.py"
    script.write_text(textwrap.dedent(code))
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, str(script)], capture_output=True, env=env,
                       cwd=str(tmp_path), timeout=20)
    from fastreid.data.samplers import BalancedIdentitySampler, NaiveIdentitySampler

    with pytest.raises(ValueError, match="not a multiple of DATALOADER.NUM_INSTANCE = 3"):
        NaiveIdentitySampler(items, 16, 3, seed=0)
    with pytest.raises(ValueError, match="16 identities in all, but the training set has 8"):
        NaiveIdentitySampler(items, 64, 4, seed=0)
    with pytest.raises(ValueError, match="NUM_INSTANCE must be >= 1"):
        BalancedIdentitySampler(items, 16, 0, seed=0)
    s = NaiveIdentitySampler(items, 16, 4, seed=0)  # a batch that fits: 4 identities x 4
    it = iter(s)
    assert len({items[next(it)][1] for _ in range(16)}) == 4


AMP_STEP = """
import torch, rganet_plugin
from fastreid.config import get_cfg
from fastreid.engine.train_loop import AMPTrainer
from fastreid.solver import build_optimizer

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
    def forward(self, batch):
        return {"loss": (self.fc(batch["x"]) - 1).pow(2).mean()}

def batches():
    while True:
        yield {"x": torch.ones(3, 4)}

torch.manual_seed(0)
model = Net()
cfg = get_cfg(); cfg.SOLVER.OPT = "SGD"; cfg.SOLVER.BASE_LR = 0.1; cfg.SOLVER.MOMENTUM = 0.0
cfg.SOLVER.WEIGHT_DECAY = cfg.SOLVER.WEIGHT_DECAY_BIAS = cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
opt, params = build_optimizer(cfg, model)
trainer = AMPTrainer(model, batches(), opt, params)
before = model.fc.weight.detach().clone()
bias = model.fc.bias.detach().clone()
from fastreid.utils.events import EventStorage
with EventStorage(0) as storage:
    trainer.iter = 0
    trainer.storage = storage
    trainer.run_step()
print("STEP", float((model.fc.weight - before).abs().sum().detach()))
"""


def test_amp_cpu(tmp_path, caplog):
    """Every fast-reid base recipe turns AMP on; fast-reid's AMP step asserts CUDA."""
    r = run_without("amp_cpu", AMP_STEP, tmp_path)
    assert r.returncode != 0 and "CUDA is required for AMP training" in r.stderr
    ns = {}
    with caplog.at_level("WARNING"):
        exec(compile(AMP_STEP, "amp_step", "exec"), ns)  # noqa: S102  (the same code, patched)
    model, before, bias = ns["model"], ns["before"], ns["bias"]
    # one float32 SGD step (lr 0.1) on mean((w x + b - 1)^2) over 3 rows x 2 outputs, x = 1:
    # d/dw_o = (1/6) * 3 * 2 (y_o - 1) * 1 = y_o - 1 with y_o = sum(w_o) + b_o
    y = before.sum(dim=1) + bias
    expected = before - 0.1 * (y - 1).unsqueeze(1).expand_as(before)
    assert torch.allclose(model.fc.weight.detach(), expected, atol=1e-6)
    assert model.fc.weight.dtype == torch.float32
    assert "training runs in float32" in caplog.text
    assert ns["trainer"].grad_scaler.is_enabled() is False


AFFINE = """
import rganet_plugin
from fastreid.config import get_cfg
from fastreid.data.transforms import build_transforms
from PIL import Image
cfg = get_cfg()
cfg.INPUT.SIZE_TRAIN = [32, 16]
cfg.INPUT.AFFINE.ENABLED = True
t = build_transforms(cfg, is_train=True)
x = t(Image.new("RGB", (16, 32), (200, 10, 10)))
print("SHAPE", tuple(x.shape))
"""


def test_affine_transform(tmp_path):
    r = run_without("affine_transform", AFFINE, tmp_path)
    assert r.returncode != 0 and "resample" in r.stderr
    import torchvision.transforms as T
    from fastreid.config import get_cfg
    from fastreid.data.transforms import build_transforms
    from PIL import Image
    from torchvision.transforms import InterpolationMode

    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = [32, 16]
    cfg.INPUT.AFFINE.ENABLED = True
    t = build_transforms(cfg, is_train=True)
    affine = [s for s in t.transforms if isinstance(s, T.RandomAffine)]
    assert len(affine) == 1  # what the old keywords meant: nearest neighbour, black fill
    assert affine[0].interpolation == InterpolationMode.NEAREST and affine[0].fill == 0
    assert affine[0].degrees == [-10.0, 10.0] and affine[0].scale == [0.9, 1.1]
    assert tuple(t(Image.new("RGB", (16, 32), (200, 10, 10))).shape) == (3, 32, 16)


PROFILER = """
import os, torch, rganet_plugin
from fastreid.engine.hooks import AutogradProfiler
class T: iter = 3
hook = AutogradProfiler(lambda trainer: True, os.getcwd())
hook.trainer = T()
hook.before_step()
torch.ones(4, 4).matmul(torch.ones(4, 4))
hook.after_step()
print("FILES", sorted(os.listdir(os.getcwd())))
"""


def test_profiler_use_cuda(tmp_path):
    r = run_without("profiler_use_cuda", PROFILER, tmp_path)
    assert r.returncode != 0 and "use_cuda" in r.stderr
    from fastreid.engine.hooks import AutogradProfiler

    class Trainer:
        iter = 3

    hook = AutogradProfiler(lambda trainer: True, str(tmp_path))
    hook.trainer = Trainer()
    hook.before_step()
    torch.ones(4, 4).matmul(torch.ones(4, 4))
    hook.after_step()
    trace = tmp_path / "profiler-trace-iter3.json"
    assert trace.is_file() and "aten::matmul" in trace.read_text()


BACKBONE_NO_PATH = """
import rganet_plugin
from fastreid.config import get_cfg
from fastreid.modeling.backbones import build_backbone
cfg = get_cfg()
cfg.MODEL.BACKBONE.DEPTH = "18x"
cfg.MODEL.BACKBONE.PRETRAIN = True
cfg.MODEL.BACKBONE.PRETRAIN_PATH = ""
build_backbone(cfg)
"""


def test_backbone_weights(tmp_path):
    """PRETRAIN True without a file: fast-reid imports gdown (not installed, and nothing could
    be downloaded); with the patch, a clear error naming the file to fetch."""
    r = run_without("backbone_weights", BACKBONE_NO_PATH, tmp_path)
    assert r.returncode != 0 and "No module named 'gdown'" in r.stderr
    from fastreid.config import get_cfg
    from fastreid.modeling.backbones import build_backbone

    from rganet_plugin.modeling.backbones.imagenet_weights import ImageNetWeightsError

    cfg = get_cfg()
    cfg.MODEL.BACKBONE.DEPTH = "18x"
    cfg.MODEL.BACKBONE.PRETRAIN = True
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = ""
    with pytest.raises(ImageNetWeightsError, match=r"fetch resnet18-5c106cde\.pth \(https://"):
        build_backbone(cfg)


MIXED_MODES = """
import rganet_plugin
from fastreid.data.build import build_reid_test_loader
from fastreid.data.common import CommDataset
from fastreid.data.transforms import build_transforms
from fastreid.config import get_cfg
from PIL import Image
items = []
for i, (mode, ext) in enumerate([("RGB", "jpg"), ("RGBA", "png"), ("P", "png"), ("L", "jpg"),
                                 ("CMYK", "jpg"), ("LA", "png")]):
    Image.new(mode, (16, 32)).save(f"{i}.{ext}")
    items.append((f"{i}.{ext}", i, 0))
cfg = get_cfg()
cfg.INPUT.SIZE_TEST = [32, 16]
loader, _ = build_reid_test_loader(test_set=CommDataset(items, build_transforms(cfg, False), False),
                                   test_batch_size=6, num_query=1, num_workers=0)
print("BATCH", tuple(next(iter(loader))["images"].shape))
"""


def test_read_image_rgb(tmp_path):
    """RGBA / palette / grayscale / CMYK / LA images among RGB ones: fast-reid's collator cannot
    stack them; with the patch every image is read as RGB."""
    r = run_without("read_image_rgb", MIXED_MODES, tmp_path)
    assert r.returncode != 0 and "must match the size of tensor" in r.stderr
    script = tmp_path / "mixed.py"
    script.write_text(textwrap.dedent(MIXED_MODES))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ok = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                        cwd=str(tmp_path), timeout=300)
    assert "BATCH (6, 3, 32, 16)" in ok.stdout, ok.stderr[-2000:]


TO_TENSOR = """
import warnings
warnings.simplefilter("always")
import numpy as np, rganet_plugin
from fastreid.data.transforms.transforms import ToTensor
from PIL import Image
ToTensor()(Image.fromarray(np.zeros((4, 2, 3), np.uint8)))
"""


def test_typed_storage(tmp_path):
    r = run_without("typed_storage", TO_TENSOR, tmp_path)
    assert "TypedStorage is deprecated" in r.stderr
    import warnings

    from fastreid.data.transforms.transforms import ToTensor
    from PIL import Image

    pixels = np.random.RandomState(0).randint(0, 255, (4, 2, 3)).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = ToTensor()(Image.fromarray(pixels))
    assert torch.equal(t, torch.tensor(pixels).permute(2, 0, 1).float())  # what fast-reid gave


ENV_INFO = """
import rganet_plugin
from fastreid.utils.collect_env import collect_env_info
print("INFO", "GPU available" in collect_env_info())
"""


def test_env_info(tmp_path):
    """Without a GPU (and with a CUDA_HOME present, as on this machine) torch logs
    `No CUDA runtime is found` when fast-reid's environment dump imports cpp_extension."""
    import torch.utils.cpp_extension as ext

    if not ext.CUDA_HOME:
        pytest.skip("no CUDA_HOME on this machine: torch has nothing to say")
    r = run_without("env_info", ENV_INFO, tmp_path)
    assert "No CUDA runtime is found" in r.stderr
    script = tmp_path / "env.py"
    script.write_text(textwrap.dedent(ENV_INFO))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ok = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                        cwd=str(tmp_path), timeout=300)
    assert "INFO True" in ok.stdout and "No CUDA runtime" not in ok.stderr, ok.stderr


def test_every_patch_has_its_row_in_docs_compat_md():
    """docs/compat.md is where each patch's symptom is written down: one row per patch."""
    from rganet_plugin import compat

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "compat.md")) as f:
        rows = {line.split("|")[1].strip().strip("`") for line in f if line.startswith("| `")}
    assert rows == set(compat.PATCHES)
