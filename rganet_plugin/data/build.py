"""Building the training and test sets from the config, through fast-reid's loaders.

fast-reid reads its dataset root from ``FASTREID_DATASETS`` once, at import time, and passes only
``combineall`` to dataset constructors. We construct the datasets ourselves (root from
``DATASETS.ROOT``, plus the plugin's keyword arguments) and hand them to fast-reid's
``build_reid_train_loader`` / ``build_reid_test_loader``, so its samplers, transforms and
collation are reused unchanged.
"""
from __future__ import annotations

import logging
import os
from typing import List, Tuple

from fastreid.data import build_reid_test_loader, build_reid_train_loader
from fastreid.data.common import CommDataset
from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.transforms import build_transforms
from fastreid.utils import comm

from ..config.setup import ConfigError

logger = logging.getLogger(__name__)


class EmptyQueryError(ValueError):
    """A test set with no query (or no gallery) image: nothing to evaluate."""


def dataset_root(cfg) -> str:
    return cfg.DATASETS.ROOT or os.getenv("FASTREID_DATASETS", "datasets")


def dataset_kwargs(cfg) -> dict:
    """Keyword arguments every dataset constructor receives (fast-reid's accept **kwargs)."""
    return {"synthetic": cfg.DATASETS.SYNTHETIC, "corrupt_images": cfg.DATASETS.CORRUPT_IMAGES}


def build_dataset(cfg, name: str, **extra):
    try:
        cls = DATASET_REGISTRY.get(name)
    except KeyError:
        known = sorted(DATASET_REGISTRY._obj_map)
        raise KeyError(f"unknown dataset {name!r}; registered: {known}") from None
    return cls(root=dataset_root(cfg), **dataset_kwargs(cfg), **extra)


def train_items(cfg) -> List[Tuple]:
    items = []
    for name in cfg.DATASETS.NAMES:
        data = build_dataset(cfg, name, combineall=cfg.DATASETS.COMBINEALL)
        if comm.is_main_process():
            data.show_train()
        if not data.train:
            raise ValueError(f"dataset {name} has no training images (test-only benchmarks such as "
                             f"PartialREID are evaluated after training on another set)")
        items.extend(data.train)
    return items


def build_train_loader(cfg, train_set):
    """fast-reid's identity-sampled training loader over ``train_set``; the sampler's
    preconditions (``compat.identity_sampler``) that the config breaks become a ConfigError."""
    try:
        return build_reid_train_loader(cfg, train_set=train_set)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def train_feature_loader(cfg, items, batch_size: int = 0):
    """The training images with the test transforms, in order (``num_query`` 0): what a hook that
    reads the training set's features (the memory bank's initialisation, FFM's clustering)
    iterates over. ``batch_size`` 0 keeps ``TEST.IMS_PER_BATCH``."""
    if batch_size:
        cfg = cfg.clone()
        cfg.defrost()
        cfg.TEST.IMS_PER_BATCH = batch_size
    test_set = CommDataset(items, build_transforms(cfg, is_train=False), relabel=True)
    loader, _ = _test_loader(cfg, test_set, num_query=0)
    return loader


def _test_loader(cfg, test_set, num_query: int):
    """fast-reid's test loader with ``DATALOADER.NUM_WORKERS`` workers. (Called with the cfg,
    its ``@configurable`` hands ``num_workers`` to ``from_config``, which drops it: every test
    loader had 4 workers, with torch's warning on a 2-core machine even for ``NUM_WORKERS 0``.)"""
    return build_reid_test_loader(test_set=test_set, test_batch_size=cfg.TEST.IMS_PER_BATCH,
                                  num_query=num_query, num_workers=cfg.DATALOADER.NUM_WORKERS)


def build_test_loader(cfg, dataset_name: str):
    data = build_dataset(cfg, dataset_name)
    if comm.is_main_process():
        data.show_test()
    if len(data.query) == 0:
        raise EmptyQueryError(f"{dataset_name}: the query set is empty; nothing to evaluate")
    if len(data.gallery) == 0:
        raise EmptyQueryError(f"{dataset_name}: the gallery set is empty; nothing to evaluate")
    test_set = CommDataset(data.query + data.gallery, build_transforms(cfg, is_train=False),
                           relabel=False)
    return _test_loader(cfg, test_set, num_query=len(data.query))
