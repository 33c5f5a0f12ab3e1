"""Everything this project changes in fast-reid 1.4.0 to run it on modern Python and PyTorch.

The PyPI wheel ``fastreid==1.4.0`` was written for Python 3.7 and torch 1.x; on Python >= 3.10 and
torch 2.x it does not import, cannot run on a CPU, and exits the interpreter when its Cython
ranking tool is missing. We never copy or edit fast-reid's files: each problem is fixed here, from
our side, by one small patch (``PATCHES``) applied before fast-reid is imported (``import
rganet_plugin`` does it), with a test in ``tests/test_compat.py`` that runs fast-reid with every
patch but that one and watches the symptom come back. docs/compat.md lists every patch with the
symptom it fixes.
"""
from __future__ import annotations

import collections
import collections.abc
import datetime
import importlib
import logging
import os
import sys
import types
from typing import Callable, Dict, Iterable, Optional

logger = logging.getLogger(__name__)

_APPLIED: Dict[str, bool] = {}


def _patch_collections_abc() -> None:
    for name in ("Mapping", "MutableMapping", "Sequence", "Iterable", "Callable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def _patch_torch_six() -> None:
    import torch

    try:
        importlib.import_module("torch._six")
        return
    except ImportError:
        pass
    six = types.ModuleType("torch._six")
    six.string_classes = (str, bytes)
    six.inf = float("inf")
    sys.modules["torch._six"] = six
    torch._six = six


def _worker_init(user_fn, worker_id) -> None:
    """A data-loader worker: SIGINT is the main process's to handle (it ends the workers)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if user_fn is not None:
        user_fn(worker_id)


def _patch_dataloader() -> None:
    import functools

    import torch
    from torch.utils.data import DataLoader

    import fastreid.data.build as build
    import fastreid.data.data_utils as data_utils

    class DeviceAgnosticDataLoader(DataLoader):
        """``DataLoaderX`` with the same constructor, usable with or without a GPU.

        On CUDA it copies each batch to ``local_rank`` on a side stream while the previous batch
        is consumed (what ``DataLoaderX`` does); on a CPU it is a plain ``DataLoader``.
        """

        def __init__(self, local_rank, **kwargs):
            use_cuda = torch.cuda.is_available()
            if not use_cuda:
                kwargs["pin_memory"] = False
            if kwargs.get("num_workers", 0) > 0:
                kwargs["worker_init_fn"] = functools.partial(_worker_init,
                                                             kwargs.get("worker_init_fn"))
            super().__init__(**kwargs)
            self.local_rank = local_rank
            self.use_cuda = use_cuda
            self.stream = torch.cuda.Stream(local_rank) if use_cuda else None

        def __iter__(self):
            it = super().__iter__()
            if not self.use_cuda:
                return it
            return self._cuda_prefetch(it)

        def _cuda_prefetch(self, it):
            def to_device(batch):
                with torch.cuda.stream(self.stream):
                    return {
                        k: v.to(self.local_rank, non_blocking=True) if isinstance(v, torch.Tensor) else v
                        for k, v in batch.items()
                    }

            nxt = next(it, None)
            nxt = to_device(nxt) if nxt is not None else None
            while nxt is not None:
                torch.cuda.current_stream().wait_stream(self.stream)
                cur = nxt
                nxt = next(it, None)
                nxt = to_device(nxt) if nxt is not None else None
                yield cur

    build.DataLoaderX = DeviceAgnosticDataLoader
    data_utils.DataLoaderX = DeviceAgnosticDataLoader


def _patch_output_dir() -> None:
    from fastreid.engine import defaults
    from fastreid.utils.file_io import PathManager

    original = defaults.DefaultTrainer.__dict__["auto_scale_hyperparams"].__func__

    def auto_scale_hyperparams(cfg, num_classes):
        if cfg.OUTPUT_DIR:
            PathManager.mkdirs(cfg.OUTPUT_DIR)
        return original(cfg, num_classes)

    auto_scale_hyperparams.__wrapped__ = original
    defaults.DefaultTrainer.auto_scale_hyperparams = staticmethod(auto_scale_hyperparams)


def _patch_rank_tool() -> None:
    import fastreid.evaluation.rank_cylib as rank_cylib
    from fastreid.evaluation import reid_evaluation

    def compile_helper():
        raise RuntimeError(
            "fast-reid's Cython rank tool is not built, and rganet_plugin never builds it at run "
            "time. Ranking falls back to the numpy implementation (same results; the plugin's own "
            "evaluator uses its vectorised ranking). To build fast-reid's tool at install time: "
            "pip install Cython && make -C <site-packages>/fastreid/evaluation/rank_cylib"
        )

    def _compile_dependencies(self):
        try:
            from fastreid.evaluation.rank_cylib.rank_cy import evaluate_cy  # noqa: F401
        except ImportError:
            logger.info("fast-reid Cython rank tool not built: using the numpy ranking path")

    rank_cylib.compile_helper = compile_helper
    reid_evaluation.compile_helper = compile_helper
    reid_evaluation.ReidEvaluator._compile_dependencies = _compile_dependencies


def _patch_rerank_cpu() -> None:
    import torch

    import fastreid.utils.compute_dist as compute_dist

    original = compute_dist.compute_jaccard_distance

    def compute_jaccard_distance(features, k1=20, k2=6, search_option=0, fp16=False):
        if search_option < 3 and not (torch.cuda.is_available() and _faiss_has_gpu()):
            search_option = 3
            features = features.cpu()
        return original(features, k1=k1, k2=k2, search_option=search_option, fp16=fp16)

    compute_jaccard_distance.__wrapped__ = original
    compute_dist.compute_jaccard_distance = compute_jaccard_distance


def _faiss_has_gpu() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


_ORIGINAL_WORKER = None


def _distributed_worker(local_rank, main_func, world_size, num_gpus_per_machine, machine_rank,
                        dist_url, args):
    """fast-reid's worker, with the gloo backend and no CUDA calls when there is no GPU.
    Module-level so that ``torch.multiprocessing.spawn`` can pickle it."""
    import torch
    import torch.distributed as dist

    from fastreid.utils import comm

    if torch.cuda.is_available() and os.environ.get("RGANET_FORCE_GLOO") != "1":
        return _ORIGINAL_WORKER(local_rank, main_func, world_size, num_gpus_per_machine,
                                machine_rank, dist_url, args)
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    # A peer that stops answering (killed on another machine, hung) makes the others fail after
    # this many seconds instead of waiting in a collective forever (torch's default: 30 min).
    timeout = datetime.timedelta(seconds=float(os.environ.get("RGANET_DIST_TIMEOUT", "1800")))
    dist.init_process_group(backend="gloo", init_method=dist_url, world_size=world_size,
                            rank=global_rank, timeout=timeout)
    comm.synchronize()
    num_machines = world_size // num_gpus_per_machine
    for i in range(num_machines):
        ranks_on_i = list(range(i * num_gpus_per_machine, (i + 1) * num_gpus_per_machine))
        pg = dist.new_group(ranks_on_i)
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = pg
    main_func(*args)


def _patch_launch_cpu() -> None:
    global _ORIGINAL_WORKER
    import fastreid.engine  # noqa: F401  (the package re-exports a function named `launch`)

    launch_mod = sys.modules["fastreid.engine.launch"]
    if launch_mod._distributed_worker is not _distributed_worker:
        _ORIGINAL_WORKER = launch_mod._distributed_worker
    launch_mod._distributed_worker = _distributed_worker


def _patch_ddp_cpu() -> None:
    from torch.nn.parallel import DistributedDataParallel

    from fastreid.engine import defaults

    def make_ddp(module, device_ids=None, **kwargs):
        param = next(module.parameters(), None)
        if param is not None and param.device.type == "cpu":
            device_ids = None
        return DistributedDataParallel(module, device_ids=device_ids, **kwargs)

    defaults.DistributedDataParallel = make_ddp


def _patch_zero_grad() -> None:
    import functools

    import fastreid.solver as solver
    import fastreid.solver.build as solver_build
    from fastreid.engine import defaults

    original = solver_build.build_optimizer

    @functools.wraps(original)
    def build_optimizer(cfg, model, contiguous=True):
        optimizer, params = original(cfg, model, contiguous=contiguous)
        optimizer.zero_grad = functools.partial(type(optimizer).zero_grad, optimizer,
                                                set_to_none=False)
        return optimizer, params

    solver_build.build_optimizer = build_optimizer
    solver.build_optimizer = build_optimizer
    defaults.build_optimizer = build_optimizer


def _patch_checkpoint_load() -> None:
    import torch

    from fastreid.utils.checkpoint import Checkpointer

    def _load_file(self, f):
        return torch.load(f, map_location=torch.device("cpu"), weights_only=False)

    Checkpointer._load_file = _load_file


def _patch_metric_printer() -> None:
    import functools

    from fastreid.utils import events

    original = events.CommonMetricPrinter.write

    @functools.wraps(original)
    def write(self):
        last = self._last_write
        if last is not None and last[0] == events.get_event_storage().iter:
            self._last_write = None  # no interval to time at the same iteration
        return original(self)

    events.CommonMetricPrinter.write = write


def check_identity_batch(num_identities: int, mini_batch_size: int, num_instances: int,
                         world_size: int = 1) -> None:
    """Raise ``ValueError`` when an identity sampler could never fill a batch (it would spin)."""
    where = (f"SOLVER.IMS_PER_BATCH gives {mini_batch_size} images per process"
             + (f" ({world_size} processes)" if world_size > 1 else ""))
    if num_instances < 1:
        raise ValueError(f"DATALOADER.NUM_INSTANCE must be >= 1, got {num_instances}")
    if mini_batch_size < num_instances or mini_batch_size % num_instances:
        raise ValueError(
            f"{where}, which is not a multiple of DATALOADER.NUM_INSTANCE = {num_instances} "
            f"(images per identity): the identity sampler could never fill a batch. Make "
            f"SOLVER.IMS_PER_BATCH a multiple of NUM_INSTANCE x the number of processes.")
    needed = mini_batch_size // num_instances * world_size
    if needed > num_identities:
        raise ValueError(
            f"{where} = {mini_batch_size // num_instances} identities x {num_instances} images, "
            f"{needed} identities in all, but the training set has {num_identities}: the identity "
            f"sampler could never fill a batch. Lower SOLVER.IMS_PER_BATCH (at most "
            f"{num_identities // world_size * num_instances} per process here) or raise "
            f"DATALOADER.NUM_INSTANCE.")


def _patch_identity_sampler() -> None:
    import functools

    from fastreid.data.samplers import triplet_sampler
    from fastreid.utils import comm

    for cls in (triplet_sampler.NaiveIdentitySampler, triplet_sampler.BalancedIdentitySampler):
        original = cls.__init__

        def make(original):
            @functools.wraps(original)
            def __init__(self, data_source, mini_batch_size, num_instances, *args, **kwargs):
                pids = {item[1] for item in data_source}
                check_identity_batch(len(pids), int(mini_batch_size), int(num_instances),
                                     comm.get_world_size())
                original(self, data_source, mini_batch_size, num_instances, *args, **kwargs)
            return __init__

        cls.__init__ = make(original)


def _runs_on_cuda(model) -> bool:
    param = next(model.parameters(), None)
    return param is not None and param.is_cuda


def _patch_amp_cpu() -> None:
    import functools

    import torch

    from fastreid.engine import train_loop

    cls = train_loop.AMPTrainer
    original_init, original_step = cls.__init__, cls.run_step

    @functools.wraps(original_init)
    def __init__(self, model, data_loader, optimizer, param_wrapper, grad_scaler=None):
        if grad_scaler is None and not _runs_on_cuda(model):
            grad_scaler = torch.amp.GradScaler("cuda", enabled=False)  # never used on a CPU
        original_init(self, model, data_loader, optimizer, param_wrapper, grad_scaler)

    @functools.wraps(original_step)
    def run_step(self):
        if _runs_on_cuda(self.model):
            return original_step(self)
        if not getattr(self, "_amp_cpu_warned", False):
            logger.warning("SOLVER.AMP.ENABLED is True but the model is on the CPU: fast-reid's "
                           "AMP needs CUDA, so training runs in float32 (no autocast, no grad "
                           "scaler)")
            self._amp_cpu_warned = True
        return train_loop.SimpleTrainer.run_step(self)

    cls.__init__ = __init__
    cls.run_step = run_step


def _patch_affine_transform() -> None:
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode

    from fastreid.data.transforms import build as transforms_build

    class RandomAffine(T.RandomAffine):
        """``T.RandomAffine`` that also takes the pre-0.13 ``resample`` / ``fillcolor``."""

        def __init__(self, *args, resample=None, fillcolor=None, **kwargs):
            if resample is not None and "interpolation" not in kwargs:
                kwargs["interpolation"] = {False: InterpolationMode.NEAREST,
                                           0: InterpolationMode.NEAREST,
                                           2: InterpolationMode.BILINEAR,
                                           3: InterpolationMode.BICUBIC}.get(
                    resample, InterpolationMode.NEAREST)
            if fillcolor is not None and "fill" not in kwargs:
                kwargs["fill"] = fillcolor
            super().__init__(*args, **kwargs)

    # fast-reid's build.py calls `T.RandomAffine` through its module-level `T`: give it a view of
    # torchvision.transforms in which only RandomAffine differs.
    view = types.ModuleType("torchvision.transforms (fast-reid compat view)")
    view.__getattr__ = lambda name: getattr(T, name)
    view.RandomAffine = RandomAffine
    transforms_build.T = view


def _patch_profiler_use_cuda() -> None:
    import functools

    import torch

    from fastreid.engine import hooks

    original = hooks.AutogradProfiler.before_step

    @functools.wraps(original)
    def before_step(self):
        if self._enable_predicate(self.trainer):
            device = "cuda" if self._use_cuda and torch.cuda.is_available() else None
            self._profiler = torch.autograd.profiler.profile(use_device=device)
            self._profiler.__enter__()
        else:
            self._profiler = None

    hooks.AutogradProfiler.before_step = before_step


def _guard_backbone_builder(builder):
    import functools

    @functools.wraps(builder)
    def build(cfg):
        from .modeling.backbones.imagenet_weights import build_with_imagenet_weights

        return build_with_imagenet_weights(builder, cfg, builder.__name__)

    return build


def _patch_backbone_weights() -> None:
    from fastreid.modeling.backbones.build import BACKBONE_REGISTRY

    for name, fn in list(BACKBONE_REGISTRY._obj_map.items()):
        if getattr(fn, "__module__", "").startswith("fastreid.") and not hasattr(fn, "__wrapped__"):
            BACKBONE_REGISTRY._obj_map[name] = _guard_backbone_builder(fn)


def _patch_read_image_rgb() -> None:
    import functools

    from fastreid.data import common, data_utils

    original = data_utils.read_image

    @functools.wraps(original)
    def read_image(file_name, format=None):
        return original(file_name, "RGB" if format is None else format)

    read_image.__wrapped__ = original
    common.read_image = read_image


def _patch_typed_storage() -> None:
    import functools

    import numpy as np
    import torch

    from fastreid.data.transforms import functional, transforms

    original = functional.to_tensor

    @functools.wraps(original)
    def to_tensor(pic):
        if isinstance(pic, np.ndarray) or pic.mode in ("I", "I;16", "F", "1"):
            return original(pic)
        data = bytearray(pic.tobytes())  # frombuffer needs a writable buffer to share
        img = torch.frombuffer(data, dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
        nchannel = 3 if pic.mode == "YCbCr" else len(pic.mode)
        img = img.view(pic.size[1], pic.size[0], nchannel).permute(2, 0, 1).contiguous()
        return img.float()

    to_tensor.__wrapped__ = original
    functional.to_tensor = to_tensor
    transforms.to_tensor = to_tensor


def _patch_env_info() -> None:
    import functools

    import torch

    from fastreid.engine import defaults
    from fastreid.utils import collect_env

    original = collect_env.collect_env_info

    @functools.wraps(original)
    def collect_env_info():
        if torch.cuda.is_available() or "torch.utils.cpp_extension" in sys.modules:
            return original()
        quiet = logging.getLogger("torch.utils.cpp_extension")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            importlib.import_module("torch.utils.cpp_extension")
        finally:
            quiet.setLevel(level)
        return original()

    collect_env_info.__wrapped__ = original
    collect_env.collect_env_info = collect_env_info
    defaults.collect_env_info = collect_env_info


PATCHES: Dict[str, Callable[[], None]] = {
    "collections_abc": _patch_collections_abc,
    "torch_six": _patch_torch_six,
    "dataloader": _patch_dataloader,
    "output_dir": _patch_output_dir,
    "rank_tool": _patch_rank_tool,
    "rerank_cpu": _patch_rerank_cpu,
    "launch_cpu": _patch_launch_cpu,
    "ddp_cpu": _patch_ddp_cpu,
    "zero_grad": _patch_zero_grad,
    "checkpoint_load": _patch_checkpoint_load,
    "metric_printer": _patch_metric_printer,
    "identity_sampler": _patch_identity_sampler,
    "amp_cpu": _patch_amp_cpu,
    "affine_transform": _patch_affine_transform,
    "profiler_use_cuda": _patch_profiler_use_cuda,
    "backbone_weights": _patch_backbone_weights,
    "read_image_rgb": _patch_read_image_rgb,
    "typed_storage": _patch_typed_storage,
    "env_info": _patch_env_info,
}

# Patches that must run before `fastreid` is first imported (the rest patch fast-reid's modules).
_PRE_IMPORT = ("collections_abc", "torch_six")


def apply(skip: Optional[Iterable[str]] = None) -> Dict[str, bool]:
    """Apply every patch (idempotent). ``skip`` names patches to leave out (used by the tests).

    The environment variable ``RGANET_COMPAT_SKIP`` (comma separated) does the same for
    subprocesses.
    """
    skip = set(skip or ()) | {s for s in os.environ.get("RGANET_COMPAT_SKIP", "").split(",") if s}
    unknown = skip - set(PATCHES)
    if unknown:
        raise KeyError(f"unknown compat patch(es) {sorted(unknown)}; known: {sorted(PATCHES)}")
    for name in _PRE_IMPORT:
        if name not in skip and not _APPLIED.get(name):
            PATCHES[name]()
            _APPLIED[name] = True
    for name, fn in PATCHES.items():
        if name in _PRE_IMPORT or name in skip or _APPLIED.get(name):
            continue
        fn()
        _APPLIED[name] = True
    return dict(_APPLIED)
